-- Indexes what the references and deletes of 0001 need (issue 12, item 10).
-- Without them, dropping taxonomy labels scanned paper_labels once per
-- statement per label (1,000 unused labels: 52 s), and deleting papers scanned
-- it whole: no index led with label_id, and the partial per-origin indexes
-- cannot serve a predicate that does not name the origin.

-- paper_labels_restrict_taxonomy and load_taxonomy's in-use count look labels up by id.
CREATE INDEX paper_labels_label ON paper_labels (label_id);

-- The self-reference taxonomy_labels.parent is checked on every deleted label.
CREATE INDEX taxonomy_labels_parent ON taxonomy_labels (parent);

-- Deleting papers: one delete per origin, so each uses its (paper_id, ...) index.
CREATE OR REPLACE FUNCTION paper_labels_cascade_papers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM paper_labels pl USING old_rows o
        WHERE pl.origin = 'curator' AND pl.paper_id = o.id;
    DELETE FROM paper_labels pl USING old_rows o
        WHERE pl.origin = 'model' AND pl.paper_id = o.id;
    RETURN NULL;
END $$;
