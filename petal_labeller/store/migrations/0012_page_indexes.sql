-- The PeTaL page answers in bounded time however many papers wait for review (issue 24
-- item 10: 100,000 waiting took 8.6-10.3 s a view, ranking every one in Python).
-- Each paper's review uncertainty (petal_labeller.model.uncertainty.paper_uncertainty,
-- rounded to 4 places as the queue ranks it) is stored on its mark when its labels are
-- written (store.labels._score_marks, the same computation as below), so "Needs
-- review" reads its head from an index instead of ranking every paper.
ALTER TABLE paper_labelling ADD COLUMN uncertainty numeric(5, 4);

-- Marks written before this migration: the best path down the tree through the chosen
-- labels, each step's confidence given its parent, doubt weighted 1, 1/2, 1/4 by level.
-- Statistics first: the planner must not nest loops over stale row estimates.
ANALYZE paper_labelling;
ANALYZE paper_labels;
WITH chosen AS (
    SELECT l.paper_id, l.model_version, pl.label_id, pl.score::numeric AS s, t.parent
    FROM paper_labelling l
    JOIN paper_labels pl ON pl.paper_id = l.paper_id AND pl.origin = 'model'
                        AND pl.model_version = coalesce(l.labels_version, l.model_version)
    JOIN taxonomy_labels t ON t.id = pl.label_id),
l1 AS (
    SELECT DISTINCT ON (paper_id, model_version) paper_id, model_version, label_id, s,
           least(1, s) AS c
    FROM chosen WHERE parent IS NULL
    ORDER BY paper_id, model_version, s DESC, label_id COLLATE "C" DESC),
l2 AS (
    SELECT DISTINCT ON (c.paper_id, c.model_version) c.paper_id, c.model_version, c.label_id,
           c.s, CASE WHEN p.s > 0 THEN least(1, c.s / p.s) ELSE 0 END AS c
    FROM chosen c JOIN l1 p ON p.paper_id = c.paper_id AND p.model_version = c.model_version
                          AND c.parent = p.label_id
    ORDER BY c.paper_id, c.model_version, c.s DESC, c.label_id COLLATE "C" DESC),
l3 AS (
    SELECT DISTINCT ON (c.paper_id, c.model_version) c.paper_id, c.model_version,
           CASE WHEN p.s > 0 THEN least(1, c.s / p.s) ELSE 0 END AS c
    FROM chosen c JOIN l2 p ON p.paper_id = c.paper_id AND p.model_version = c.model_version
                          AND c.parent = p.label_id
    ORDER BY c.paper_id, c.model_version, c.s DESC, c.label_id COLLATE "C" DESC),
scored AS (
    SELECT l.paper_id, l.model_version,
           CASE WHEN l1.paper_id IS NULL THEN 1
                ELSE ((1 - l1.c) + coalesce(0.5 * (1 - l2.c), 0) + coalesce(0.25 * (1 - l3.c), 0))
                     / (1 + CASE WHEN l2.paper_id IS NULL THEN 0 ELSE 0.5 END
                          + CASE WHEN l3.paper_id IS NULL THEN 0 ELSE 0.25 END)
           END AS u
    FROM paper_labelling l
    LEFT JOIN l1 ON l1.paper_id = l.paper_id AND l1.model_version = l.model_version
    LEFT JOIN l2 ON l2.paper_id = l.paper_id AND l2.model_version = l.model_version
    LEFT JOIN l3 ON l3.paper_id = l.paper_id AND l3.model_version = l.model_version)
UPDATE paper_labelling l SET uncertainty = round(scored.u, 4)
FROM scored WHERE scored.paper_id = l.paper_id AND scored.model_version = l.model_version;

-- "Needs review": a version's most uncertain papers first, ties by paper id.
CREATE INDEX paper_labelling_review_order
    ON paper_labelling (model_version, uncertainty DESC NULLS LAST, paper_id);
-- Papers reviewed, and papers with curator labels, are left out of the head by
-- anti-joins on paper_reviews' key and paper_labels_curator (0001).
