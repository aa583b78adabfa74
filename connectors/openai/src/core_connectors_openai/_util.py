"""Small readers of the template and inputs that both connectors share."""

from __future__ import annotations

from typing import Any

from flyteidl.core import literals_pb2

from core_connectors.literals import literal_to_python


def input_value(inputs: literals_pb2.LiteralMap | None, name: str) -> Any:
    """The plain value of input ``name``, or None when it is absent."""
    if inputs is None or name not in inputs.literals:
        return None
    return literal_to_python(inputs.literals[name])
