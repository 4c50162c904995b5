-- paper_labels' references become PostgreSQL foreign keys (issue 13, item 5).
-- 0001 enforced them with hand-written statement-level triggers to win the
-- upsert micro-benchmark; the database's own keys are the trusted mechanism,
-- and a measured labelling run loses well under 5% to them (docs/benchmarks.md,
-- "Store: native foreign keys"). Same behaviour as the triggers:
--   paper_id -> papers                              ON DELETE CASCADE
--   label_id -> taxonomy_labels                     refused while in use (NO ACTION)
--   model rows: (paper_id, model_version) -> paper_labelling  ON DELETE CASCADE
--     (MATCH SIMPLE: curator rows, whose model_version is NULL, are not checked
--     against paper_labelling), which in turn references papers, model_versions
--     and labelling_runs.
-- run_id stays unchecked here, as before: paper_labelling.run_id holds the checked reference.

DROP TRIGGER paper_labels_references_on_insert ON paper_labels;
DROP TRIGGER paper_labels_references_on_update ON paper_labels;
DROP TRIGGER paper_labels_cascade_papers ON papers;
DROP TRIGGER paper_labels_cascade_labelling ON paper_labelling;
DROP TRIGGER paper_labels_restrict_taxonomy ON taxonomy_labels;
DROP FUNCTION paper_labels_check_references();
DROP FUNCTION paper_labels_cascade_papers();
DROP FUNCTION paper_labels_cascade_labelling();
DROP FUNCTION paper_labels_restrict_taxonomy();

-- A key's cascade deletes `WHERE paper_id = $1` (paper deleted) and
-- `WHERE paper_id = $1 AND model_version = $2` (labelling mark deleted), with no
-- origin in the predicate, so the partial per-origin indexes cannot serve it:
-- this one serves both. paper_labels_label (0003) serves the label key's check.
CREATE INDEX paper_labels_paper ON paper_labels (paper_id, model_version);

ALTER TABLE paper_labels
    ADD CONSTRAINT paper_labels_paper_fkey FOREIGN KEY (paper_id)
        REFERENCES papers (id) ON DELETE CASCADE,
    ADD CONSTRAINT paper_labels_label_fkey FOREIGN KEY (label_id)
        REFERENCES taxonomy_labels (id),
    ADD CONSTRAINT paper_labels_labelling_fkey FOREIGN KEY (paper_id, model_version)
        REFERENCES paper_labelling (paper_id, model_version) ON DELETE CASCADE;
