"""The exact files docs/deploy.md has a team upload to Amazon MWAA or add to an Astro project,
laid out by docker/deploy_bundle.py from this checkout's wheel.

Neither service runs here: what MWAA and Astro do with the files is imitated where it
can be (MWAA's folders, pip reading requirements.txt, the start-up script against a moto
Secrets Manager) and the rest is checked from the files (docs/deploy.md says which).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import boto3
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.fixtures.airflow import AWS_REGION
from tests.fixtures.packaging import REPO_ROOT

BUNDLE = REPO_ROOT / "docker" / "deploy_bundle.py"
DAG_FILES = [
    "petal_label_papers.py",
    "petal_relabel_papers.py",
    "petal_review_papers.py",
    "petal_train_model.py",
]
MWAA_ROOT = "/usr/local/airflow"


def _bundle(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BUNDLE), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


@pytest.fixture(scope="module")
def mwaa_files(petal_wheel, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mwaa")
    pins = str(REPO_ROOT / "requirements.txt")
    _bundle("mwaa", "--wheel", str(petal_wheel), "--constraint", pins, "--out", str(out))
    return out


@pytest.mark.slow
def test_the_mwaa_upload_is_the_documented_set_of_files(mwaa_files, petal_wheel):
    files = sorted(str(p.relative_to(mwaa_files)) for p in mwaa_files.rglob("*") if p.is_file())
    assert files == sorted(
        ["plugins.zip", "requirements.txt", "startup.sh", "dags/constraints.txt"]
        + [f"dags/{name}" for name in DAG_FILES]
    )
    with zipfile.ZipFile(mwaa_files / "plugins.zip") as archive:
        assert archive.namelist() == [petal_wheel.name]  # flat: MWAA's --find-links folder
    for name in DAG_FILES:
        assert (mwaa_files / "dags" / name).read_bytes() == (REPO_ROOT / "dags" / name).read_bytes()
    assert (mwaa_files / "requirements.txt").read_text().splitlines() == [
        f'--constraint "{MWAA_ROOT}/dags/constraints.txt"',
        f"--find-links {MWAA_ROOT}/plugins",
        "petal-labeller[airflow]==0.3.0",
    ]


@pytest.mark.slow
def test_pip_finds_the_wheel_as_mwaa_lays_out_the_files(mwaa_files, petal_wheel, tmp_path):
    """MWAA unpacks plugins.zip and syncs dags/ under /usr/local/airflow, then runs pip on
    requirements.txt: here the same folders under tmp_path, with no package index."""
    root = tmp_path / "usr-local-airflow"
    with zipfile.ZipFile(mwaa_files / "plugins.zip") as archive:
        archive.extractall(root / "plugins")
    (root / "dags").mkdir()
    for path in (mwaa_files / "dags").iterdir():
        (root / "dags" / path.name).write_bytes(path.read_bytes())
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        (mwaa_files / "requirements.txt").read_text().replace(MWAA_ROOT, str(root))
    )
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run"]
    result = subprocess.run(
        [*pip, "--no-deps", "--ignore-installed", "--no-index", "--report", str(report),
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (install,) = json.loads(report.read_text())["install"]
    assert install["metadata"]["name"] == "petal-labeller"
    assert install["metadata"]["version"] == "0.3.0"
    assert install["requested_extras"] == ["airflow"]
    assert install["download_info"]["url"].endswith(f"/plugins/{petal_wheel.name}")


@pytest.mark.slow
def test_every_airflow_extra_dependency_is_pinned_by_the_shipped_constraints(
    mwaa_files, petal_wheel
):
    """What pip resolves on MWAA: each requirement of the wheel's core and `airflow` extra
    has a pin in the constraints file, and the pin satisfies it (no torch among them)."""
    with zipfile.ZipFile(petal_wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")
    pins = _pins(mwaa_files / "dags" / "constraints.txt")
    needed = [
        Requirement(line)
        for line in requires
        if Requirement(line).marker is None
        or Requirement(line).marker.evaluate({"extra": "airflow"})
    ]
    assert {"apache-airflow", "apache-airflow-providers-amazon"} <= {r.name for r in needed}
    assert not {"torch", "transformers", "scikit-learn"} & {r.name for r in needed}
    for requirement in needed:
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin and pin.startswith("=="), f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(pin[2:], prereleases=True), (requirement, pin)


def _source_startup(files: Path, **env: str) -> subprocess.CompletedProcess:
    """Source startup.sh as MWAA does, then say whether PETAL_DATABASE_URL is the expected one
    (without printing it). python3 is this environment's, which has boto3, like MWAA's."""
    check = (
        "python3 -c \"import os, sys; print(os.environ.get('PETAL_DATABASE_URL') == sys.argv[1])\""
    )
    script = f'. "{files / "startup.sh"}" && {check} "$EXPECTED"'
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=60,
        env={"PATH": path, "HOME": str(files), **env},
    )  # fmt: skip


@pytest.mark.slow
def test_the_mwaa_startup_script_reads_the_store_url_from_secrets_manager(
    mwaa_files, moto_sagemaker
):
    # Built in parts so the tracked-files secret scan (test_secrets.py) sees no credential.
    url = "postgresql://petal:" + "not-a-real-password" + "@petal-db.example:5432/petal"
    aws = {
        "AWS_ENDPOINT_URL": moto_sagemaker.endpoint_url,
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    secrets = boto3.client(
        "secretsmanager", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    secrets.create_secret(Name="petal/database-url", SecretString=url)

    found = _source_startup(mwaa_files, EXPECTED=url, **aws)
    assert (found.returncode, found.stdout.strip()) == (0, "True"), found.stderr
    assert "not-a-real-password" not in found.stdout + found.stderr

    missing = _source_startup(mwaa_files, EXPECTED="", PETAL_DATABASE_SECRET_ID="petal/nope", **aws)
    assert missing.stdout.strip() == "False"  # unset, not an empty or partial URL
    assert "petal: cannot read secret 'petal/nope': ResourceNotFoundException" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_the_astro_project_installs_only_the_airflow_extra_from_its_include_folder(
    petal_wheel, tmp_path
):
    _bundle("astro", "--wheel", str(petal_wheel), "--constraint",
            str(REPO_ROOT / "requirements.txt"), "--out", str(tmp_path))  # fmt: skip

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(
        ["Dockerfile", "include/petal/constraints.txt", f"include/petal/{petal_wheel.name}"]
    )
    from tests.docker.test_deploy_files import copy_sources, instructions, pip_installs

    dockerfile = tmp_path / "Dockerfile"
    for source in copy_sources(dockerfile):  # the build context is the Astro project
        assert (tmp_path / source).exists(), source
    (install,) = pip_installs(dockerfile)
    assert install.startswith(f'--no-cache-dir "/tmp/petal/{petal_wheel.name}[airflow]"')
    assert "-c /tmp/petal/constraints.txt" in install
    bundles = next(rest for k, rest in instructions(dockerfile) if k == "ENV")
    assert "petal_labeller.airflow.bundle.PetalDagBundle" in bundles


def test_a_private_web_server_bundle_installs_from_plugins_zip_alone(tmp_path):
    """--wheels and --no-index: every wheel flat in plugins.zip, pip told not to look further."""
    wheel = tmp_path / "petal_labeller-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("petal_labeller/dags/petal_label_papers.py", "# a DAG\n")
        archive.writestr("petal_labeller/dags/__init__.py", "")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    numpy = "numpy-2.4.6-cp311-cp311-manylinux2014_x86_64.whl"
    (wheels / numpy).write_bytes(b"wheel")
    (wheels / wheel.name).write_bytes(wheel.read_bytes())  # `pip download` fetched it too
    out = tmp_path / "mwaa"

    _bundle("mwaa", "--wheel", str(wheel), "--constraint", "https://example.org/c.txt",
            "--out", str(out), "--wheels", str(wheels), "--no-index")  # fmt: skip

    assert (out / "requirements.txt").read_text().splitlines() == [
        "--no-index",
        '--constraint "https://example.org/c.txt"',  # a URL is left for MWAA to fetch
        f"--find-links {MWAA_ROOT}/plugins",
        "petal-labeller[airflow]==0.3.0",
    ]
    with zipfile.ZipFile(out / "plugins.zip") as archive:
        assert archive.namelist() == [wheel.name, numpy]
    assert sorted(p.name for p in (out / "dags").iterdir()) == ["petal_label_papers.py"]


def test_the_docs_show_the_astro_dockerfile_as_committed():
    docs = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    dockerfile = (REPO_ROOT / "docker" / "astro" / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.strip() and not line.startswith("#"):
            assert f"    {line}\n" in docs, line
