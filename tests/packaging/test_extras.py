"""The extras as declared: pinned, matched by the import check, plugin and DAGs in one place."""

from __future__ import annotations

import tomllib
from collections import defaultdict
from importlib.metadata import entry_points, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from petal_labeller import config, extras
from petal_labeller.airflow.dag_files import DAG_FILES, dags_folder
from petal_labeller.cli import expected_error

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS = PROJECT["optional-dependencies"]
SELF = canonicalize_name(PROJECT["name"])


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


def _distributions(extra: str) -> set[str]:
    """The distributions an extra names, through the extras it includes."""
    names = set()
    for line in EXTRAS[extra]:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == SELF:
            for inner in requirement.extras:
                names |= _distributions(inner)
        else:
            names.add(canonicalize_name(requirement.name))
    return names


@pytest.mark.parametrize("extra", [None, *EXTRAS])
def test_every_dependency_is_pinned_in_requirements(extra):
    names = {canonicalize_name(Requirement(d).name) for d in PROJECT["dependencies"]}
    if extra:
        names = _distributions(extra)
    pins = _pins()
    unpinned = sorted(name for name in names if not pins.get(name, "").startswith("=="))
    assert unpinned == [], f"add exact pins to requirements.txt for {unpinned}"


def test_the_airflow_extra_names_no_model_stack():
    assert not {"torch", "transformers", "safetensors", "scikit-learn"} & _distributions("airflow")


def test_the_sagemaker_image_installs_what_the_serve_extra_names():
    """The image pins its own list (docker/sagemaker/requirements.txt): none outside [serve]."""
    lines = (REPO / "docker/sagemaker/requirements.txt").read_text(encoding="utf-8").splitlines()
    image = {canonicalize_name(Requirement(line).name) for line in lines if line[:1].isalnum()}
    core = {canonicalize_name(Requirement(d).name) for d in PROJECT["dependencies"]}
    assert image - _distributions("serve") - core == set()
    assert "torch" in _distributions("serve")  # the image installs it first, from the CPU index


@pytest.mark.parametrize("extra", sorted(extras.EXTRA_MODULES))
def test_the_import_check_matches_the_extra(extra):
    """Each module the check looks for comes from the extra; each model-stack package is checked."""
    provided = {
        module
        for module, dists in packages_distributions().items()
        for dist in dists
        if canonicalize_name(dist) in _distributions(extra)
    }
    checked = set(extras.modules_of(extra))
    assert checked <= provided
    if extra != "airflow":  # the providers share the `airflow` namespace
        modules_of_dist = defaultdict(set)
        for module, dists in packages_distributions().items():
            for dist in dists:
                modules_of_dist[canonicalize_name(dist)].add(module)
        unchecked = sorted(d for d in _distributions(extra) if not modules_of_dist[d] & checked)
        assert unchecked == [], f"add a module of {unchecked} to EXTRA_MODULES[{extra!r}]"


def test_a_missing_module_names_the_extra_and_the_command(monkeypatch):
    extras.require_extra("local", "labelling")  # this (full) environment has everything
    modules = {**extras.EXTRA_MODULES, "local": ("torch", "petal_no_such_module")}
    monkeypatch.setattr(extras, "EXTRA_MODULES", modules)

    with pytest.raises(extras.MissingExtraError) as raised:
        extras.require_extra("serve", "the serve container")

    message = str(raised.value)
    assert message.startswith("the serve container needs petal-labeller's 'serve' extra")
    assert "(missing: petal_no_such_module)" in message
    assert "pip install 'petal-labeller[serve]' -c requirements.txt" in message


def test_the_cli_turns_a_missing_model_stack_into_one_line():
    message = expected_error(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert message and "pip install 'petal-labeller[local]'" in message
    assert expected_error(ModuleNotFoundError("No module named 'nope'", name="nope")) is None


def test_the_plugin_is_registered_by_entry_point_only():
    """A plugins-folder copy would register `petal` twice (Airflow reports that as an error)."""
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.name == "petal"]
    assert entry.value == "petal_labeller.airflow.plugin:PetalPlugin"
    assert list((REPO / "plugins").glob("*.py")) == []


def test_every_dag_file_is_found_by_the_documented_glob():
    """docs/deploy.md copies `petal_*.py`; the wheel ships all of dags/."""
    assert sorted(p.name for p in (REPO / "dags").glob("*.py")) == sorted(DAG_FILES)
    assert dags_folder() == REPO / "dags"  # from a checkout: the checkout's own


def test_state_goes_to_the_home_folder_for_an_installed_package(monkeypatch, tmp_path):
    monkeypatch.delenv("PETAL_HOME", raising=False)
    assert config.petal_home() == REPO / ".petal"
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.petal_home() == tmp_path / "home" / ".petal"
    monkeypatch.setenv("PETAL_HOME", str(tmp_path / "mine"))
    assert config.petal_home() == tmp_path / "mine"
