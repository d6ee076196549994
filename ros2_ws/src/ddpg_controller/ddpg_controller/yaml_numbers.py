"""YAML as ROS 2 reads it: ``5e-2`` is a float.

PyYAML follows YAML 1.1, whose float needs a dot (``5.0e-2``), so ``5e-2`` would be the string
"5e-2" and a spec or parameter file would be refused for a number that ROS 2's own parameter
parser accepts. Every YAML file the package reads goes through :func:`load_yaml`. PyYAML only.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["YamlLoader", "load_yaml"]


class YamlLoader(yaml.SafeLoader):
    """A SafeLoader that also reads ``1e-3`` and ``5E+2`` as floats."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)  # a SafeLoader subclass: safe
