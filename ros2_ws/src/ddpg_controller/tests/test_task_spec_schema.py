"""The task spec's JSON Schema, for editors: generated from the reader in ``tasks/spec.py`` (the
shipped file is that output), every built-in spec names it and validates against it, and a spec
with a mistake fails it where ``load_task`` fails too."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from test_task_spec import load_error, spec, write_arm

from ddpg_controller.tasks import BUILTIN_DIR, builtin_task_names
from ddpg_controller.tasks.schema import SCHEMA_FILE, generate_schema

SCHEMA_LINE = "# yaml-language-server: $schema=../task_spec.schema.json"


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == generate_schema(), "run: python -m ddpg_controller.tasks.schema --write"
    jsonschema.Draft7Validator.check_schema(shipped)


def test_every_builtin_spec_names_the_schema_and_validates() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    for name in builtin_task_names():
        path = BUILTIN_DIR / f"{name}.yaml"
        assert path.read_text().splitlines()[0] == SCHEMA_LINE, path
        assert (path.parent / "../task_spec.schema.json").resolve() == SCHEMA_FILE
        errors = [
            error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))
        ]
        assert not errors, (name, errors)


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"rewards": []}, []),  # unknown top-level key
        ({"command": {"interface": "torque"}}, ["command", "interface"]),
        ({"reward": [{"term": "ee_goal_distance", "wieght": -1.0}]}, ["reward", 0]),
        ({"timing": {"control_period": -1, "episode_steps": 10}}, ["timing", "control_period"]),
        ({"observation": ["joint_angle"]}, ["observation", 0]),
    ],
)
def test_a_spec_with_a_mistake_fails_the_schema_and_load_task(tmp_path, changes, where) -> None:
    write_arm(tmp_path)
    document = spec(**changes)
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = list(validator.iter_errors(document))
    assert errors and any(list(error.absolute_path)[: len(where)] == where for error in errors)
    load_error(tmp_path, document)  # the reader refuses it as well, naming file and element
    assert not list(validator.iter_errors(spec()))  # the same spec without the mistake passes
