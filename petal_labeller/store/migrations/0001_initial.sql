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

CREATE TABLE paper_labels (
    paper_id       bigint NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    label_id       text NOT NULL REFERENCES taxonomy_labels (id),
    origin         text NOT NULL CHECK (origin IN ('curator', 'model')),
    score          real CHECK (score BETWEEN 0 AND 1),
    model_version  text REFERENCES model_versions (version),
    run_id         text REFERENCES labelling_runs (run_id),
    labelled_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (
        (origin = 'curator' AND model_version IS NULL AND run_id IS NULL)
        OR (origin = 'model' AND model_version IS NOT NULL AND score IS NOT NULL)
    )
);
-- Curator and model labels live under separate uniqueness rules, so a model
-- upsert (ON CONFLICT on the model index) can never overwrite a curator label.
CREATE UNIQUE INDEX paper_labels_curator ON paper_labels (paper_id, label_id)
    WHERE origin = 'curator';
CREATE UNIQUE INDEX paper_labels_model ON paper_labels (paper_id, label_id, model_version)
    WHERE origin = 'model';
CREATE INDEX paper_labels_label ON paper_labels (label_id);
CREATE INDEX paper_labels_model_version ON paper_labels (model_version, paper_id)
    WHERE origin = 'model';

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
