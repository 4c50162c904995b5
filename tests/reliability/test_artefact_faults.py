"""A model artefact that is corrupt, truncated, unsafe, pickled or from another taxonomy is
refused before any label is written; a good one passes."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import tarfile
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from petal_labeller.model.artefact import (
    UnsafeArtefactError,
    check_taxonomy,
    unpack,
    verify_artefact,
)
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.load import load_model
from petal_labeller.store.connection import connect
from tests.fixtures.airflow import RUN_DATE_ISO, load_dag
from tests.reliability.conftest import query, taxonomy

pytestmark = pytest.mark.slow  # every test here needs the trained tiny model


@pytest.fixture(scope="module")
def unpacked(tiny_model_tar, tmp_path_factory) -> Path:
    return unpack(tiny_model_tar, tmp_path_factory.mktemp("artefact") / "model")


def variant(source: Path, target: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of the unpacked artefact `source` (hard links: instant) changed by `edit`."""
    for path in sorted(source.rglob("*")):
        copy = target / path.relative_to(source)
        if path.is_dir():
            copy.mkdir(parents=True, exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, copy)
    edit(target)
    return target


def small_tar(target: Path, members) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return target


def edit_labels(change: Callable[[list[dict]], list[dict]]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "labels.json"
        labels = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()  # a hard link: replace the file, never write through to the original
        path.write_text(json.dumps(change(labels)), encoding="utf-8")

    return edit


def renamed(labels: list[dict]) -> list[dict]:
    """Another taxonomy with the same shape: every id differs."""
    return [
        {**label, "id": f"x_{label['id']}", "parent": label["parent"] and f"x_{label['parent']}"}
        for label in labels
    ]


def reparented(labels: list[dict]) -> list[dict]:
    """Same ids in the same order, but one level-3 label hangs under another branch."""
    level2 = [label["id"] for label in labels if label["level"] == 2]
    leaf = next(label for label in labels if label["level"] == 3)
    leaf["parent"] = next(parent for parent in level2 if parent != leaf["parent"])
    return labels


def _bytes_variant(kind: str) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        if kind == "truncated":
            return data[: len(data) * 3 // 5]
        if kind == "garbage":
            return random.Random(3).randbytes(len(data) // 100)
        flipped = bytearray(data)  # one flipped bit deep inside the compressed weights
        flipped[len(data) // 2] ^= 0x10
        return bytes(flipped)

    return change


@pytest.mark.parametrize("kind", ["truncated", "garbage", "bit-flip"])
def test_damaged_archives_are_refused(tiny_model_tar, tmp_path, kind):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(_bytes_variant(kind)(tiny_model_tar.read_bytes()))
    with pytest.raises(ArtefactError, match="corrupt or truncated"):
        verify_artefact(bad, taxonomy())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (renamed, "does not match the taxonomy"),
        (reparented, "parents differ"),
        (lambda labels: labels[:-1], "131"),
        (lambda labels: list(reversed(labels)), "different order"),
        (lambda labels: {"labels": labels}, "non-empty JSON list"),
    ],
    ids=["renamed", "reparented", "subset", "reordered", "wrong-shape"],
)
def test_artefacts_of_another_taxonomy_are_refused(unpacked, tmp_path, change, message):
    bad = variant(unpacked, tmp_path / "model", edit_labels(change))
    with pytest.raises(ArtefactError, match=message):
        verify_artefact(bad, taxonomy())


def test_missing_weights_and_unsafe_members_are_refused(unpacked, tmp_path):
    no_weights = variant(unpacked, tmp_path / "a", lambda f: (f / "model.safetensors").unlink())
    with pytest.raises(ArtefactError, match=r"missing file model\.safetensors"):
        verify_artefact(no_weights, taxonomy())
    labels = (unpacked / "labels.json").read_bytes()
    for name, kind, link in [
        ("../escape", tarfile.REGTYPE, ""),
        ("/abs/path", tarfile.REGTYPE, ""),
        ("ln", tarfile.SYMTYPE, "/etc"),
        ("hard", tarfile.LNKTYPE, "../../etc/passwd"),
    ]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        labels_info = tarfile.TarInfo("labels.json")
        labels_info.size = len(labels)
        data = b"" if kind == tarfile.REGTYPE else None
        unsafe = small_tar(tmp_path / "unsafe.tar.gz", [(labels_info, labels), (info, data)])
        with pytest.raises(UnsafeArtefactError, match="refusing member"):
            verify_artefact(unsafe, taxonomy())


def test_good_artefact_passes_as_archive_and_folder(tiny_model_tar, tmp_path):
    verify_artefact(tiny_model_tar, taxonomy())
    verify_artefact(unpack(tiny_model_tar, tmp_path / "unpacked"), taxonomy())


class _Payload:
    """A pickle that creates a file when unpickled: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_model_loading_never_unpickles(unpacked, tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(marker))

    def add_pickles(folder: Path) -> None:
        for name in ("pytorch_model.bin", "training_args.bin", "head.pt", "knn.pkl"):
            (folder / name).write_bytes(payload)

    both = variant(unpacked, tmp_path / "both", add_pickles)
    model = load_model(both)  # safetensors are there: the pickles are ignored
    check_taxonomy(model, taxonomy())
    assert model.predict([{"title": "Gecko feet adhere to walls"}])[0]["labels"]
    assert not marker.exists()

    def pickles_only(folder: Path) -> None:
        add_pickles(folder)
        (folder / "model.safetensors").unlink()

    only = variant(unpacked, tmp_path / "only", pickles_only)
    with pytest.raises(ArtefactError, match=r"model\.safetensors"):
        check_taxonomy(load_model(only), taxonomy())
    assert not marker.exists()


# The labelling DAG with a bad production artefact --------------------------------------
def _use_artefact(url: str, artefact: Path) -> None:
    with closing(connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute("UPDATE model_versions SET artefact_uri = %s", (str(artefact),))


def _nothing_written(url: str) -> None:
    assert query(url, "SELECT count(*) FROM paper_labels WHERE origin = 'model'") == [(0,)]
    assert query(url, "SELECT count(*) FROM paper_labelling") == [(0,)]
    assert query(url, "SELECT status FROM labelling_runs") in ([], [("failed",)])


def test_truncated_production_artefact_fails_the_run_before_any_label(
    airflow_db, labelling_database, petal_home, tiny_model_tar, tmp_path, smtp_server
):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(_bytes_variant("truncated")(tiny_model_tar.read_bytes()))
    _use_artefact(labelling_database, bad)

    run = load_dag("petal_label_papers").test(logical_date=datetime.fromisoformat(RUN_DATE_ISO))

    assert run.state == "failed"
    _nothing_written(labelling_database)
    assert len(smtp_server) == 1, "the failure must alert"
    assert not any((petal_home / "runs").rglob("*.jsonl")), "workspace must be cleaned up"


def test_reparented_taxonomy_artefact_fails_the_run_before_any_label(
    airflow_db, labelling_database, petal_home, unpacked, tmp_path
):
    bad = variant(unpacked, tmp_path / "model", edit_labels(reparented))
    _use_artefact(labelling_database, bad)

    run = load_dag("petal_label_papers").test(logical_date=datetime.fromisoformat(RUN_DATE_ISO))

    _nothing_written(labelling_database)
    assert run.state == "failed"
