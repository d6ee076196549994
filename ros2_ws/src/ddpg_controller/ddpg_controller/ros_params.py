"""ROS 2 parameters declared with descriptors, from plain specs or from a config dataclass.

The learning core's ``DDPGConfig`` is the single source of hyperparameters; the nodes declare one
parameter per field (``ddpg.<field>``, ``ddpg.noise.<field>``) with the field's description, so
``ros2 param describe`` explains each one and YAML files in ``config/`` set them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node

from ddpg_controller.learning.config import MAX_DESCRIPTION_CHARS

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_ARRAY_TYPES = {
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = False) -> Any:
    """Declare one parameter with a typed descriptor and return its value (YAML/CLI override).

    A double accepts an integer in YAML or on the command line (``tau:=1`` means 1.0). A
    description longer than ``MAX_DESCRIPTION_CHARS`` is refused, so every node's stay short.
    """
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(
            f"parameter {name}: description is {len(description)} characters, at most "
            f"{MAX_DESCRIPTION_CHARS}; move the evidence to the bench findings it names"
        )
    value_type = type(default)
    if isinstance(default, tuple | list):
        element = type(default[0]) if default else float
        parameter_type = _ARRAY_TYPES[element]
        default = list(default)
    else:
        parameter_type = _TYPES[value_type]
    descriptor = ParameterDescriptor(
        description=description, type=parameter_type, read_only=read_only
    )
    if value_type is float or parameter_type == ParameterType.PARAMETER_DOUBLE_ARRAY:
        descriptor.dynamic_typing = True  # a YAML "1" for a double parameter is not an error
    value = node.declare_parameter(name, default, descriptor).value
    if value_type is float and isinstance(value, int):
        value = float(value)
    return value


def declare_all(node: Node, specs: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare ``{name: (default, description)}``; returns ``{name: value}``."""
    return {name: declare(node, name, default, text) for name, (default, text) in specs.items()}


def declare_dataclass(node: Node, prefix: str, config_type: type) -> dict[str, Any]:
    """Declare a parameter per field of ``config_type`` (recursing into nested dataclasses).

    Returns the nested dict of values, ready for ``config_type.from_dict``.
    """
    hints = typing.get_type_hints(config_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        name = f"{prefix}.{field.name}"
        if dataclasses.is_dataclass(hints[field.name]):
            values[field.name] = declare_dataclass(node, name, hints[field.name])
            continue
        default = (
            field.default_factory() if field.default is dataclasses.MISSING else field.default  # type: ignore[misc]
        )
        description = field.metadata.get("description", field.name)
        values[field.name] = declare(node, name, default, description)
    return values
