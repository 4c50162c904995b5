-- A labelling run that failed before it could resolve a model (none registered,
-- an unknown version asked for) still gets its row, so the PeTaL page shows the
-- failure and its error; every other run names its model.
ALTER TABLE labelling_runs ALTER COLUMN model_version DROP NOT NULL;
ALTER TABLE labelling_runs ADD CONSTRAINT labelling_runs_model_unless_failed
    CHECK (model_version IS NOT NULL OR status = 'failed');
