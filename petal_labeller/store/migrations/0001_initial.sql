-- The PeTaL store: papers, the label tree, curator and model labels, model
-- versions and labelling runs.

CREATE TABLE taxonomy_labels (
    id        text PRIMARY KEY,
    name      text NOT NULL,
    level     smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    parent    text REFERENCES taxonomy_labels (id),
    -- File order: models emit scores in this order.
    position  integer NOT NULL,
    CHECK ((level = 1) = (parent IS NULL))
);

CREATE TABLE papers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doi          text UNIQUE CHECK (doi = lower(doi) AND doi LIKE '10.%/%'),
    title        text NOT NULL CHECK (btrim(title) <> ''),
    abstract     text,
    venue        text[] NOT NULL DEFAULT '{}',
    url          text,
    source       text NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    -- One identity for re-imports: the DOI, else the case-folded title (hashed
    -- because long titles would overflow a btree entry).
    identity_key text GENERATED ALWAYS AS (
        CASE WHEN doi IS NOT NULL THEN 'doi:' || doi ELSE 'title:' || md5(lower(title)) END
    ) STORED UNIQUE
);
CREATE INDEX papers_ingested_at ON papers (ingested_at, id);

CREATE TABLE model_versions (
    version        text PRIMARY KEY,
    base_model     text NOT NULL,
    metrics        jsonb NOT NULL DEFAULT '{}',
    artefact_uri   text NOT NULL,
    is_production  boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    promoted_at    timestamptz
);
-- At most one production model.
CREATE UNIQUE INDEX model_versions_one_production ON model_versions (is_production)
    WHERE is_production;

CREATE TABLE labelling_runs (
    run_id           text PRIMARY KEY,
    airflow_run_id   text,
    model_version    text NOT NULL REFERENCES model_versions (version),
    interval_start   timestamptz,
    interval_end     timestamptz,
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'success', 'failed')),
    papers_selected  integer,
    papers_labelled  integer,
    labels_written   integer,
    papers_rejected  integer,
    error            text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK (interval_end IS NULL OR interval_start IS NULL OR interval_start <= interval_end)
);

-- Which model version has labelled which paper, even when it chose no label:
-- this, not paper_labels, decides whether a paper is still pending.
CREATE TABLE paper_labelling (
    paper_id       bigint NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    model_version  text NOT NULL REFERENCES model_versions (version),
    run_id         text REFERENCES labelling_runs (run_id),
    label_count    integer NOT NULL,
    labelled_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (paper_id, model_version)
);
CREATE INDEX paper_labelling_version ON paper_labelling (model_version);

CREATE TABLE paper_labels (
    paper_id       bigint NOT NULL,
    label_id       text NOT NULL,
    origin         text NOT NULL CHECK (origin IN ('curator', 'model')),
    score          real CHECK (score BETWEEN 0 AND 1),
    model_version  text,
    -- The run that last wrote this label; paper_labelling.run_id holds the checked reference.
    run_id         text,
    labelled_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (
        (origin = 'curator' AND model_version IS NULL AND run_id IS NULL)
        OR (origin = 'model' AND model_version IS NOT NULL AND score IS NOT NULL)
    )
) WITH (fillfactor = 80);  -- room for HOT updates when a newer run rewrites scores
-- Curator and model labels live under separate uniqueness rules, so a model
-- upsert (ON CONFLICT on the model index) can never overwrite a curator label.
CREATE UNIQUE INDEX paper_labels_curator ON paper_labels (paper_id, label_id)
    WHERE origin = 'curator';
CREATE UNIQUE INDEX paper_labels_model ON paper_labels (paper_id, label_id, model_version)
    WHERE origin = 'model';

-- References of paper_labels are enforced by the triggers below instead of
-- FOREIGN KEY clauses. PostgreSQL checks a foreign key once per row (about as
-- long as writing the row itself); these check a whole statement's rows in one
-- join, which is what keeps a 100,000-label upsert fast. Same guarantees:
--   paper_id -> papers (ON DELETE CASCADE), label_id -> taxonomy_labels (RESTRICT),
--   model rows: (paper_id, model_version) -> paper_labelling (ON DELETE CASCADE),
--   which in turn has real foreign keys to papers, model_versions and labelling_runs.
-- Referenced rows are locked FOR KEY SHARE, as a foreign key does, so a
-- concurrent delete waits for the writing transaction.
CREATE FUNCTION paper_labels_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM taxonomy_labels
        WHERE id IN (SELECT DISTINCT label_id FROM new_rows) FOR KEY SHARE;
    SELECT n.label_id INTO bad FROM new_rows n
        WHERE NOT EXISTS (SELECT 1 FROM taxonomy_labels t WHERE t.id = n.label_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "paper_labels" violates its label reference',
            DETAIL = format('Key (label_id)=(%s) is not present in table "taxonomy_labels".', bad.label_id);
    END IF;

    PERFORM 1 FROM paper_labelling l
        WHERE (l.paper_id, l.model_version) IN (
            SELECT DISTINCT paper_id, model_version FROM new_rows WHERE origin = 'model')
        FOR KEY SHARE;
    SELECT n.paper_id, n.model_version INTO bad FROM new_rows n
        WHERE n.origin = 'model' AND NOT EXISTS (
            SELECT 1 FROM paper_labelling l
            WHERE l.paper_id = n.paper_id AND l.model_version = n.model_version) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "paper_labels" violates its labelling reference',
            DETAIL = format('Key (paper_id, model_version)=(%s, %s) is not present in table "paper_labelling".',
                            bad.paper_id, bad.model_version);
    END IF;

    -- Model rows reach their paper through paper_labelling; curator rows directly.
    PERFORM 1 FROM papers
        WHERE id IN (SELECT DISTINCT paper_id FROM new_rows WHERE origin = 'curator') FOR KEY SHARE;
    SELECT n.paper_id INTO bad FROM new_rows n
        WHERE n.origin = 'curator' AND NOT EXISTS (SELECT 1 FROM papers p WHERE p.id = n.paper_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "paper_labels" violates its paper reference',
            DETAIL = format('Key (paper_id)=(%s) is not present in table "papers".', bad.paper_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER paper_labels_references_on_insert AFTER INSERT ON paper_labels
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION paper_labels_check_references();
CREATE TRIGGER paper_labels_references_on_update AFTER UPDATE ON paper_labels
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION paper_labels_check_references();

CREATE FUNCTION paper_labels_cascade_papers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM paper_labels pl USING old_rows o WHERE pl.paper_id = o.id;
    RETURN NULL;
END $$;
CREATE TRIGGER paper_labels_cascade_papers AFTER DELETE ON papers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION paper_labels_cascade_papers();

CREATE FUNCTION paper_labels_cascade_labelling() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM paper_labels pl USING old_rows o
        WHERE pl.origin = 'model' AND pl.paper_id = o.paper_id
          AND pl.model_version = o.model_version;
    RETURN NULL;
END $$;
CREATE TRIGGER paper_labels_cascade_labelling AFTER DELETE ON paper_labelling
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION paper_labels_cascade_labelling();

CREATE FUNCTION paper_labels_restrict_taxonomy() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used text;
BEGIN
    SELECT o.id INTO used FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM paper_labels pl WHERE pl.label_id = o.id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'delete on table "taxonomy_labels" violates a reference from "paper_labels"',
            DETAIL = format('Key (id)=(%s) is still referenced from table "paper_labels".', used);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER paper_labels_restrict_taxonomy AFTER DELETE ON taxonomy_labels
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION paper_labels_restrict_taxonomy();
