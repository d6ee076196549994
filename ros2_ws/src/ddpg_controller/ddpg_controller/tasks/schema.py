"""The task spec's JSON Schema, generated from the reader that defines the fields.

Editors validate and complete YAML from a JSON Schema (the YAML language server of VS Code and
others reads ``# yaml-language-server: $schema=...``). Each accessor of ``spec._Section`` is the
definition of one field (type, choices, bounds, required); while the built-in specs are read with
``_Section.trace`` set, every definition is recorded, and the schema is built from the records: no
second, hand-kept list of fields. What only Python can check (joints in the URDF, a goal within
reach, a term that needs a goal) stays with :func:`~ddpg_controller.tasks.load_task`.

``python -m ddpg_controller.tasks.schema`` prints it; ``--write`` updates the shipped
``task_spec.schema.json`` (a test keeps the two equal).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import spec

SCHEMA_FILE = Path(__file__).resolve().parent / "task_spec.schema.json"
_ITEM = re.compile(r"\[\d+\]")  # observation[2] -> the items of observation


class _Recorder:
    """The fields each section path defines (``spec.FieldTrace``)."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, dict[str, Any]]] = {}
        self.required: dict[str, set[str]] = {}
        self.allowed: dict[str, set[str]] = {}

    def field(self, path: str, key: str, schema: dict[str, Any], required: bool) -> None:
        path = _ITEM.sub("[]", path)
        known = self.fields.setdefault(path, {})
        if schema or key not in known:  # a typed accessor refines its raw() read
            known[key] = schema
        if required:
            self.required.setdefault(path, set()).add(key)

    def keys(self, path: str, keys: Sequence[str]) -> None:
        self.allowed.setdefault(_ITEM.sub("[]", path), set()).update(keys)

    def object_schema(self, path: str) -> dict[str, Any]:
        fields = self.fields.get(path, {})
        names = sorted(set(fields) | self.allowed.get(path, set()))
        properties = {name: self._property(path, name, fields.get(name, {})) for name in names}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if self.required.get(path):
            schema["required"] = sorted(self.required[path])
        schema["additionalProperties"] = False
        return schema

    def _property(self, path: str, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        child = f"{path}.{name}" if path else name
        if schema.get("type") == "object":
            return self.object_schema(child)
        entries = f"{child}[]"
        if schema.get("type") == "array" and entries in self.fields:
            entry = self.object_schema(entries)
            term = entry["properties"].get("term")
            # _terms: a term that needs nothing but its name may be written as that name.
            shorthand = term is not None and entry.get("required") == ["term"]
            items = {"anyOf": [term, entry]} if shorthand else entry
            return {**schema, "items": items}
        return schema


def generate_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07, which the YAML language server reads) of a task spec."""
    recorder = _Recorder()
    spec._Section.trace = recorder
    try:
        for name in spec.builtin_task_names():
            spec.load_task(name)
    finally:
        spec._Section.trace = None
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://ddpg-controller/task_spec.schema.json",
        "title": "ddpg_controller task spec",
        "description": (
            "A robot task for ddpg_controller: a URDF plus this YAML (docs/own-robot.md). "
            "Generated from ddpg_controller/tasks/spec.py by ddpg_controller.tasks.schema; "
            "load_task() checks what a schema cannot (joints in the URDF, limits, reach)."
        ),
        **recorder.object_schema(""),
    }


def schema_text() -> str:
    return json.dumps(generate_schema(), indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write"]:
        SCHEMA_FILE.write_text(schema_text())
        print(f"wrote {SCHEMA_FILE}")
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
