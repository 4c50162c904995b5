"""Unpacked, verified model artefacts kept on disk by content digest, so a worker unpacks each
model version once (issue 15, item 3).

`cached_artefact(tar)` is a context manager yielding a folder that holds the
artefact `tar` unpacked and checked: `<root>/<sha256 of the tarball>/`, root
`PETAL_HOME/cache/artefacts` by default. Load the model inside the `with`; the
folder may be evicted once it is left. The first use unpacks (the safe
extraction and the artefact check of `archive.py`/`validate.py`); later runs,
tasks and processes reuse the folder.

Why each part:
- Unpacked into a temporary folder beside the entry, checked, given a manifest
  (every file's size and sha256), then renamed into place: `rename` is atomic,
  so no reader ever sees a half-written entry, and a crash leaves only a
  temporary folder that the next eviction removes.
- Every use re-hashes the entry's files against its manifest (about 0.3 s for
  the 120 MB artefact, against seconds to unpack): a corrupt, truncated, edited,
  added or removed file makes the entry untrusted and it is rebuilt from the
  tarball. The manifest lives beside the files it describes, so this detects
  damage and edits, not a writer who rewrites the manifest too; PETAL_HOME is
  the worker's own folder, and such a writer could as well replace the code.
- Per-digest lock files (`fcntl.flock`): readers hold a shared lock while they
  load, a builder or an evictor an exclusive one, so two runs needing the same
  version unpack it once and an entry is never deleted under a loading reader.
  The stdlib's flock rather than the `filelock` package: filelock's plain lock
  is exclusive only, and readers must share. Renames are also race tolerant: a
  builder that finds the entry built by someone else keeps theirs.
- Bounded: after each use the least recently used entries beyond
  `PETAL_ARTEFACT_CACHE_ENTRIES` (default 3) or `PETAL_ARTEFACT_CACHE_MB` in
  all (default 2048) are removed, skipping entries in use. The settings are read
  before anything is unpacked or loaded, so a bad one fails at once.
- Only what the cache made is ever removed, so the root may be a shared folder: an
  entry is a digest-named folder holding its manifest, a temporary or trash folder
  one holding the cache's marker file (`MARKER`, naming the digest). A builder's
  temporary folder goes as soon as its digest's lock is free (the builder holds it
  exclusively while it builds, so a free lock means it was killed), not an hour later.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from petal_labeller.runtime.archive import extract
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.validate import check_contents, check_folder

log = logging.getLogger(__name__)

MANIFEST = ".petal-manifest.json"
MANIFEST_FORMAT = 1
#: In every temporary and trash folder the cache makes: what housekeeping may remove.
MARKER = ".petal-cache-marker.json"
#: Entry folders are named by the tarball's sha256; everything else in the root is ours too.
DIGEST = re.compile(r"^[0-9a-f]{64}$")
TEMP_PREFIX, TRASH_PREFIX = ".tmp-", ".trash-"
CHUNK = 1024 * 1024
#: Build/verify rounds before giving up (another process keeps replacing the entry).
ATTEMPTS = 3


def default_root() -> Path:
    """PETAL_HOME/cache/artefacts (PETAL_ARTEFACT_CACHE overrides)."""
    from petal_labeller import config  # a leaf module: the standard library only

    return config.get("PETAL_ARTEFACT_CACHE") or config.petal_home() / "cache" / "artefacts"


def _limits() -> tuple[int, int]:
    from petal_labeller import config

    entries = config.get("PETAL_ARTEFACT_CACHE_ENTRIES")
    return entries, config.get("PETAL_ARTEFACT_CACHE_MB") * 1024 * 1024


def file_digest(path: Path) -> str:
    """sha256 of a file, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(folder: Path) -> dict[str, Path]:
    """Every entry in the folder but the manifest; a link or special file is refused."""
    found = {}
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ArtefactError(f"cached artefact {folder}: {name} is not a plain file")
        if path.is_file() and name != MANIFEST:
            found[name] = path
    return found


def write_manifest(folder: Path, digest: str) -> None:
    """Sizes and sha256 of every file, written last (its presence means the folder is whole)."""
    files = {
        name: {"size": path.stat().st_size, "sha256": file_digest(path)}
        for name, path in sorted(_files(folder).items())
    }
    record = {"format": MANIFEST_FORMAT, "tarball_sha256": digest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def verify_entry(folder: Path, digest: str) -> None:
    """Raise ArtefactError unless the folder holds exactly its manifest's files, unchanged."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = record["files"]
        if record.get("format") != MANIFEST_FORMAT or record.get("tarball_sha256") != digest:
            raise ArtefactError(f"cached artefact {folder}: manifest is for another artefact")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtefactError(f"cached artefact {folder}: no readable manifest ({exc})") from None
    found = _files(folder)
    if set(found) != set(listed):
        changed = sorted(set(found) ^ set(listed))
        raise ArtefactError(f"cached artefact {folder}: files added or removed: {changed[:5]}")
    for name, path in found.items():
        expected = listed[name]
        if path.stat().st_size != expected.get("size") or file_digest(path) != expected.get(
            "sha256"
        ):
            raise ArtefactError(f"cached artefact {folder}: {name} differs from its manifest")


@contextlib.contextmanager
def _locked(root: Path, digest: str, mode: int) -> Iterator[None]:
    """flock on `<root>/<digest>.lock` (created on first use, never deleted: see module doc)."""
    fd = os.open(root / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _build(tar_path: Path, root: Path, digest: str) -> None:
    """Unpack and check into a temporary folder beside the entry, then rename it into place."""
    entry = root / digest
    temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{digest[:16]}-", dir=root))
    _mark(temp, digest)
    try:
        folder = temp / "artefact"
        extract(
            tar_path,
            folder,
            check=lambda found: check_contents(found.names, found.kept.__getitem__, str(tar_path)),
        )
        check_folder(folder)  # what loading checks first, on the written files
        if file_digest(tar_path) != digest:
            raise ArtefactError(f"model artefact {tar_path} changed while it was unpacked")
        write_manifest(folder, digest)
        if entry.exists():  # an untrusted entry: moved aside, never served again
            _discard(entry, root)
        try:
            os.rename(folder, entry)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            log.info("Artefact %s was cached by another process meanwhile", digest[:12])
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _mark(folder: Path, digest: str) -> None:
    (folder / MARKER).write_text(json.dumps({"digest": digest}) + "\n", encoding="utf-8")


def _marked_digest(folder: Path) -> str | None:
    """The digest in the folder's marker, or its manifest's (a trash folder whose marker a
    crash kept from being written); None: not a folder the cache made."""
    for name, key in ((MARKER, "digest"), (MANIFEST, "tarball_sha256")):
        try:
            found = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(found, str) and DIGEST.match(found):
            return found
    return None


def _discard(entry: Path, root: Path) -> None:
    """Rename first (atomic: nobody opens it by its name again), mark, then delete."""
    trash = root / f"{TRASH_PREFIX}{entry.name[:16]}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError):
        _mark(trash, entry.name)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def cached_artefact(tar_path: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """The artefact unpacked and verified in the cache; valid while the `with` lasts."""
    tar_path = Path(tar_path)
    _limits()  # a bad setting fails now, not after the model has loaded
    if not tar_path.is_file():
        raise FileNotFoundError(f"model artefact {tar_path} does not exist")
    root = Path(root) if root is not None else default_root()
    root.mkdir(parents=True, exist_ok=True)
    digest = file_digest(tar_path)
    entry = root / digest
    for _ in range(ATTEMPTS):
        with _locked(root, digest, fcntl.LOCK_SH):
            if _trusted(entry, digest):
                os.utime(entry)  # last use, for eviction
                try:
                    yield entry
                finally:
                    _evict_quietly(root, digest)
                return
        with _locked(root, digest, fcntl.LOCK_EX):
            if not _trusted(entry, digest):
                log.info("Unpacking model artefact %s into the cache", tar_path.name)
                _build(tar_path, root, digest)
    raise ArtefactError(f"cached artefact {entry}: still not valid after {ATTEMPTS} rebuilds")


def _evict_quietly(root: Path, keep: str) -> None:
    """Eviction is housekeeping: its failure must not fail the run that used the cache."""
    try:
        evict(root, keep=keep)
    except OSError:
        log.warning("Could not evict old cached artefacts in %s", root, exc_info=True)


def _trusted(entry: Path, digest: str) -> bool:
    if not entry.is_dir():
        return False
    try:
        verify_entry(entry, digest)
    except ArtefactError as exc:
        log.warning("Not using the cached artefact: %s; rebuilding it", exc)
        return False
    return True


def _remove_leftover(root: Path, folder: Path) -> None:
    """A marked temporary or trash folder whose builder is gone: its digest's lock is free."""
    digest = _marked_digest(folder)
    if digest is None:
        return  # not ours
    if folder.name.startswith(TRASH_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)  # never in use: renamed away to be deleted
        return
    try:
        # Non-blocking and never creating a lock file: a builder holds it while it works.
        fd = os.open(root / f"{digest}.lock", os.O_RDWR)
    except FileNotFoundError:
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(folder, ignore_errors=True)
    except BlockingIOError:
        pass  # a live builder's
    finally:
        os.close(fd)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def evict(root: Path, keep: str | None = None) -> list[str]:
    """Remove least recently used entries beyond the limits (not `keep`, not one in use),
    and what killed builders left; returns the digests removed. Anything in the root the
    cache did not make (no manifest, no marker) is left alone."""
    max_entries, max_bytes = _limits()
    entries = []
    for path in root.iterdir():
        if path.is_symlink() or not path.is_dir():
            continue
        if path.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
            _remove_leftover(root, path)
        elif DIGEST.match(path.name) and _marked_digest(path) == path.name:
            entries.append((path.stat().st_mtime, path))
    # The entry in use now first, then the most recently used.
    entries.sort(key=lambda item: (item[1].name == keep, item[0]), reverse=True)
    removed, kept_count, kept_bytes = [], 0, 0
    for _, path in entries:
        size = _size(path)
        within = kept_count < max_entries and kept_bytes + size <= max_bytes
        if path.name == keep or within:
            kept_count, kept_bytes = kept_count + 1, kept_bytes + size
            continue
        try:
            with _locked(root, path.name, fcntl.LOCK_EX | fcntl.LOCK_NB):
                _discard(path, root)
                # Its lock file too (bounded). A process already waiting on it then
                # finds no entry and builds one; the rename race above tolerates that.
                (root / f"{path.name}.lock").unlink(missing_ok=True)
                removed.append(path.name)
        except BlockingIOError:
            log.info("Cached artefact %s is in use; not evicted now", path.name[:12])
    return removed
