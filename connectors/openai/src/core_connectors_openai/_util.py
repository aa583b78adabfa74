"""Small readers of the template and inputs that both connectors share."""

from __future__ import annotations

from typing import Any

from flyteidl.core import literals_pb2, tasks_pb2

from core_connectors.literals import literal_to_python
from core_connectors.templates import custom_dict


def custom_of(task_template: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    """The template's ``custom`` as a new plain dict, integral floats as ints (max_tokens, n, seed...)."""
    return custom_dict(task_template)


def input_value(inputs: literals_pb2.LiteralMap | None, name: str) -> Any:
    """The plain value of input ``name``, or None when it is absent."""
    if inputs is None or name not in inputs.literals:
        return None
    return literal_to_python(inputs.literals[name])
