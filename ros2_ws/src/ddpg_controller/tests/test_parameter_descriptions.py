"""Every node's parameter descriptions are what ``ros2 param describe`` prints: a line or two (at
most ``MAX_DESCRIPTION_CHARS``), and a longer one is refused when the parameter is declared."""

from __future__ import annotations

import pytest

from ddpg_controller import actor_node, controller_node, deploy_node, learner_node, sim_node
from ddpg_controller.learning.config import MAX_DESCRIPTION_CHARS
from ddpg_controller.ros_params import declare


def test_every_node_schema_describes_each_parameter_in_at_most_300_characters() -> None:
    descriptions = {
        f"{module.__name__}.{name}": text
        for module in (controller_node, learner_node, actor_node, deploy_node)
        for name, (_, text) in module.PARAMETERS.items()
    }
    descriptions |= {f"deploy_node.{n}": text for n, text in deploy_node.OPTIONAL_ARRAYS.items()}
    descriptions |= {f"sim_node.{n}": text for n, text in sim_node.RANDOMIZATION_PARAMS.items()}
    assert MAX_DESCRIPTION_CHARS == 300
    too_long = {name: len(text) for name, text in descriptions.items() if len(text) > 300}
    assert not too_long
    assert all(len(text) > 10 for text in descriptions.values())


def test_a_longer_description_is_refused_naming_the_parameter(ros) -> None:
    with pytest.raises(ValueError, match=r"parameter long_one: description is 301 characters"):
        declare(ros.node, "long_one", 1.0, "x" * 301)
    assert declare(ros.node, "short_one", 1.0, "x" * 300) == 1.0
