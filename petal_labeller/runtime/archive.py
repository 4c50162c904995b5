"""Reading `model.tar.gz` safely: every member checked before anything is written.

Hand-written rather than `tarfile.extractall(filter="data")` because the data
filter is not a safe boundary on interpreters older than the 2025 tarfile fixes
(this project allows Python 3.11.7, where a crafted archive wrote outside its
folder). Here tarfile only parses headers and streams bytes: links, devices and
sparse members are refused outright, every name is checked as a plain relative
path, each file is created by us (no following of links, never over an existing
file) with mode 0644, and member count, member size and total size are capped
from the headers before their data is read. The archive is read to its end
first, so a truncated or bit-flipped one is called corrupt before a byte lands.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from petal_labeller.runtime.errors import ArtefactError, UnsafeArtefactError

MIB = 1024 * 1024
#: The production artefact unpacks to about 120 MB in 17 files; the caps leave room
#: for a larger encoder and refuse a decompression bomb from its headers alone.
MAX_MEMBERS = 256
#: `PETAL_ARTEFACT_MAX_MB` (default 1 GiB) caps the whole and each member.
DEFAULT_MAX_MB = 1024
#: Small files kept in memory during the scan, for the artefact check.
KEEP_BYTES = 64 * MIB
#: A tar ends with zero blocks padded to its record size (10 KiB by default).
MAX_TRAILER_BYTES = 1 * MIB
CHUNK = 1 * MIB
#: What reading a damaged gzip/tar stream raises.
CORRUPT = (tarfile.TarError, EOFError, OSError, zlib.error)


@dataclass
class Scan:
    """One pass over an archive: its members (checked) and the small files asked for."""

    members: list[tuple[str, tarfile.TarInfo]] = field(default_factory=list)
    kept: dict[str, bytes] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return {name for name, member in self.members if member.isreg()}


def member_name(source: str, member: tarfile.TarInfo) -> str:
    """The member's checked relative path; UnsafeArtefactError for anything else."""
    raw = member.name
    if not (member.isreg() or member.isdir()) or member.issparse():
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise UnsafeArtefactError(f"{source}: refusing member {raw!r}: a {kind}")
    if not raw or "\\" in raw or "\x00" in raw or raw.startswith("/"):
        raise UnsafeArtefactError(f"{source}: refusing member {raw!r}: not a relative path")
    parts = [part for part in PurePosixPath(raw).parts if part != "."]
    if not parts or any(part == ".." or ":" in part for part in parts):
        raise UnsafeArtefactError(f"{source}: refusing member {raw!r}: leaves its folder")
    if member.size > max_bytes():
        raise UnsafeArtefactError(
            f"{source}: refusing member {raw!r}: {member.size} bytes exceed {max_bytes()}"
        )
    return "/".join(parts)


def max_bytes() -> int:
    """The cap on an artefact's unpacked size, and on each member's."""
    from petal_labeller import config  # a leaf module: the standard library only

    return config.get("PETAL_ARTEFACT_MAX_MB") * MIB


def _members(tar: tarfile.TarFile, source: str) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """Checked members in archive order, with the count and total size capped as we go."""
    total, seen, files, folders = 0, set(), set(), set()
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise UnsafeArtefactError(f"{source}: more than {MAX_MEMBERS} members")
        name = member_name(source, member)
        if name in seen:
            raise UnsafeArtefactError(f"{source}: refusing member {name!r}: listed twice")
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        if parents & files or (member.isreg() and name in folders):
            raise UnsafeArtefactError(f"{source}: refusing member {name!r}: file and folder")
        seen.add(name)
        folders |= parents
        if member.isreg():
            files.add(name)
        total += member.size
        if total > max_bytes():
            raise UnsafeArtefactError(f"{source}: members exceed {max_bytes()} bytes in all")
        yield name, member


def _check_end(tar: tarfile.TarFile, source: str) -> None:
    """After the last member only zero padding may follow; reading it checks gzip's CRC."""
    left = MAX_TRAILER_BYTES
    while chunk := tar.fileobj.read(CHUNK):
        left -= len(chunk)
        if chunk.strip(b"\0") or left < 0:
            message = f"model artefact {source} is corrupt or truncated: data after its end"
            raise ArtefactError(message)


def _corrupt(path: Path, exc: BaseException) -> ArtefactError:
    detail = f"{type(exc).__name__}: {exc}"
    return ArtefactError(f"model artefact {path} is corrupt or truncated: {detail}")


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise FileNotFoundError(f"model artefact {path} does not exist")
    return tarfile.open(path, "r:*")


def scan(path: str | Path, keep: Callable[[str], bool] = lambda name: False) -> Scan:
    """Read the whole archive without writing: members checked, data read to the end.

    `keep(name)` selects small files whose bytes the caller wants (the JSON the
    artefact check reads).
    """
    path = Path(path)
    result = Scan()
    try:
        with _open(path) as tar:
            for name, member in _members(tar, str(path)):
                result.members.append((name, member))
                if not member.isreg():
                    continue
                handle = tar.extractfile(member)
                if keep(name) and member.size <= KEEP_BYTES:
                    result.kept[name] = handle.read()
                else:
                    while handle.read(CHUNK):
                        pass
            _check_end(tar, str(path))
    except ArtefactError:
        raise
    except FileNotFoundError:
        raise
    except CORRUPT as exc:
        raise _corrupt(path, exc) from None
    return result


def _inside(target: Path, name: str) -> Path:
    """The resolved destination, checked to be inside the resolved target folder."""
    destination = (target / name).resolve()
    if destination != target and target not in destination.parents:
        raise UnsafeArtefactError(f"refusing member {name!r}: resolves outside {target}")
    return destination


def _write(handle, destination: Path, size: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(destination, flags, 0o644)
    except FileExistsError:
        raise ArtefactError(f"cannot unpack into {destination}: it exists already") from None
    with os.fdopen(fd, "wb") as out:
        left = size
        while left:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise EOFError(f"member {destination.name} ends early")
            out.write(chunk)
            left -= len(chunk)
    os.chmod(destination, 0o644)  # whatever the umask: a dropped-privilege server reads it


def extract(
    path: str | Path, target_dir: str | Path, check: Callable[[Scan], None] | None = None
) -> Path:
    """Scan (nothing written), run `check` on the scan, then write each member ourselves.

    `check` sees every name and the kept files before the first byte is written,
    e.g. to require the artefact's files. Existing files in the target are never replaced.
    """
    path = Path(path)
    found = scan(path, keep=lambda name: name.endswith(".json") and "/" not in name)
    if check is not None:
        check(found)
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        with _open(path) as tar:
            for index, (name, member) in enumerate(_members(tar, str(path))):
                if index >= len(found.members) or found.members[index][0] != name:
                    raise ArtefactError(f"model artefact {path} changed while it was unpacked")
                destination = _inside(target, name)
                if member.isdir():
                    destination.mkdir(mode=0o755, parents=True, exist_ok=True)
                    os.chmod(destination, 0o755)
                    continue
                destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                _inside(target, str(destination.parent.relative_to(target)))
                _write(tar.extractfile(member), destination, member.size)
    except ArtefactError:
        raise
    except CORRUPT as exc:
        raise _corrupt(path, exc) from None
    return target


def unpack(tar_path: str | Path, target_dir: str | Path) -> Path:
    """Check the whole archive and the artefact's files (`validate.py`), then extract."""
    from petal_labeller.runtime.validate import check_contents

    path = Path(tar_path)

    def check(found: Scan) -> None:
        check_contents(found.names, found.kept.__getitem__, str(path))

    return extract(path, target_dir, check=check)
