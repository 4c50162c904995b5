"""Hostile model artefacts (issue 12, items 1-5): crafted tars, cycles, bombs, damage, modes.

An artefact "skeleton" holds every file the check reads and dummy weights, so each
refusal is shown in milliseconds: the check runs before any weight would load.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petal_labeller.cli import main
from petal_labeller.model.artefact import pack, unpack, verify_artefact
from petal_labeller.model.predict import predict_file
from petal_labeller.runtime import archive
from petal_labeller.runtime.cache import cached_artefact
from petal_labeller.runtime.errors import ArtefactError, UnsafeArtefactError
from petal_labeller.runtime.handlers import model_fn
from petal_labeller.runtime.load import load_model
from petal_labeller.runtime.validate import (
    MAX_CHECK_FIELD_CHARS,
    MAX_CHECK_PAPERS,
    MAX_CHECK_PAPERS_BYTES,
    check_folder,
    check_label_records,
    runtime_record,
)
from petal_labeller.taxonomy import Label, Taxonomy

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LABELS = [
    {"id": "move", "name": "Move", "level": 1, "parent": None},
    {"id": "swim", "name": "Swim", "level": 2, "parent": "move"},
]
TREE = Taxonomy(Label(r["id"], r["name"], r["level"], r["parent"]) for r in LABELS)


def skeleton(folder: Path, labels: list | None = None, thresholds: object = None) -> Path:
    """An artefact folder the check accepts (weights are dummies: loading would fail later)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "runtime.json": runtime_record(),
        "labeller.json": {"combiner": "blend", "max_length": 16, "scorers": {"head": 1.0}},
        "labels.json": LABELS if labels is None else labels,
        "thresholds.json": {"global": 0.5} if thresholds is None else thresholds,
        "config.json": {},
        "tokenizer_config.json": {},
    }
    for name, payload in files.items():
        (folder / name).write_text(json.dumps(payload), encoding="utf-8")
    for name in ("model.safetensors", "head.safetensors"):
        (folder / name).write_bytes(b"\0" * 64)
    return folder


def tar_of(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# Item 1: extraction is safe whatever the members, and the check refuses what it refuses --
NAMES = st.lists(
    st.sampled_from(["a", "b", "..", ".", "", "/", "c:", "\\"]), min_size=1, max_size=4
).map("/".join)
KINDS = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.FIFOTYPE,
        tarfile.CHRTYPE,
    ]
)
MEMBERS = st.lists(
    st.tuples(NAMES, KINDS, st.sampled_from(["a", "../x", "/etc/passwd", "b/c"])),
    min_size=1,
    max_size=6,
)


@FAST
@given(members=MEMBERS)
def test_no_member_list_writes_outside_its_folder_and_the_check_agrees(tmp_path_factory, members):
    root = tmp_path_factory.mktemp("tar")
    tar = tar_of(root / "m.tar.gz", [member(n, kind=k, link=t) for n, k, t in members])
    outside_before = files_under(root)
    try:
        archive.scan(tar)
        scanned = True
    except UnsafeArtefactError:
        scanned = False
    try:
        archive.extract(tar, root / "out")
        extracted = True
    except (UnsafeArtefactError, ArtefactError):
        extracted = False
    assert scanned == extracted  # verify_artefact's scan refuses exactly what unpack refuses
    written = files_under(root) - outside_before
    assert all(p == "out" or p.startswith("out/") for p in written)
    for path in (root / "out").rglob("*"):
        assert not path.is_symlink() and (path.is_file() or path.is_dir())
    if not extracted:
        assert files_under(root / "out") == set()


def test_a_link_then_a_file_through_it_writes_nothing(tmp_path):
    """The pre-2025 tarfile escape: a symlink member, then a file member under that name."""
    tar = tar_of(
        tmp_path / "m.tar.gz",
        [
            member("escape", kind=tarfile.SYMTYPE, link=str(tmp_path / "elsewhere")),
            member("escape/owned.txt", b"owned"),
        ],
    )
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UnsafeArtefactError, match="link"):
        unpack(tar, tmp_path / "out")
    assert not (tmp_path / "elsewhere" / "owned.txt").exists() and not (tmp_path / "out").exists()


# Item 3: caps from the headers, checked before writing -------------------------------
def test_a_decompression_bomb_is_refused_before_a_byte_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("PETAL_ARTEFACT_MAX_MB", "1")
    zeros = b"\0" * (3 << 20)  # 3 MB of zeros: a few KB compressed
    folder = skeleton(tmp_path / "model")
    (folder / "model.safetensors").write_bytes(zeros)
    with tarfile.open(tmp_path / "bomb.tar.gz", "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    assert (tmp_path / "bomb.tar.gz").stat().st_size < 64 * 1024
    with pytest.raises(UnsafeArtefactError, match="exceed"):
        unpack(tmp_path / "bomb.tar.gz", tmp_path / "out")
    with pytest.raises(UnsafeArtefactError, match="exceed"):
        verify_artefact(tmp_path / "bomb.tar.gz", TREE)
    assert not (tmp_path / "out").exists()


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 10)
    tar = tar_of(tmp_path / "m.tar.gz", [member(f"f{i}") for i in range(11)])
    with pytest.raises(UnsafeArtefactError, match="more than 10 members"):
        unpack(tar, tmp_path / "out")


def test_required_files_are_checked_before_writing(tmp_path):
    folder = skeleton(tmp_path / "model")
    (folder / "thresholds.json").unlink()
    tar = tar_of(
        tmp_path / "m.tar.gz", [member(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    )
    with pytest.raises(ArtefactError, match=r"missing file thresholds\.json"):
        unpack(tar, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# Item 4: damage is "corrupt", with the path, exit code 2 -------------------------------
@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("packed")
    folder = skeleton(root / "model")
    (folder / "model.safetensors").write_bytes(os.urandom(200_000))
    return pack(folder, root / "model.tar.gz").read_bytes()


@FAST
@given(data=st.data())
def test_any_truncation_or_bit_flip_is_called_corrupt_or_changes_nothing(
    packed, tmp_path_factory, data
):
    damaged = bytearray(packed)
    if data.draw(st.booleans(), label="truncate"):
        damaged = damaged[: data.draw(st.integers(0, len(packed) - 1), label="cut")]
    else:
        position = data.draw(st.integers(0, len(packed) - 1), label="byte")
        damaged[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    root = tmp_path_factory.mktemp("damaged")
    path = root / "model.tar.gz"
    path.write_bytes(bytes(damaged))
    try:
        out = unpack(path, root / "out")
    except ArtefactError as exc:
        assert str(path) in str(exc)
        assert "corrupt" in str(exc) or "missing file" not in str(exc)
        return
    # Only bytes no checksum covers (gzip's mtime, OS) may change, and then nothing differs.
    original = unpack_bytes(packed, root / "original")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == original


def unpack_bytes(data: bytes, folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    (folder / "m.tar.gz").write_bytes(data)
    out = unpack(folder / "m.tar.gz", folder / "out")
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_petal_model_predict_says_corrupt_and_exits_2(packed, tmp_path, cut):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(packed[: int(len(packed) * cut)])
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"title": "Shark skin"}\n')
    result = CliRunner().invoke(
        main,
        [
            "model",
            "predict",
            "--model",
            str(bad),
            "--papers",
            str(papers),
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "corrupt" in result.output and str(bad) in result.output
    assert "Aborted" not in result.output


# Item 5: deterministic, readable modes ---------------------------------------------------
def test_packed_members_are_0644_and_0755_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        folder = skeleton(tmp_path / "model")
        (folder / "sub").mkdir()
        (folder / "sub" / "vocab.txt").write_text("a\n")
        for path in folder.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        tar_path = pack(folder, tmp_path / "model.tar.gz")
        out = unpack(tar_path, tmp_path / "out")
    finally:
        os.umask(old)
    with tarfile.open(tar_path) as tar:
        modes = {m.name: (m.mode, m.isdir()) for m in tar.getmembers()}
    assert {mode for mode, is_dir in modes.values() if not is_dir} == {0o644}
    assert {mode for mode, is_dir in modes.values() if is_dir} == {0o755}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()} == {0o644}
    assert pack(folder, tmp_path / "again.tar.gz").read_bytes() == tar_path.read_bytes()


# Item 2: a cyclic label tree is refused on every loading path, quickly -------------------
PARENTS = st.lists(st.integers(-1, 7), min_size=1, max_size=8)


@FAST
@given(parents=PARENTS)
def test_label_checks_end_and_refuse_exactly_the_cyclic_trees(parents):
    labels = [
        {"id": f"l{i}", "parent": None if p < 0 or p >= len(parents) else f"l{p}"}
        for i, p in enumerate(parents)
    ]
    seen_cycle = False
    for start in range(len(labels)):
        node, steps = start, 0
        while node is not None and steps <= len(labels):
            parent = labels[node]["parent"]
            node, steps = (None if parent is None else int(parent[1:])), steps + 1
        seen_cycle |= node is not None
    if seen_cycle:
        with pytest.raises(ArtefactError, match="cycle"):
            check_label_records(labels)
    else:
        assert check_label_records(labels) == labels


CYCLIC = [
    {"id": "move", "name": "Move", "level": 1, "parent": "swim"},
    {"id": "swim", "name": "Swim", "level": 2, "parent": "move"},
]
SELF = [{"id": "move", "name": "Move", "level": 1, "parent": "move"}]


@pytest.mark.parametrize("labels", [CYCLIC, SELF], ids=["cycle", "self-parent"])
@pytest.mark.parametrize("path", ["handlers", "evaluate", "predict", "serve", "verify"])
def test_every_loading_path_refuses_a_cyclic_tree(tmp_path, labels, path):
    folder = skeleton(tmp_path / "model", labels=labels)
    tar_path = pack_unchecked(folder, tmp_path / "model.tar.gz")
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"title": "Shark skin"}\n')
    load = {
        "handlers": lambda: model_fn(folder),
        "evaluate": lambda: load_model(tar_path),
        "predict": lambda: predict_file(tar_path, papers, tmp_path / "out.jsonl"),
        "serve": lambda: model_fn(tar_path),  # what the serve app loads a tarball with
        "verify": lambda: verify_artefact(tar_path, TREE),
    }[path]
    with pytest.raises(ArtefactError, match="cycle"):
        load()


def pack_unchecked(folder: Path, tar_path: Path) -> Path:
    """Tar as a hostile user would, without our pack's own check."""
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return tar_path


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"global": "0.5"}, "finite number"),
        ({"global": float("nan")}, "NaN is not a JSON number"),
        ({"global": 0.5, "per_label": {"swim": 7}}, "between"),
        ({"global": True}, "finite"),
    ],
)
def test_thresholds_must_be_numbers_in_range(tmp_path, thresholds, message):
    folder = skeleton(tmp_path / "model", thresholds=thresholds)
    with pytest.raises(ArtefactError, match=message):
        model_fn(folder)


# The optional check papers (runtime/precision.py): checked wherever they are present --
def with_check_papers(folder: Path, data: bytes) -> Path:
    (folder / "check_papers.json").write_bytes(data)
    return folder


GOOD_CHECK = [{"title": "Shark skin", "abstract": "Riblets cut drag.", "venue": ["Nature"]}]
LONG = "x" * (MAX_CHECK_FIELD_CHARS + 1)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"x" * (MAX_CHECK_PAPERS_BYTES + 1), "check_papers.json exceeds"),
        (json.dumps([{"title": "t"}] * (MAX_CHECK_PAPERS + 1)).encode(), "papers exceed"),
        (b"[]", "non-empty JSON list"),
        (b'{"title": "t"}', "non-empty JSON list"),
        (b'[{"title": "t"}, "a string"]', "record 1 must be a JSON object, not str"),
        (json.dumps([{"title": LONG}]).encode(), "record 0: field 'title' is longer than"),
        (json.dumps([{"title": "t", "venue": [LONG]}]).encode(), "field 'venue' is longer"),
        (json.dumps([{"title": "t", "venue": ["v"] * 9}]).encode(), "more than 8 names"),
        (json.dumps([{"title": 7}]).encode(), "record 0: field 'title' must be a string"),
        (json.dumps([{"title": "t", "doi": "10.1/x"}]).encode(), "unexpected fields \\['doi'\\]"),
        (json.dumps([{"title": " ", "abstract": None}]).encode(), "both empty"),
        (b'[{"title": "a\\u0000b"}]', "NUL"),
        (b'[{"title": NaN}]', "check_papers.json is not valid JSON: NaN"),
        (b'[{"title": "t"}', "check_papers.json is not valid JSON"),
        (b"[" * 100_000, "check_papers.json is nested too deeply"),
    ],
    ids=[
        "oversized", "too-many", "empty", "not-a-list", "not-an-object", "long-title",
        "long-venue", "many-venues", "number-title", "extra-field", "empty-paper", "nul",
        "nan", "bad-json", "deep",
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", ["handlers", "evaluate", "serve", "verify", "cache"])
def test_every_loading_path_refuses_bad_check_papers_naming_the_file(
    tmp_path, payload, message, path
):
    folder = with_check_papers(skeleton(tmp_path / "model"), payload)
    tar_path = pack_unchecked(folder, tmp_path / "model.tar.gz")

    def cached() -> None:
        with cached_artefact(tar_path, tmp_path / "cache"):
            pass

    load = {
        "handlers": lambda: model_fn(folder),
        "evaluate": lambda: load_model(tar_path),
        "serve": lambda: model_fn(tar_path),  # what the serve app loads a tarball with
        "verify": lambda: verify_artefact(tar_path, TREE),
        "cache": cached,
    }[path]
    with pytest.raises(ArtefactError, match=message) as refused:
        load()
    assert "check_papers.json" in str(refused.value)
    built = [entry for entry in (tmp_path / "cache").glob("*") if len(entry.name) == 64]
    assert not built, "no cache entry is made of a refused artefact"


def test_good_check_papers_pass_the_check_and_none_is_fine_too(tmp_path):
    folder = with_check_papers(skeleton(tmp_path / "with"), json.dumps(GOOD_CHECK).encode())
    assert check_folder(folder).check_papers == GOOD_CHECK
    assert check_folder(skeleton(tmp_path / "without")).check_papers is None
    tar_path = pack_unchecked(folder, tmp_path / "model.tar.gz")
    verify_artefact(tar_path, TREE)


def test_a_member_too_large_to_keep_is_refused_by_name_not_a_key_error(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "KEEP_BYTES", 1024)  # above every other file here
    folder = with_check_papers(skeleton(tmp_path / "model"), json.dumps(GOOD_CHECK * 40).encode())
    tar_path = pack_unchecked(folder, tmp_path / "model.tar.gz")
    with pytest.raises(ArtefactError, match=r"check_papers\.json is too large to read"):
        verify_artefact(tar_path, TREE)


@pytest.mark.parametrize("hierarchy", ["lifted", "", None, 1, ["cap"]])
def test_an_unknown_hierarchy_is_refused_not_read_as_none(tmp_path, hierarchy):
    """A model whose labeller.json names a rule this runtime does not know would
    otherwise be served with no hierarchy at all, silently."""
    folder = skeleton(tmp_path / "model")
    settings = json.loads((folder / "labeller.json").read_text())
    (folder / "labeller.json").write_text(json.dumps({**settings, "hierarchy": hierarchy}))
    with pytest.raises(ArtefactError, match="'hierarchy' must be one of"):
        model_fn(folder)
