-- Model version names follow petal_labeller/versions.py (VERSION_PATTERN): a version is a
-- folder name under PETAL_HOME/models and part of S3 keys, so '../x' or a newline must
-- never be stored. NOT VALID: rows a team registered before this rule stay readable
-- (and keep working); every new or renamed row is checked.
ALTER TABLE model_versions
    ADD CONSTRAINT model_versions_version_name
    CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$') NOT VALID;
