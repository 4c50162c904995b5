"""Lay out the exact files a team uploads to Amazon MWAA, or adds to an Astro project,
from the PeTaL wheel (docs/deploy.md, section 7). Standard library only.

    python docker/deploy_bundle.py mwaa  --wheel dist/petal_labeller-0.3.0-py3-none-any.whl \\
        --constraint CONSTRAINTS --out build/mwaa [--wheels DIR --no-index]
    python docker/deploy_bundle.py astro --wheel dist/petal_labeller-0.3.0-py3-none-any.whl \\
        --constraint requirements.txt --out ASTRO_PROJECT

mwaa: `requirements.txt` (the constraint line, the plugins folder as a package index,
`petal-labeller[airflow]==VERSION`), `plugins.zip` (the wheel, plus every wheel in
--wheels, flat at the top level as MWAA wants), `startup.sh` and `dags/petal_*.py`
(from the wheel). A CONSTRAINTS file (not a URL) is shipped as `dags/constraints.txt`,
which a private web server can read. astro: the Dockerfile, and `include/petal/` with the
wheel and the constraints; the DAGs come from the package (a DAG bundle).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MWAA_ROOT = "/usr/local/airflow"  # where MWAA unpacks plugins.zip and syncs dags/
DAG_PREFIX = "petal_labeller/dags/petal_"


def wheel_version(wheel: Path) -> str:
    """`0.3.0` from `petal_labeller-0.3.0-py3-none-any.whl` (the wheel file name's rule)."""
    name, version, *_ = wheel.name.split("-")
    if name != "petal_labeller" or wheel.suffix != ".whl":
        raise SystemExit(f"error: {wheel} is not a petal_labeller wheel")
    return version


def extract_dags(wheel: Path, folder: Path) -> list[Path]:
    """The DAG files the wheel ships, written flat into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            rest = member.removeprefix(DAG_PREFIX)
            if rest != member and rest.endswith(".py") and "/" not in rest:
                target = folder / member.rsplit("/", 1)[1]
                target.write_bytes(archive.read(member))
                written.append(target)
    if not written:
        raise SystemExit(f"error: {wheel} ships no DAG files (built without dags/?)")
    return sorted(written)


def mwaa(
    wheel: Path, constraint: str, out: Path, wheels: Path | None, no_index: bool = False
) -> None:
    version = wheel_version(wheel)
    out.mkdir(parents=True, exist_ok=True)
    extract_dags(wheel, out / "dags")
    if "://" not in constraint:  # a file: shipped in dags/, where every container reads it
        shutil.copyfile(constraint, out / "dags" / "constraints.txt")
        constraint = f"{MWAA_ROOT}/dags/constraints.txt"
    (out / "requirements.txt").write_text(
        ("--no-index\n" if no_index else "")  # a private web server: plugins.zip has every wheel
        + f'--constraint "{constraint}"\n'
        f"--find-links {MWAA_ROOT}/plugins\n"
        f"petal-labeller[airflow]=={version}\n",
        encoding="utf-8",
    )
    with zipfile.ZipFile(out / "plugins.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        others = sorted(p for p in wheels.glob("*.whl") if p.name != wheel.name) if wheels else []
        for path in [wheel, *others]:
            archive.write(path, arcname=path.name)
    shutil.copyfile(HERE / "mwaa" / "startup.sh", out / "startup.sh")


def astro(wheel: Path, constraint: str, out: Path) -> None:
    dockerfile = (HERE / "astro" / "Dockerfile").read_text(encoding="utf-8")
    if f"/tmp/petal/{wheel.name}[airflow]" not in dockerfile:
        raise SystemExit(f"error: docker/astro/Dockerfile does not install {wheel.name}")
    include = out / "include" / "petal"
    include.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, include / wheel.name)
    shutil.copyfile(constraint, include / "constraints.txt")
    (out / "Dockerfile").write_text(dockerfile, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["mwaa", "astro"])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--constraint", required=True, help="a constraints file, or (mwaa) URL")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, help="mwaa: more wheels for plugins.zip")
    parser.add_argument(
        "--no-index", action="store_true", help="mwaa: install from plugins.zip alone (no PyPI)"
    )
    args = parser.parse_args(argv)
    if args.target == "mwaa":
        mwaa(args.wheel, args.constraint, args.out, args.wheels, args.no_index)
    else:
        if "://" in args.constraint:
            parser.error("astro: --constraint must be a file (it is copied into the image)")
        astro(args.wheel, args.constraint, args.out)
    print(f"wrote {args.target} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
