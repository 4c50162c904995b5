"""Select the papers a model has not labelled yet and write them as model-input JSONL."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extensions

from petal_labeller.store.models import ModelVersion, get_model_version, production_model
from petal_labeller.store.papers import pending_papers

#: The fields the model reads; the pipeline adds `paper_id` to bring results home.
STAGED_FIELDS = ("paper_id", "doi", "title", "abstract", "venue", "url")

#: Bounds for "every paper, whenever ingested" (relabelling after a promotion).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


#: The most papers one run may be capped at (`max_papers`, `--max-papers`): the DAGs'
#: Params say the same in their schema. 2**63 failed in SQL, 10**30 killed the task.
MAX_PAPERS = 10_000_000


class MaxPapersError(ValueError):
    """A `max_papers` that is not a whole number from 1 to MAX_PAPERS."""


def check_max_papers(value: object, minimum: int = 1) -> int | None:
    """`value` when None or a whole number from `minimum` to MAX_PAPERS."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_PAPERS:
        return value
    shown = repr(value)[:20] + ("..." if len(repr(value)) > 20 else "")
    raise MaxPapersError(
        f"max_papers {shown} must be a whole number from {minimum} to {MAX_PAPERS}"
    )


class NoModelError(LookupError):
    """No model to label with: no production model, or an unknown version was asked for."""


@dataclass(frozen=True)
class StagedBatch:
    """What `stage_pending` wrote: how many papers, which ones, for which model."""

    path: Path
    paper_ids: list[int]
    model_version: str

    @property
    def count(self) -> int:
        return len(self.paper_ids)


def resolve_model(conn: psycopg2.extensions.connection, version: str | None) -> ModelVersion:
    """The requested model version, or the production model when none is requested."""
    model = get_model_version(conn, version) if version else production_model(conn)
    if model is None:
        if version:
            raise NoModelError(f"model version {version!r} is not registered")
        raise NoModelError(
            "no production model is registered: run the petal_train_model DAG "
            "or register and promote a model version first"
        )
    return model


def verify_local_model(conn: psycopg2.extensions.connection, model: ModelVersion) -> bool:
    """Refuse a corrupt, truncated or other-taxonomy artefact before a run creates anything.

    Checks artefacts on this machine against the stored taxonomy (raises
    `ArtefactError`); an s3:// artefact is left to the container's `model_fn`,
    as reading it here would mean downloading it. Returns whether it checked.
    """
    if "://" in model.artefact_uri and not model.artefact_uri.startswith("file://"):
        return False
    from petal_labeller.model.artefact import verify_artefact
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.store.taxonomy import read_taxonomy

    verify_artefact(local_path(model.artefact_uri), read_taxonomy(conn))
    return True


def stage_pending(
    conn: psycopg2.extensions.connection,
    path: Path,
    model_version: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> StagedBatch:
    """Write the papers ingested in `[since, until)` that `model_version` has not labelled.

    No bounds means every paper. Nothing is written when there is nothing to do,
    so an empty window leaves no file behind.
    """
    paper_ids: list[int] = []
    with ExitStack() as stack:
        out = None  # opened on the first paper: papers are streamed, never all in memory
        for paper in pending_papers(conn, since or EARLIEST, until or LATEST, model_version, limit):
            if out is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(path.open("w", encoding="utf-8"))
            paper_ids.append(paper["paper_id"])
            record = {name: paper[name] for name in STAGED_FIELDS}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return StagedBatch(path=path, paper_ids=paper_ids, model_version=model_version)
