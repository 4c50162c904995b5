-- Papers sent to curators by `petal review queue` (issue 24 item 1): a decision
-- applies only to a paper queued with the model version whose labels it names,
-- so a decision file cannot rewrite the labels of a paper nobody was asked about.
-- model_labels keeps the labels the queue showed, as the curator saw them.

CREATE TABLE review_queue (
    paper_id       bigint NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    model_version  text NOT NULL REFERENCES model_versions (version) ON DELETE CASCADE,
    model_labels   text[] NOT NULL DEFAULT '{}',
    queued_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (paper_id, model_version)
);

-- Papers decided before this table existed were queued then: record them, so their
-- reviewers can still correct a decision (the labels shown were not kept).
INSERT INTO review_queue (paper_id, model_version, queued_at)
SELECT paper_id, model_version, reviewed_at FROM paper_reviews
WHERE model_version IS NOT NULL;
