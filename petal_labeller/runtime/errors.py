"""The runtime's error classes (no heavy imports, so the CLI can catch them cheaply)."""

from __future__ import annotations


class ArtefactError(ValueError):
    """The model artefact is corrupt, unsafe, incomplete or inconsistent; the message names it."""


class UnsafeArtefactError(ArtefactError):
    """A tar member could land outside its folder, or exceeds the size and count caps."""
