"""Unpacking refuses archives that would write outside the target folder."""

from __future__ import annotations

import io
import tarfile

import pytest

from petal_labeller.model.artefact import UnsafeArtefactError, unpack


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes = b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name: str, target: str, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    "bad",
    [
        file_member("../escape.txt"),
        file_member("/tmp/absolute.txt"),
        file_member("code/../../escape.txt"),
        link_member("evil", "/etc/passwd"),
        link_member("evil", "../../outside"),
        link_member("hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path, bad):
    tar = make_tar(tmp_path / "model.tar.gz", [file_member("labels.json", b"[]"), bad])
    target = tmp_path / "out"
    with pytest.raises(UnsafeArtefactError, match="refusing member"):
        unpack(tar, target)
    assert not target.exists() or not any(target.iterdir())
