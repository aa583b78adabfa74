"""Small readers of the ``TaskTemplate`` that connectors need every day."""

from __future__ import annotations

from typing import Any

from flyteidl.core import tasks_pb2
from google.protobuf import json_format

__all__ = ["custom_dict"]


def custom_dict(task_template: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    """The template's ``custom`` as a new plain dict; the template is never mutated.

    A protobuf Struct keeps every number as a double, so ``{"max_tokens": 100}`` arrives as ``100.0``:
    integral floats become ints again, which is what the task author wrote in nearly every case (and what
    APIs that count things require).
    """
    return _integral_floats_as_ints(json_format.MessageToDict(task_template.custom))


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value
