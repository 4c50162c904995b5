"""How `serve` reads its settings from the environment SageMaker gives a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from petal_labeller.sagemaker.serve import MIB, ServeSettings


def test_defaults_are_sagemakers():
    settings = ServeSettings.from_environ({})
    assert settings.model_path == Path("/opt/ml/model")
    assert settings.max_body_bytes == 6 * MIB
    assert (settings.port, settings.workers, settings.max_concurrency) == (8080, 1, 1)


def test_the_model_comes_from_petal_serve_model_then_sm_model_dir():
    assert ServeSettings.from_environ({"SM_MODEL_DIR": "/m"}).model_path == Path("/m")
    both = {"SM_MODEL_DIR": "/m", "PETAL_SERVE_MODEL": "/x/model.tar.gz"}
    assert ServeSettings.from_environ(both).model_path == Path("/x/model.tar.gz")
    assert ServeSettings.from_environ({"SAGEMAKER_BASE_DIR": "/base"}).model_path == Path(
        "/base/model"
    )


def test_body_limit_follows_the_transform_jobs_payload_unless_set_in_bytes():
    assert ServeSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}).max_body_bytes == (
        20 * MIB
    )
    explicit = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "PETAL_SERVE_MAX_BODY_BYTES": "1000"}
    assert ServeSettings.from_environ(explicit).max_body_bytes == 1000


def test_workers_port_and_concurrency_are_read():
    settings = ServeSettings.from_environ(
        {
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "PETAL_SERVE_MAX_CONCURRENCY": "2",
        }
    )
    assert (settings.workers, settings.port, settings.max_concurrency) == (3, 9000, 2)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "many", "must be a whole number from 1 to"),
        ("PETAL_SERVE_MAX_BODY_BYTES", "0", "must be a whole number from 1 to"),
        ("PETAL_SERVE_MAX_CONCURRENCY", "-2", "must be a whole number from 1 to"),
        # Issue 24 item 14: forms int() reads and no operator means, and no ceiling.
        ("PETAL_SERVE_MAX_RECORDS", "١٢", "must be a whole number from 1 to"),
        ("PETAL_SERVE_MAX_QUEUE", "1_000", "must be a whole number from 0 to"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "1000", "must be a whole number from 1 to 64"),
        ("SAGEMAKER_BIND_TO_PORT", "70000", "must be a whole number from 1 to 65535"),
        ("PETAL_SERVE_MAX_HEADERS", "9" * 5000, "must be a whole number from 1 to"),
    ],
)
def test_a_bad_setting_names_the_variable(name, value, message):
    with pytest.raises(ValueError, match=message) as error:
        ServeSettings.from_environ({name: value})
    assert str(error.value).startswith(f"{name}=")
    assert len(str(error.value)) < 120  # a 5,000-digit value is never echoed whole


def test_serve_with_a_bad_setting_exits_2_with_one_line(monkeypatch, capsys):
    from petal_labeller.sagemaker.serve import main

    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "1000")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serve: error: SAGEMAKER_MODEL_SERVER_WORKERS='1000' must be")
    assert "Traceback" not in err and err.count("\n") == 1
