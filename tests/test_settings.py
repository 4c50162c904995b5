"""Settings from the environment: bounded integers, read when used, one clear line when bad."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.config import SettingError, env_int


def test_an_unset_or_blank_setting_is_its_default(monkeypatch):
    monkeypatch.delenv("PETAL_TEST_SETTING", raising=False)
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 7
    monkeypatch.setenv("PETAL_TEST_SETTING", "  ")
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 7
    monkeypatch.setenv("PETAL_TEST_SETTING", " 10 ")
    assert env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10) == 10


@pytest.mark.parametrize("text", ["abc", "0", "-5", "11", "1e3", "3.5", "9" * 5000, "٣"])
def test_anything_outside_the_range_names_the_setting_and_the_range(monkeypatch, text):
    monkeypatch.setenv("PETAL_TEST_SETTING", text)
    with pytest.raises(SettingError) as caught:
        env_int("PETAL_TEST_SETTING", 7, minimum=1, maximum=10)
    message = str(caught.value)
    assert message.startswith("PETAL_TEST_SETTING=") and "from 1 to 10" in message
    assert len(message) < 120  # a huge value is never echoed whole


def test_petal_model_predict_with_a_bad_artefact_cap_exits_2_with_one_line(
    monkeypatch, tmp_path, tiny_model_tar
):
    monkeypatch.setenv("PETAL_ARTEFACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PETAL_ARTEFACT_MAX_MB", "lots")
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"title": "Shark skin"}\n')
    args = ["model", "predict", "--model", str(tiny_model_tar), "--papers", str(papers)]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2, result.output
    assert "PETAL_ARTEFACT_MAX_MB='lots' must be" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.jsonl").exists()


def test_the_sagemaker_handler_refuses_a_zero_batch_size(monkeypatch, tmp_path, tiny_model_tar):
    """SageMaker and serve size batches from the environment; 0 would never finish a batch."""
    from petal_labeller.model.artefact import unpack
    from petal_labeller.runtime.handlers import model_fn

    unpack(tiny_model_tar, tmp_path / "model")
    monkeypatch.setenv("PETAL_INFERENCE_BATCH_SIZE", "0")
    with pytest.raises(SettingError, match="PETAL_INFERENCE_BATCH_SIZE='0' must be"):
        model_fn(tmp_path / "model")


# One settings module (issue 29 item 4, issue 24 item 14).

import ast  # noqa: E402
import datetime as dt  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

from petal_labeller import config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("PETAL_START_DATE", "2026-10-05", dt.date(2026, 10, 5)),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "45", 45),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "2m", 120),
        (
            "PETAL_AIRFLOW_URL",
            "https://airflow.example.org:8080",
            "https://airflow.example.org:8080",
        ),
        ("PETAL_ALERT_TO", "a@x.org, b@y.org", ("a@x.org", "b@y.org")),
        ("PETAL_BACKEND", " sagemaker ", "sagemaker"),
    ],
)
def test_each_kind_reads_its_values(name, text, value):
    assert config.get(name, {name: text}) == value


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("PETAL_START_DATE", "2026-13-01"),
        ("PETAL_START_DATE", "next tuesday"),
        ("PETAL_START_DATE", "٢٠٢٦-١١-٠١"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "abc"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "-5"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "0"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "2d"),
        ("PETAL_AIRFLOW_URL", "ftp://airflow.example.org"),
        ("PETAL_AIRFLOW_URL", "http://"),
        ("PETAL_AIRFLOW_URL", "http://host:99999"),
        ("PETAL_ALERT_TO", "nobody"),
        ("PETAL_HOME", "/tmp/a\nb"),
        ("PETAL_HOME", "/x" * 5000),
        ("PETAL_INFERENCE_PRECISION", "fp64"),
    ],
)
def test_a_bad_value_of_any_kind_is_one_bounded_error_naming_it(name, text):
    with pytest.raises(config.SettingError) as caught:
        config.get(name, {name: text})
    message = str(caught.value)
    assert message.startswith(f"{name}=") and "must be" in message and len(message) < 160


def test_a_secret_is_never_shown():
    with pytest.raises(config.SettingError) as caught:
        config.get("PETAL_AIRFLOW_PASSWORD", {"PETAL_AIRFLOW_PASSWORD": "hunter2\x00"})
    assert "hunter2" not in str(caught.value)


def test_load_names_every_bad_setting_at_once():
    bad = {"PETAL_START_DATE": "x", "PETAL_SERVE_MAX_QUEUE": "-1"}
    with pytest.raises(config.SettingError) as caught:
        config.load(bad)
    assert "PETAL_START_DATE=" in str(caught.value) and "PETAL_SERVE_MAX_QUEUE=" in str(
        caught.value
    )
    assert config.load({}).petal_backend == "local"


def test_docs_deploy_has_one_table_of_every_setting():
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text[text.index("## 9. Settings") :]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE)
    assert documented == list(config.SETTINGS)


def _environment_reads(tree: ast.AST) -> list[str]:
    """Names read through os.environ[...] / .get / os.getenv in one module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if (owner, node.func.attr) in (
                ("os.environ", "get"),
                ("os", "getenv"),
                ("environ", "get"),
            ):
                found.append(ast.unparse(node.args[0]) if node.args else "?")
        is_environ = isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
        if is_environ and isinstance(node.ctx, ast.Load):
            found.append(ast.unparse(node.slice))
    return found


def test_the_library_reads_its_settings_only_through_config():
    """Every PETAL_* (and every other name in the table) is read through `config.SETTINGS`."""
    offenders = []
    for path in sorted((REPO / "petal_labeller").rglob("*.py")):
        if path.name == "config.py" and path.parent.name == "petal_labeller":
            continue
        for name in _environ_names(path):
            offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def _environ_names(path: Path) -> list[str]:
    reads = _environment_reads(ast.parse(path.read_text(encoding="utf-8")))
    names = [name.strip("'\"") for name in reads]
    return [name for name in names if name.startswith("PETAL_") or name in config.SETTINGS]
