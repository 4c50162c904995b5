-- Curators in the loop (`petal review apply`): who reviewed which model-labelled
-- paper, when, and what they decided. The labels they settled on are ordinary
-- curator rows in paper_labels (so training and exports pick them up, and a
-- model upsert can never overwrite them); `curated_by` says who set a curator
-- label through a review (NULL: imported from a file).

ALTER TABLE paper_labels ADD COLUMN curated_by text
    CHECK (curated_by IS NULL OR (origin = 'curator' AND btrim(curated_by) <> ''));

CREATE TABLE paper_reviews (
    -- One review per paper: a later decision for the same paper replaces it.
    paper_id       bigint PRIMARY KEY REFERENCES papers (id) ON DELETE CASCADE,
    reviewer       text NOT NULL CHECK (btrim(reviewer) <> '' AND length(reviewer) <= 200),
    reviewed_at    timestamptz NOT NULL,
    -- The model whose labels the curator saw; NULL once that version is deleted.
    model_version  text REFERENCES model_versions (version) ON DELETE SET NULL,
    accepted       boolean NOT NULL,
    removed        text[] NOT NULL DEFAULT '{}',
    added          text[] NOT NULL DEFAULT '{}',
    -- The curator labels the decision produced (closed upwards), in taxonomy order.
    labels         text[] NOT NULL CHECK (cardinality(labels) > 0),
    source         text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paper_reviews_reviewed_at ON paper_reviews (reviewed_at);
