"""The multi-label classifier: config, data, training, metrics, evaluation, artefact, prediction.

Heavy libraries (torch, transformers, sklearn) are imported inside functions so
that importing this package stays cheap for DAG parsing and quick CLI commands.
"""
