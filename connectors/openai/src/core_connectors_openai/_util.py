"""Small readers of the template and inputs that both connectors share."""

from __future__ import annotations

from typing import Any

from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf import json_format

from core_connectors.literals import literal_to_python


def custom_of(task_template: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    """The template's ``custom`` as a new plain dict (the template is never mutated).

    A protobuf Struct keeps every number as a double, so ``max_tokens: 100`` arrives as ``100.0``; integral
    floats become ints again, which the API requires for max_tokens, n, seed and the like.
    """
    return _ints(json_format.MessageToDict(task_template.custom))


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def input_value(inputs: literals_pb2.LiteralMap | None, name: str) -> Any:
    """The plain value of input ``name``, or None when it is absent."""
    if inputs is None or name not in inputs.literals:
        return None
    return literal_to_python(inputs.literals[name])
