"""The `model.tar.gz` artefact: write, pack, unpack safely, load and check against a taxonomy.

Layout (SageMaker's: the tar root becomes `/opt/ml/model`):

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
    code/inference.py                   petal_labeller/sagemaker/inference.py, copied at pack time
    code/requirements.txt               what inference.py needs in the container
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from petal_labeller.taxonomy import Taxonomy

ARTEFACT_NAME = "model.tar.gz"
INFERENCE_SOURCE = Path(__file__).resolve().parent.parent / "sagemaker" / "inference.py"
# What code/inference.py imports; versions match the training environment's majors.
CODE_REQUIREMENTS = "numpy>=1.26\nsafetensors>=0.4\ntorch>=2.4\ntransformers>=4.44\n"


class UnsafeArtefactError(ValueError):
    """A tar member would land outside the target folder (absolute, `..`, link out)."""


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_code(model_dir: Path) -> None:
    """Copy the one inference.py (never a fork of it) and its requirements into code/."""
    code = model_dir / "code"
    code.mkdir(exist_ok=True)
    shutil.copyfile(INFERENCE_SOURCE, code / "inference.py")
    (code / "requirements.txt").write_text(CODE_REQUIREMENTS, encoding="utf-8")


def pack(model_dir: str | Path, tar_path: str | Path) -> Path:
    """Tar the folder's contents at the archive root, as SageMaker expects."""
    model_dir, tar_path = Path(model_dir), Path(tar_path)
    add_code(model_dir)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tar_path.with_name(tar_path.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:  # weights barely compress
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    partial.replace(tar_path)  # readers never see a half-written artefact
    return tar_path


def _check_member(tar_path: str | Path, member: tarfile.TarInfo, target: Path) -> None:
    if member.name.startswith(("/", "\\")) or ":" in member.name.split("/")[0]:
        # The data filter would quietly strip the slash; an artefact
        # with absolute names was not made by us, so refuse it.
        raise UnsafeArtefactError(f"{tar_path}: refusing member {member.name!r}: absolute path")
    try:
        # The stdlib's "data" filter rejects absolute paths, `..`, links
        # leaving the target, devices; we only turn its verdict into our error.
        tarfile.data_filter(member, str(target))
    except tarfile.FilterError as exc:
        raise UnsafeArtefactError(f"{tar_path}: refusing member {member.name!r}: {exc}") from exc


def unpack(tar_path: str | Path, target_dir: str | Path) -> Path:
    """Extract after checking EVERY member first, so an unsafe archive writes nothing."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(tar_path, member, target)
        tar.extractall(target, members=members, filter="data")
    return target


def verify_artefact(model_tar_or_dir: str | Path, taxonomy: Taxonomy) -> None:
    """Refuse a corrupt, truncated, unsafe, incomplete or other-taxonomy artefact, cheaply.

    Meant for before a run creates anything: it reads the archive once without
    loading weights. Reading every member and the stream's end makes gzip check
    its CRC and length, so truncation or a flipped bit shows here, not mid-run.
    """
    from petal_labeller.sagemaker.inference import REQUIRED_FILES, ArtefactError

    path = Path(model_tar_or_dir)
    if path.is_dir():
        names = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}
        labels_text = (path / "labels.json").read_bytes() if "labels.json" in names else None
    elif path.is_file():
        names, labels_text = set(), None
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    _check_member(path, member, Path("/artefact-check"))
                    if not member.isfile():
                        continue
                    name = member.name.removeprefix("./")
                    names.add(name)
                    handle = tar.extractfile(member)
                    if name == "labels.json":
                        labels_text = handle.read()
                    while handle.read(1 << 20):
                        pass
                while tar.fileobj.read(1 << 20):  # the gzip trailer holds the CRC
                    pass
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArtefactError(f"model artefact {path} is corrupt or truncated: {exc}") from exc
    else:
        raise FileNotFoundError(f"model artefact {path} does not exist")
    missing = [name for name in REQUIRED_FILES if name not in names]
    if missing:
        raise ArtefactError(f"model artefact {path}: missing file(s) {', '.join(missing)}")
    try:
        labels = json.loads(labels_text.decode("utf-8"))
    except ValueError as exc:
        raise ArtefactError(f"model artefact {path}: labels.json is not valid JSON") from exc
    _check_labels(labels, taxonomy)


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
    from petal_labeller.sagemaker.inference import ArtefactError, check_label_records

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


def load_model(
    model_tar_or_dir: str | Path,
    taxonomy: Taxonomy | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
):
    """model_fn over a tar or folder, optionally checked against the expected taxonomy."""
    from petal_labeller.sagemaker.inference import model_fn

    with model_folder(model_tar_or_dir) as folder:
        model = model_fn(folder, precision=precision, batch_size=batch_size)
    if taxonomy is not None:
        check_taxonomy(model, taxonomy)
    return model


def read_card(model_tar_or_dir: str | Path, name: str = "model_card.json") -> dict[str, Any]:
    """One JSON file of the artefact (default the model card), read without unpacking weights."""
    path = Path(model_tar_or_dir)
    if path.is_dir():
        return json.loads((path / name).read_text(encoding="utf-8"))
    with tarfile.open(path, "r:*") as tar:
        try:
            member = tar.extractfile(name)
        except KeyError:
            member = None
        if member is None:
            raise FileNotFoundError(f"model artefact {path}: missing file {name}")
        return json.loads(member.read().decode("utf-8"))
