"""`python -m benchmarks [NAME ...]`: run every benchmark, or the named ones.

A benchmark is a module `benchmarks/<name>.py` or a package with a
`__main__.py`; each runs as `python -m benchmarks.<name>` in its own process,
so one benchmark's imports and memory never skew another's numbers. The
research runs in `ON_REQUEST` (hours on 2 cores) run only when named, e.g.
`python -m benchmarks learning_curve`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Research runs of an hour or more on 2 cores: run only when named.
ON_REQUEST = {"learning_curve", "active_learning"}


def discover() -> list[str]:
    names = [p.stem for p in HERE.glob("*.py") if not p.name.startswith("_")]
    names += [p.parent.name for p in HERE.glob("*/__main__.py")]
    return sorted(names)


def main(argv: list[str]) -> int:
    found = discover()
    chosen = argv or [name for name in found if name not in ON_REQUEST]
    unknown = [name for name in chosen if name not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {found}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        print(f"== benchmarks.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
