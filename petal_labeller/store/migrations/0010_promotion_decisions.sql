-- Who decided a model's promotion, and on what numbers (issue 26): the training DAG's
-- gate promotes on its own only when the gain's 95% interval clears the margin; otherwise
-- a person approves or rejects in Airflow (a timeout rejects). A rejected candidate stays
-- registered, not production, so it can still be promoted by hand (`petal model promote`).
ALTER TABLE model_versions
    ADD COLUMN decision text
        CHECK (decision IN ('first', 'auto', 'approved', 'rejected', 'timed_out')),
    -- The Airflow user who answered; NULL for the gate itself and for a timeout.
    ADD COLUMN decided_by text,
    ADD COLUMN decision_comment text,
    ADD COLUMN decided_at timestamptz,
    -- The gate's comparison with the production model then: gains, intervals, churn.
    ADD COLUMN comparison jsonb;
