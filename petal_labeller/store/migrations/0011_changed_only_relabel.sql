-- Relabelling writes only what changes (issue 26 item 3). A model version that gives a
-- paper the labels another version already stored for it (same label set, every score
-- within rounding: store.labels.SCORE_TOLERANCE) writes no label rows: its mark in
-- paper_labelling names, in labels_version, the version whose rows hold those labels.
-- NULL: the version's own rows. Readers join paper_labels on
-- coalesce(labels_version, model_version).
ALTER TABLE paper_labelling
    ADD COLUMN labels_version text REFERENCES model_versions (version),
    ADD CHECK (labels_version IS NULL OR labels_version <> model_version);

-- Per run: how many of the papers it labelled got labels different from those they
-- had (a paper no model had labelled counts as changed). NULL before this migration.
ALTER TABLE labelling_runs ADD COLUMN papers_changed integer;
