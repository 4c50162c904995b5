"""The `model.tar.gz` artefact: write, pack, unpack safely, check against a taxonomy.

Loading one is `petal_labeller.runtime.load.load_model`, for a tarball or a folder.

Layout (SageMaker's: the tar root becomes `/opt/ml/model`):

    runtime.json                        the runtime format it needs (petal_labeller.runtime)
    config.json, model.safetensors      encoder (save_pretrained, safetensors)
    tokenizer.json, tokenizer_config.json, vocab.txt, ...
    head.safetensors                    classification head, when "head" is a scorer
    knn.safetensors                     training papers' embeddings + label matrix
    tfidf.json, tfidf.safetensors       TF-IDF vocabularies (word, char_wb) + stop words; idf,
                                        SVM weights, biases
    stack.json, stack.safetensors       stacked recipe: bases, venue names; combiner (scaler,
                                        LR), per-label mean/std, prior, label-name embeddings,
                                        venue table
    labeller.json                       combiner, pooling, max_length, scorers, kNN k/temperature
    labels.json                         full taxonomy records, in output order
    thresholds.json                     {"global": t, "per_label": {...}}
    metrics.json                        validation metrics and learning curve
    model_card.json                     version, base model, data sha256, date, metrics, config
    check_papers.json                   optional: up to 64 real papers (title, abstract, venue),
                                        the training papers bf16 moves most, which the runtime
                                        scores at fp32 and bf16 before `auto` keeps bf16
                                        (model/checks.py, runtime/precision.py)

No code: the installed `petal_labeller.runtime` labels with it, and refuses it
unless runtime.json names the runtime format it reads (see runtime/__init__.py).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from petal_labeller.runtime.archive import scan, unpack
from petal_labeller.runtime.errors import ArtefactError, UnsafeArtefactError
from petal_labeller.runtime.validate import (
    READ_JSON,
    RUNTIME_FILE,
    check_contents,
    check_folder,
    check_label_records,
    parse_json,
    runtime_record,
)
from petal_labeller.taxonomy import Taxonomy

__all__ = ["ArtefactError", "UnsafeArtefactError", "unpack"]

ARTEFACT_NAME = "model.tar.gz"
#: Packed modes, whatever the umask or the writer's: readable by the user `serve` drops to.
FILE_MODE, DIR_MODE = 0o644, 0o755


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_runtime_record(model_dir: str | Path) -> None:
    """Write runtime.json: which runtime format reads this artefact."""
    write_json(Path(model_dir) / RUNTIME_FILE, runtime_record())


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Deterministic, readable members: modes 0644/0755, no owner, no timestamp."""
    info.mode = DIR_MODE if info.isdir() else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def pack(model_dir: str | Path, tar_path: str | Path) -> Path:
    """Tar the folder's contents at the archive root, as SageMaker expects."""
    model_dir, tar_path = Path(model_dir), Path(tar_path)
    add_runtime_record(model_dir)
    check_folder(model_dir)  # never write an artefact our own loader would refuse
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tar_path.with_name(tar_path.name + ".partial")
    # gzip without a name or a timestamp, members normalised: the same folder packs to the
    # same bytes. Level 1: weights barely compress.
    with (
        open(partial, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(model_dir.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ArtefactError(f"{path}: only files and folders go into an artefact")
            name = str(path.relative_to(model_dir))
            tar.add(path, arcname=name, recursive=False, filter=_normalised)
    partial.replace(tar_path)  # readers never see a half-written artefact
    return tar_path


def verify_artefact(model_tar_or_dir: str | Path, taxonomy: Taxonomy) -> None:
    """Refuse a corrupt, truncated, unsafe, incomplete or other-taxonomy artefact, cheaply.

    Meant for before a run creates anything: it reads the archive once, with the
    same member checks as extraction and the same artefact check as loading,
    without writing or loading weights.
    """
    path = Path(model_tar_or_dir)
    if path.is_dir():
        spec = check_folder(path)
    elif path.is_file():
        found = scan(path, keep=lambda name: name in READ_JSON)
        spec = check_contents(found.names, lambda name: found.kept[name], str(path))
    else:
        raise FileNotFoundError(f"model artefact {path} does not exist")
    _check_labels(spec.labels, taxonomy)


@contextlib.contextmanager
def model_folder(model_tar_or_dir: str | Path) -> Iterator[Path]:
    """A folder holding the artefact: the folder itself, or a temporary unpacked copy."""
    path = Path(model_tar_or_dir)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise FileNotFoundError(f"model artefact {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="petal-model-") as tmp:
        yield unpack(path, tmp)


def check_taxonomy(model: Any, taxonomy: Taxonomy) -> None:
    """Refuse a model whose labels.json is not exactly this taxonomy (ids, order, tree)."""
    _check_labels(model.labels, taxonomy)


def _check_labels(labels: Any, taxonomy: Taxonomy) -> None:
    labels = check_label_records(labels)
    ours = [label["id"] for label in labels]
    if ours == taxonomy.ids:
        expected = {r["id"]: r.get("parent") for r in taxonomy.to_records()}
        differ = [r["id"] for r in labels if r.get("parent") != expected[r["id"]]]
        if not differ:
            return
        raise ArtefactError(f"labels.json: parents differ from the taxonomy for {differ[:5]}")
    missing = [label_id for label_id in taxonomy.ids if label_id not in ours]
    extra = [label_id for label_id in ours if label_id not in taxonomy]
    raise ArtefactError(
        f"labels.json does not match the taxonomy: {len(ours)} labels vs {len(taxonomy)}; "
        f"missing {missing[:5]}, unexpected {extra[:5]}"
        + ("" if missing or extra else "; same labels in a different order")
    )


def read_card(model_tar_or_dir: str | Path, name: str = "model_card.json") -> dict[str, Any]:
    """One JSON file of the artefact (default the model card), read with the archive checks."""
    path = Path(model_tar_or_dir)
    if path.is_dir():
        data = (path / name).read_bytes() if (path / name).is_file() else None
    else:
        data = scan(path, keep=lambda member: member == name).kept.get(name)
    if data is None:
        raise FileNotFoundError(f"model artefact {path}: missing file {name}")
    return parse_json(data, name, str(path))
