"""PeTaL Labeller: label biology papers with the PeTaL function taxonomy."""

__version__ = "0.3.0"
