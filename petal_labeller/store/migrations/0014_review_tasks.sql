-- Papers sent to curators where they work (issue 27): a Label Studio task, a Ground
-- Truth labelling job's data object, or a line of a review file. A paper with a task
-- still open ('sent') is never sent again; 'not_sure' closes the task and returns the
-- paper to the queue; 'irrelevant' is a curator's "not biomimicry relevant".

CREATE TABLE review_tasks (
    backend        text NOT NULL CHECK (backend IN ('label_studio', 'ground_truth', 'files')),
    -- Where the task lives: a Label Studio project id, a labelling job name, a file name.
    batch          text NOT NULL CHECK (btrim(batch) <> '' AND length(batch) <= 200),
    -- The backend's own id of the task (Label Studio task id, our data object key).
    external_id    text NOT NULL CHECK (btrim(external_id) <> '' AND length(external_id) <= 200),
    paper_id       bigint NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    model_version  text REFERENCES model_versions (version) ON DELETE SET NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'sent'
                   CHECK (status IN ('sent', 'answered', 'not_sure', 'irrelevant', 'expired')),
    answered_at    timestamptz,
    answered_by    text CHECK (answered_by IS NULL OR length(answered_by) <= 200),
    CHECK ((status = 'sent') = (answered_at IS NULL) OR status = 'expired'),
    PRIMARY KEY (backend, batch, external_id)
);
-- One open task per paper: the same paper is never out with curators twice.
CREATE UNIQUE INDEX review_tasks_open ON review_tasks (paper_id) WHERE status = 'sent';

-- "Not biomimicry relevant": never labelled or queued for review again.
ALTER TABLE papers ADD COLUMN irrelevant_at timestamptz,
                   ADD COLUMN irrelevant_by text
    CHECK (irrelevant_by IS NULL OR (btrim(irrelevant_by) <> '' AND length(irrelevant_by) <= 200)),
    ADD CONSTRAINT papers_irrelevant_who_and_when
    CHECK ((irrelevant_at IS NULL) = (irrelevant_by IS NULL));
-- The PeTaL page counts them out of "waiting" on every view: found by index, not a scan.
CREATE INDEX papers_irrelevant ON papers (id) WHERE irrelevant_at IS NOT NULL;
