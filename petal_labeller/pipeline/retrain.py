"""One retraining run: export -> train -> evaluate -> gate -> promote, typed, with no Airflow in it.

The `petal_train_model` tasks call these steps one at a time and carry a `RetrainRun`
(then an `Evaluation`) between them in its XCom form, as labelling carries a
`StagedRun` (`pipeline.run`). The numbers themselves (the split, scoring, the gate's
rule) are `pipeline.training`; this module is the run around them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petal_labeller.pipeline.workspace import Workspace, workspace_for

if TYPE_CHECKING:
    from petal_labeller.model.compare import Comparison
    from petal_labeller.pipeline.training import GateDecision
    from petal_labeller.store.models import ModelVersion
    from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)

#: Fetches an `s3://` artefact to a local file (the caller's credentials): (uri, target) -> path.
Fetch = Callable[[str, Path], Path]

_PATHS = ("workdir", "train_dir", "heldout", "artefact")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(frozen=True)
class ProductionModel:
    """The production model a candidate is compared with."""

    version: str
    artefact_uri: str


@dataclass(frozen=True)
class RetrainRun:
    """What `export_run` wrote, and (once trained) where the candidate is.

    `run_key` names the workspace (and the S3 prefix of the sagemaker backend);
    `version` is the candidate's. `artefact` is set by `train_run` (local backend) or
    by the sagemaker path's download, which also sets `outputs`: each model's batch
    transform output on the held-out papers, to be scored here.
    """

    run_key: str
    version: str
    backend: str
    workdir: Path
    train_dir: Path
    heldout: Path
    train_papers: int
    heldout_papers: int
    reviewed_papers: int = 0
    production: ProductionModel | None = None
    artefact: Path | None = None
    outputs: dict[str, str | None] | None = None

    @property
    def workspace(self) -> Workspace:
        return workspace_for(self.run_key)

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe form for XCom (paths as strings)."""
        data = asdict(self)
        for name in _PATHS:
            data[name] = str(data[name]) if data[name] is not None else None
        return data

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> RetrainRun:
        values = _known(cls, data)
        for name in _PATHS:
            if values.get(name) is not None:
                values[name] = Path(values[name])
        if values.get("production"):
            values["production"] = ProductionModel(**values["production"])
        return cls(**values)


@dataclass(frozen=True)
class Evaluation:
    """Both models' numbers on the same held-out papers: what the gate and promotion read.

    `outputs` are each model's checked output, line by paper, for the gate's paired
    bootstrap; `production` and `production_version` are None for a first model.
    """

    version: str
    artefact: str
    candidate: dict[str, Any]
    production: dict[str, Any] | None
    production_version: str | None
    outputs: dict[str, str | None]
    heldout: str
    backend: str
    train_papers: int
    heldout_papers: int
    reviewed_papers: int

    @property
    def first(self) -> bool:
        """No production model yet: nothing to compare with."""
        return self.production is None

    def card(self) -> dict[str, Any]:
        """The candidate's model card (the approver reads it; promotion takes its base model)."""
        from petal_labeller.model.artefact import read_card

        return read_card(self.artefact)

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Evaluation:
        return cls(**_known(cls, data))


def export_run(
    run_key: str,
    version: str,
    backend: str,
    *,
    max_papers: int | None = None,
    database_url: str | None = None,
) -> RetrainRun:
    """Write the curator-labelled papers, split into training and held-out, to the run's
    workspace, and name the production model the candidate is compared with."""
    from petal_labeller.pipeline.training import export_training_set
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import production_model

    workspace = workspace_for(run_key).create()
    exported = export_training_set(workspace.root, limit=max_papers, database_url=database_url)
    with closing(connect(database_url)) as conn:
        production = production_model(conn)
    log.info(
        "Exported %d training and %d held-out papers for model %s",
        exported.train_papers, exported.heldout_papers, version,
    )  # fmt: skip
    log.info(
        "Training on %d papers reviewed by curators (petal review apply)",
        exported.reviewed_papers,
    )
    return RetrainRun(
        run_key=run_key,
        version=version,
        backend=backend,
        workdir=workspace.root,
        train_dir=exported.train_dir,
        heldout=exported.heldout_path,
        train_papers=exported.train_papers,
        heldout_papers=exported.heldout_papers,
        reviewed_papers=exported.reviewed_papers,
        production=(
            ProductionModel(production.version, production.artefact_uri) if production else None
        ),
    )


def train_run(run: RetrainRun, preset_name: str, options: dict[str, Any]) -> RetrainRun:
    """The training entry point's library call, on this machine; the run with its artefact."""
    from petal_labeller.model.config import preset
    from petal_labeller.model.train import train_artefact

    artefact = train_artefact(
        run.train_dir / "papers.jsonl",
        run.train_dir / "taxonomy.json",
        run.workdir / "candidate",
        preset(preset_name, **options),
        progress=False,
        version=run.version,
        # The workspace is deleted after the run; the gate's numbers go to the task log.
        report=False,
    )
    return replace(run, artefact=Path(artefact))


def _read_taxonomy(database_url: str | None) -> Taxonomy:
    from petal_labeller.store.connection import connect
    from petal_labeller.store.taxonomy import read_taxonomy

    with closing(connect(database_url)) as conn:
        return read_taxonomy(conn)


def _scores_here(run: RetrainRun, taxonomy: Taxonomy, fetch: Fetch | None) -> tuple[dict, dict]:
    """The local path: both models label the held-out papers here (the `local` extra);
    (scores, output paths) per model."""
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.pipeline.training import evaluate as score
    from petal_labeller.pipeline.training import heldout_output

    artefact, workdir, heldout = Path(str(run.artefact)), run.workdir, run.heldout
    scores = {"candidate": score(artefact, heldout, taxonomy, workdir), "production": None}
    outputs = {"candidate": str(heldout_output(artefact, workdir)), "production": None}
    if run.production:
        uri = run.production.artefact_uri
        if uri.startswith("s3://"):
            if fetch is None:
                raise ValueError(f"production artefact {uri} is in S3 and no fetch was given")
            uri = str(fetch(uri, workdir / "prod.tar.gz"))
        scores["production"] = score(local_path(uri), heldout, taxonomy, workdir)
        outputs["production"] = str(heldout_output(local_path(uri), workdir))
    return scores, outputs


def _scores_of_outputs(run: RetrainRun, taxonomy: Taxonomy) -> tuple[dict, dict]:
    """The sagemaker path: score the transforms' outputs here, with numpy alone."""
    from petal_labeller.pipeline.training import score_predictions

    outputs = dict(run.outputs or {})
    scores = {
        which: score_predictions(Path(path), run.heldout, taxonomy) if path else None
        for which, path in outputs.items()
    }
    return scores, outputs


def evaluate_run(
    run: RetrainRun, *, fetch: Fetch | None = None, database_url: str | None = None
) -> Evaluation:
    """Candidate and production model on the same held-out papers, scored by the same
    function whichever backend ran them: labelled here (local backend; `fetch` brings an
    `s3://` production artefact), or the transform outputs the run carries (sagemaker).

    Raises `EvaluationError` when an output breaks the contract.
    """
    taxonomy = _read_taxonomy(database_url)
    if run.outputs is None:
        scores, outputs = _scores_here(run, taxonomy, fetch)
    else:
        scores, outputs = _scores_of_outputs(run, taxonomy)
    production = run.production
    log.info("Held-out papers: %d", run.heldout_papers)
    log.info("Candidate %s: %s", run.version, json.dumps(scores["candidate"], sort_keys=True))
    if production:
        log.info(
            "Production %s: %s", production.version,
            json.dumps(scores["production"], sort_keys=True),
        )  # fmt: skip
    return Evaluation(
        version=run.version,
        artefact=str(run.artefact),
        candidate=scores["candidate"],
        production=scores["production"],
        production_version=production.version if production else None,
        outputs=outputs,
        heldout=str(run.heldout),
        backend=run.backend,
        train_papers=run.train_papers,
        heldout_papers=run.heldout_papers,
        reviewed_papers=run.reviewed_papers,
    )


def compare_run(
    evaluation: Evaluation, store_churn_sample: int, database_url: str | None = None
) -> Comparison:
    """The paired bootstrap on the held-out outputs, plus (local backend) a dry relabel of
    a sample of the papers production labelled in the store."""
    from petal_labeller.pipeline.training import compare_outputs

    taxonomy = _read_taxonomy(database_url)
    outputs = evaluation.outputs
    comparison = compare_outputs(
        Path(str(outputs["candidate"])), Path(str(outputs["production"])),
        Path(evaluation.heldout), taxonomy,
    )  # fmt: skip
    if evaluation.backend == "local" and store_churn_sample > 0:
        from petal_labeller.pipeline.churn import store_churn

        churn = store_churn(
            Path(evaluation.artefact),
            str(evaluation.production_version),
            store_churn_sample,
            database_url=database_url,
        )
        comparison = comparison.with_store_churn(churn)
    return comparison


def gate_run(
    evaluation: Evaluation,
    *,
    margin: float,
    max_churn: float,
    store_churn_sample: int,
    database_url: str | None = None,
) -> tuple[GateDecision, Comparison | None]:
    """The quality gate's decision, from the gain's 95% interval and the churn (a first
    model has no comparison), with the comparison it was made on."""
    from petal_labeller.pipeline.training import quality_gate

    comparison = (
        None if evaluation.first else compare_run(evaluation, store_churn_sample, database_url)
    )
    decision = quality_gate(
        evaluation.candidate,
        evaluation.production,
        min_gain=margin,
        comparison=comparison,
        max_churn=max_churn,
    )
    return decision, comparison


def promote_run(evaluation: Evaluation, database_url: str | None = None) -> ModelVersion:
    """Register the candidate as the production model (the artefact kept under PETAL_HOME)."""
    from petal_labeller.pipeline.training import promote_model

    return promote_model(
        evaluation.version,
        Path(evaluation.artefact),
        evaluation.candidate,
        base_model=str(evaluation.card().get("base_model", "unknown")),
        database_url=database_url,
    )


def register_rejected(evaluation: Evaluation, database_url: str | None = None) -> None:
    """Keep a candidate nobody promoted as a registered version, for `petal model promote`."""
    from petal_labeller.pipeline.promotion import register_model

    register_model(
        evaluation.version,
        evaluation.artefact,
        metrics=evaluation.candidate,
        base_model=str(evaluation.card().get("base_model", "unknown")),
        promote=False,
        verify=False,
        database_url=database_url,
    )


def record_decision(
    evaluation: Evaluation,
    decision: str,
    *,
    decided_by: str | None,
    comment: str | None,
    comparison: dict[str, Any] | None,
    database_url: str | None = None,
) -> None:
    """Who decided and on what numbers, on the candidate's model_versions row; a rejected
    (or timed-out) candidate is registered first, not production."""
    from petal_labeller.store.connection import connect
    from petal_labeller.store.promotions import record_decision as record

    if decision in ("rejected", "timed_out"):
        register_rejected(evaluation, database_url)
    with closing(connect(database_url)) as conn:
        record(conn, evaluation.version, decision, decided_by=decided_by, comment=comment,
               comparison=comparison)  # fmt: skip
