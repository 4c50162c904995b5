"""The artefact cache (runtime/cache.py): each model version unpacked once, never a half-written,
corrupt or tampered folder served, safe under racing processes, bounded."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest

from petal_labeller.model.artefact import pack, unpack
from petal_labeller.runtime.cache import (
    MANIFEST,
    MARKER,
    cached_artefact,
    evict,
    verify_entry,
)
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.load import load_model
from petal_labeller.runtime.validate import check_folder

pytestmark = pytest.mark.slow  # every test here needs the trained tiny model


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inode(folder: Path) -> int:
    return (folder / "model.safetensors").stat().st_ino


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def built(tiny_model_tar, tmp_path_factory) -> Path:
    """A cache root holding the tiny model's entry, built once for the module."""
    template = tmp_path_factory.mktemp("built") / "cache"
    with cached_artefact(tiny_model_tar, template):
        pass
    return template


@pytest.fixture
def warm_root(built: Path, root: Path) -> Path:
    """A copy of `built` (new files, same contents): a cache some earlier run filled."""
    shutil.copytree(built, root)
    return root


@pytest.fixture(scope="module")
def second_tar(tiny_model_tar, tmp_path_factory) -> Path:
    """Another artefact (another digest): the tiny model with a different model card."""
    folder = unpack(tiny_model_tar, tmp_path_factory.mktemp("second") / "model")
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "version": "tiny-2"}))
    return pack(folder, folder.parent / "model.tar.gz")


def test_first_use_unpacks_a_checked_entry_named_by_the_tarballs_digest(tiny_model_tar, root):
    with cached_artefact(tiny_model_tar, root) as folder:
        assert folder == root / digest(tiny_model_tar)
        check_folder(folder)
        verify_entry(folder, folder.name)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [digest(tiny_model_tar)]


def test_a_later_use_reuses_the_entry_without_unpacking(tiny_model_tar, warm_root, caplog):
    first = inode(warm_root / digest(tiny_model_tar))
    with (
        caplog.at_level("INFO", logger="petal_labeller.runtime.cache"),
        cached_artefact(tiny_model_tar, warm_root) as folder,
    ):
        assert inode(folder) == first
    assert "Unpacking" not in caplog.text


@pytest.mark.parametrize(
    "damage",
    [
        "truncate_weights",
        "flip_a_byte_same_size",
        "add_a_file",
        "remove_a_file",
        "half_written_manifest",
    ],
)
def test_a_corrupt_or_tampered_entry_is_not_trusted_and_is_rebuilt(
    tiny_model_tar, warm_root, damage, caplog
):
    root = warm_root
    folder = root / digest(tiny_model_tar)
    first = inode(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    weights = folder / "model.safetensors"
    if damage == "truncate_weights":
        os.truncate(weights, weights.stat().st_size // 2)
    elif damage == "flip_a_byte_same_size":
        with open(weights, "r+b") as handle:
            handle.seek(weights.stat().st_size // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "add_a_file":
        (folder / "tokenizer.json.bak").write_text("{}")
    elif damage == "remove_a_file":
        (folder / "thresholds.json").unlink()
    else:
        (folder / MANIFEST).write_text(json.dumps(manifest)[:40])
    with pytest.raises(ArtefactError):
        verify_entry(folder, folder.name)

    with (
        caplog.at_level("INFO", logger="petal_labeller.runtime.cache"),
        cached_artefact(tiny_model_tar, root) as rebuilt,
    ):
        assert rebuilt == folder and inode(rebuilt) != first
        verify_entry(rebuilt, rebuilt.name)
        assert json.loads((rebuilt / MANIFEST).read_text()) == manifest
    assert "Not using the cached artefact" in caplog.text and "Unpacking" in caplog.text


def test_a_corrupt_tarball_is_refused_and_leaves_nothing_behind(tiny_model_tar, root, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    data = tiny_model_tar.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with (
        pytest.raises(ArtefactError, match="corrupt or truncated"),
        cached_artefact(broken, root),
    ):
        pytest.fail("a truncated artefact was served")
    assert [p.name for p in root.iterdir() if p.is_dir()] == []


def test_least_recently_used_entries_beyond_the_limit_are_evicted_unless_in_use(
    tiny_model_tar, second_tar, warm_root, monkeypatch
):
    root = warm_root
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE_ENTRIES", "1")
    first, second = digest(tiny_model_tar), digest(second_tar)
    with cached_artefact(tiny_model_tar, root):
        with cached_artefact(second_tar, root):
            pass  # the first is in use: kept although over the limit
        assert (root / first).is_dir() and (root / second).is_dir()
    # Leaving the first: it was just used, the second is over the limit and goes.
    assert (root / first).is_dir() and not (root / second).exists()
    with cached_artefact(second_tar, root):
        pass
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [second]


def test_a_size_cap_and_a_crashed_builders_leftovers_are_cleaned(
    tiny_model_tar, second_tar, warm_root, monkeypatch
):
    root = warm_root
    # A builder killed a moment ago (issue 24 item 16: once kept for an hour, outside
    # the cap): its marked folder goes as soon as its digest's lock is free.
    leftover = root / ".tmp-0123456789abcdef-crashed"
    (leftover / "artefact").mkdir(parents=True)
    (leftover / "artefact" / "model.safetensors").write_bytes(b"0" * 4096)
    (leftover / MARKER).write_text(json.dumps({"digest": "0123456789abcdef" * 4}))
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE_MB", "1")  # smaller than one entry
    with cached_artefact(second_tar, root):
        pass
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [digest(second_tar)]
    # The entry just used stays even over the cap; nothing else is left to evict.
    assert evict(root, keep=digest(second_tar)) == []


def _race(tar: str, root: str, barrier, papers: str, results) -> None:
    """One racing worker: wait for the others, then load through the cache and label."""
    from petal_labeller.runtime.handlers import input_fn, output_fn, predict_fn
    from petal_labeller.runtime.jsonlines import JSONLINES

    os.environ["PETAL_ARTEFACT_CACHE"] = root
    barrier.wait(timeout=300)
    try:
        model = load_model(tar, cache=True)
        body = output_fn(predict_fn(input_fn(papers.encode(), JSONLINES), model), JSONLINES)
        results.put({"pid": os.getpid(), "lines": [json.loads(x) for x in body.splitlines()]})
    except Exception as exc:
        results.put({"pid": os.getpid(), "error": repr(exc)})


def test_racing_processes_each_get_a_valid_model_from_one_entry(tiny_model_tar, root):
    papers = "\n".join(
        json.dumps({"title": f"Paper {n}", "abstract": "Gecko feet adhere to glass."})
        for n in range(3)
    )
    context = multiprocessing.get_context("spawn")
    workers = 3
    barrier, queue = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_race, args=(str(tiny_model_tar), str(root), barrier, papers, queue))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [r.get("error") for r in results] == [None] * workers
    assert len({r["pid"] for r in results}) == workers
    assert all(len(r["lines"]) == 3 and "scores" in r["lines"][0] for r in results)
    assert results[0]["lines"] == results[1]["lines"] == results[2]["lines"]
    names = sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))
    assert names == [digest(tiny_model_tar)]  # one entry, no temporary folder left
    verify_entry(root / names[0], names[0])


def test_a_shared_root_keeps_everything_the_cache_did_not_make(
    tiny_model_tar, second_tar, warm_root, monkeypatch
):
    """Issue 24 item 16: pointed at a shared folder, housekeeping deleted other programs'
    `.tmp-*` folders and any 64-hex folder; now only its marked or manifested ones."""
    root = warm_root
    old = time.time() - 2 * 3600
    foreign = [root / ".tmp-editor-swap", root / ".trash-other", root / ("ab" * 32)]
    for folder in foreign:
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "keep.txt").write_text("not the cache's")
        os.utime(folder, (old, old))
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE_ENTRIES", "1")
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE_MB", "1")
    with cached_artefact(second_tar, root):
        pass
    assert all((folder / "data" / "keep.txt").is_file() for folder in foreign)
    assert not (root / digest(tiny_model_tar)).exists()  # its own entry was evicted


def test_a_bad_cache_setting_fails_before_anything_is_unpacked_or_loaded(
    tiny_model_tar, root, monkeypatch
):
    """Issue 24 item 16: a bad limit failed only after the model loaded (35 s)."""
    from petal_labeller import config
    from petal_labeller.runtime import cache

    def never(*args, **kwargs):
        raise AssertionError("unpacked or loaded before the settings were checked")

    monkeypatch.setattr(cache, "_build", never)
    monkeypatch.setattr("petal_labeller.runtime.load._load_folder", never)
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE", str(root))
    for name, value in (("PETAL_ARTEFACT_CACHE_MB", "abc"), ("PETAL_ARTEFACT_CACHE_ENTRIES", "0")):
        monkeypatch.setenv(name, value)
        with pytest.raises(config.SettingError, match=f"^{name}="):
            load_model(tiny_model_tar, cache=True)
        monkeypatch.delenv(name)
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE", "/tmp/a\nb")
    with pytest.raises(config.SettingError, match=r"^PETAL_ARTEFACT_CACHE="):
        load_model(tiny_model_tar, cache=True)
