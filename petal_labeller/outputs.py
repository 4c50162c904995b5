"""Output paths checked against a command's inputs before anything is opened.

Opening an output for writing truncates it, and replacing it (`.partial` then
rename) swaps it out: either destroys an input named as the output, whether by
the same path, another spelling (`./`, `..`), a hard link or a symlink. So every
command that writes a file or a folder calls `refuse_inputs_as_outputs` first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PathLike = str | os.PathLike[str]


class OutputPathError(ValueError):
    """An output would overwrite one of the command's inputs."""


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file (same inode: links and ../ spellings included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(path: PathLike, folder: PathLike) -> bool:
    """Whether `path` (resolved, links followed) lies in or is the folder `folder`."""
    if not os.path.isdir(folder):
        return False
    inner, outer = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return inner == outer or outer in inner.parents


def _clash(output: PathLike, source: PathLike) -> bool:
    """An output written at `output` would change `source`, or a folder output holds it."""
    return same_file(output, source) or _inside(output, source) or _inside(source, output)


def refuse_inputs_as_outputs(
    outputs: Iterable[tuple[str, PathLike | None]], inputs: Iterable[tuple[str, PathLike | None]]
) -> None:
    """Raise OutputPathError naming both when an output is, holds or lies in an input.

    `outputs` and `inputs` are (option name, path) pairs; None paths are ignored.
    An output folder may not hold an input and an output may not lie in an input folder.
    """
    sources = [(name, path) for name, path in inputs if path is not None]
    for out_name, output in outputs:
        if output is None:
            continue
        for in_name, source in sources:
            if _clash(output, source):
                raise OutputPathError(
                    f"{out_name} {output} would overwrite {in_name} {source}: "
                    "choose another output path"
                )
