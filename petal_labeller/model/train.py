"""Train a recipe on labelled papers and write the `model.tar.gz` artefact.

`fit` runs the recipe `config.recipe` names (recipes.py; the production one is
stacking.py); `save_model` writes the files every artefact has around the
recipe's own; `train_artefact` is the whole job behind `petal model train`, the
SageMaker training entry point and the `petal_train_model` DAG.

The artefact also carries real check papers for the runtime's precision check
(checks.py, written from the saved model so they are measured on what serves).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

from petal_labeller.model.artefact import ARTEFACT_NAME, add_runtime_record, pack, write_json
from petal_labeller.model.checks import write_check_papers
from petal_labeller.model.config import TrainConfig
from petal_labeller.model.data import LabelledPaper, file_sha256, load_labelled
from petal_labeller.model.progress import phase
from petal_labeller.model.recipes import TrainedModel, recipe_for
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)


def fit(
    papers: list[LabelledPaper],
    taxonomy: Taxonomy,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Train `config`'s recipe (default: the production recipe) in memory."""
    config = config or TrainConfig()
    return recipe_for(config).fit(papers, taxonomy, config, progress)


def save_model(trained: TrainedModel, model_dir: Path, card: dict[str, Any]) -> Path:
    """Write the artefact folder (see artefact.py for the layout)."""
    from petal_labeller.model.weights import save_encoder

    model = trained.model
    model_dir.mkdir(parents=True, exist_ok=True)
    save_encoder(model, model_dir)
    recipe_for(trained.config).save(trained, model_dir)
    write_json(model_dir / "labels.json", model.labels)
    write_json(model_dir / "thresholds.json", trained.tuning["thresholds"])
    metrics = {"validation": trained.validation, "history": trained.history, **trained.tuning}
    write_json(model_dir / "metrics.json", metrics)
    write_json(model_dir / "model_card.json", {**card, "metrics": trained.validation})
    add_runtime_record(model_dir)
    return model_dir


def model_card(
    trained: TrainedModel,
    papers: list[LabelledPaper],
    taxonomy: Taxonomy,
    paths: tuple[str | Path, str | Path],
    version: str | None,
) -> dict[str, Any]:
    """Who, when, from what data and with which knobs: model_card.json."""
    now = dt.datetime.now(dt.UTC)
    papers_path, taxonomy_path = paths
    return {
        "name": "petal-labeller",
        "version": version or now.strftime("%Y%m%d%H%M%S"),
        "created": now.isoformat(timespec="seconds"),
        "base_model": trained.config.base_model,
        "preset": trained.config.preset,
        "recipe": trained.config.recipe,
        "training_data": {
            "papers_path": str(papers_path),
            "papers_sha256": file_sha256(papers_path),
            "taxonomy_sha256": file_sha256(taxonomy_path),
            "papers": len(papers),
            "labels": len(taxonomy),
        },
        "training_seconds": round(trained.seconds, 1),
        "config": trained.config.to_dict(),
        "scorers": trained.model.settings["scorers"],
    }


def train_artefact(
    papers_path: str | Path,
    taxonomy_path: str | Path,
    output_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    version: str | None = None,
    report: bool = True,
) -> Path:
    """Train on a labelled JSONL + taxonomy; write `output_dir/model.tar.gz` and its evaluation."""
    from petal_labeller.pipeline.infer import quiet_progress_bars

    # transformers' bars go to stderr, which a task log shows as ERROR lines;
    # model.progress logs where the run is instead.
    quiet_progress_bars()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = Taxonomy.load(taxonomy_path)
    papers = load_labelled(papers_path, taxonomy)
    trained = fit(papers, taxonomy, config, progress=progress)
    card = model_card(trained, papers, taxonomy, (papers_path, taxonomy_path), version)
    with tempfile.TemporaryDirectory(prefix="petal-artefact-", dir=output_dir) as staging:
        phase("saving the artefact and choosing its check papers")
        save_model(trained, Path(staging), card)
        write_check_papers(Path(staging), papers, scan=trained.config.check_scan)
        tar_path = pack(staging, output_dir / ARTEFACT_NAME)
    if report:
        from petal_labeller.model.report import write_training_report

        write_training_report(trained, taxonomy, output_dir / "evaluation")
    log.info("wrote %s in %.0f s", tar_path, trained.seconds)
    return tar_path
