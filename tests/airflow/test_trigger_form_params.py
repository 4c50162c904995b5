"""The Params behind the trigger form (issue 23 item 11): no choice reads "null", and a
local run needs no instance type."""

from __future__ import annotations

import copy

import jinja2
import pytest

from petal_labeller.airflow.params import (
    DEFAULT_INSTANCE_TYPE,
    instance_type_template,
    run_params,
)
from petal_labeller.airflow.training.flow import training_params


def _serialised_schema(params: dict, name: str) -> dict:
    """The schema as the API server hands it to the form (Airflow's own serialisation)."""
    from airflow.serialization.serialized_objects import BaseSerialization

    return BaseSerialization.deserialize(BaseSerialization.serialize(params[name].dump()))["schema"]


def test_every_backend_choice_has_a_label_the_form_shows_the_empty_one_included():
    schema = _serialised_schema(run_params(), "backend")

    assert schema["enum"] == [None, "local", "sagemaker"]
    # The 3.3 form labels a choice by values_display[String(value)], and null by "null"
    # or "None" (how the None key is serialised); with no label it shows the literal "null".
    labels = schema["values_display"]
    assert "default" in (labels.get("null") or labels.get("None") or "")
    assert {labels["local"], labels["sagemaker"]} == {
        "local (on the worker)",
        "sagemaker (batch transform)",
    }


@pytest.mark.parametrize("params", [run_params, training_params], ids=["labelling", "training"])
def test_instance_types_are_optional_fields_a_local_run_may_leave_empty(params):
    built = params()
    names = [name for name in built if name.endswith("instance_type")]
    assert names
    for name in names:
        # The form requires a field whose type excludes "null".
        assert "null" in _serialised_schema(built, name)["type"], name
        built[name].resolve(None)  # validates: no ParamValidationError


def test_an_empty_instance_type_is_not_an_empty_string():
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        copy.deepcopy(run_params()["instance_type"]).resolve("")


@pytest.mark.parametrize(
    ("value", "rendered"), [(None, DEFAULT_INSTANCE_TYPE), ("ml.c5.2xlarge", "ml.c5.2xlarge")]
)
def test_the_instance_type_template_puts_the_default_back_when_empty(value, rendered):
    template = jinja2.Template(instance_type_template("instance_type", DEFAULT_INSTANCE_TYPE))
    assert template.render(params={"instance_type": value}) == rendered
