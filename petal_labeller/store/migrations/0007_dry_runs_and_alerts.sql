-- A dry run leaves a row too (issue 23 item 2): marked dry_run, with what it would have
-- written in labels_proposed; it never writes a label, so labels_written stays 0.
ALTER TABLE labelling_runs ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
ALTER TABLE labelling_runs ADD COLUMN labels_proposed integer;
-- The failure alert's fate (issue 23 item 3): NULL = no alert was due; 'sent' or
-- 'failed' with the (redacted) reason the notifier gave, shown on the PeTaL page.
ALTER TABLE labelling_runs ADD COLUMN alert_status text
    CHECK (alert_status IS NULL OR alert_status IN ('sent', 'failed'));
ALTER TABLE labelling_runs ADD COLUMN alert_error text;
