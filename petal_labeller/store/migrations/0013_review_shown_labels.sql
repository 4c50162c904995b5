-- The model labels a curator saw when deciding (issue 24 item 9): `petal review apply`
-- resolves a decision against them, never against a model promoted since, and keeps
-- them with the review. NULL: decided before this column existed (not recorded).

ALTER TABLE paper_reviews ADD COLUMN shown text[];
