"""PostgreSQL store of papers, taxonomy labels, model labels, model versions and runs."""
