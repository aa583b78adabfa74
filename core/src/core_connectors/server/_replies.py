"""What a connector returns, made into what the service sends back, for flyteidl's services and Flyte 2's alike.

A ``Resource`` becomes flyteidl's message (outputs converted by the template's interface for a sync result)
with secrets scrubbed from its words; a sync connector's result must be terminal; GetTaskLogs items are
checked and scrubbed. Outputs are the task's data and stay as they are.
"""

from __future__ import annotations

from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2, types_pb2
from google.protobuf import struct_pb2

from .._connector import Resource, is_terminal_phase
from ..secrets import scrub

__all__ = ["logs_response", "output_types", "resource_idl", "terminal_resource"]


def output_types(template: tasks_pb2.TaskTemplate) -> dict[str, types_pb2.LiteralType] | None:
    """The template's output types by name: how native outputs of a sync result become literals."""
    variables = template.interface.outputs.variables
    return {name: var.type for name, var in variables.items()} if variables else None


def resource_idl(
    resource: Any, types: dict[str, types_pb2.LiteralType] | None, into: agent_pb2.Resource | None = None
) -> agent_pb2.Resource:
    """What a connector returned as flyteidl's ``Resource``, scrubbed; TypeError for anything else. Written into
    ``into`` when given: an empty field of the reply, which then needs no copy."""
    if isinstance(resource, Resource):
        if type(resource).to_flyte_idl_sync is not _WRITE:  # a subclass with a wire form of its own (the bridge's)
            written = resource.to_flyte_idl_sync(types)
            if into is None:
                into = written
            else:
                into.CopyFrom(written)
        else:
            if into is None:
                into = agent_pb2.Resource()
            resource._write_idl(into, types)
        # Only the words the Resource has are looked at (most replies: a phase and a short message).
        return _scrubbed(into, bool(resource.message), bool(resource.log_links), bool(resource.custom_info))
    if isinstance(resource, agent_pb2.Resource):
        if into is not None:
            into.CopyFrom(resource)
            resource = into
        if resource.HasField("agent_error"):  # its code may echo a vendor's error (only flyteidl's Resource has it)
            _scrub_field(resource.agent_error, "code")
        return _scrubbed(resource, True, bool(resource.log_links), resource.HasField("custom_info"))
    raise TypeError(f"the connector returned {type(resource).__name__}, expected a Resource")


_WRITE = Resource.to_flyte_idl_sync


def terminal_resource(resource: Any, template: tasks_pb2.TaskTemplate) -> agent_pb2.Resource:
    """A sync connector's result (``do``): RuntimeError unless its phase is terminal."""
    idl = resource_idl(resource, output_types(template))
    if not is_terminal_phase(idl.phase):
        raise RuntimeError(
            f"do() returned the non-terminal phase {_phase_name(idl.phase)}; "
            "a sync connector must return SUCCEEDED, FAILED, RETRYABLE_FAILED or ABORTED"
        )
    return idl


def logs_response(item: Any) -> agent_pb2.GetTaskLogsResponse:
    """One item a connector's get_logs gave, checked and with secrets scrubbed from its lines."""
    if isinstance(item, agent_pb2.GetTaskLogsResponse):
        if item.HasField("body"):
            lines = item.body.results
            lines[:] = [scrub(line) for line in lines]
            for line in getattr(item.body, "structured_lines", ()):  # newer flyteidl
                line.message = scrub(line.message)
        return item
    raise TypeError(f"get_logs yielded {type(item).__name__}, expected GetTaskLogsResponse")


def _scrubbed(resource: agent_pb2.Resource, message: bool, links: bool, info: bool) -> agent_pb2.Resource:
    """Secrets out of the words a connector returns (a vendor's error echoed with the key in it): the message,
    log link names and URIs, and custom_info's strings (each looked at when its flag says it may be set)."""
    if message:
        _scrub_field(resource, "message")
    if links:
        for link in resource.log_links:
            _scrub_field(link, "name")
            _scrub_field(link, "uri")
    if info:
        _scrub_struct(resource.custom_info)
    return resource


def _scrub_field(message: Any, name: str) -> None:
    text = getattr(message, name)
    clean = scrub(text)
    if clean is not text:  # setting a field costs more than reading it: only when something was replaced
        setattr(message, name, clean)


def _scrub_struct(struct: struct_pb2.Struct) -> None:
    for value in struct.fields.values():
        _scrub_value(value)


def _scrub_value(value: struct_pb2.Value) -> None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        value.string_value = scrub(value.string_value)
    elif kind == "struct_value":
        _scrub_struct(value.struct_value)
    elif kind == "list_value":
        for item in value.list_value.values:
            _scrub_value(item)


def _phase_name(phase: int) -> str:
    try:
        return execution_pb2.TaskExecution.Phase.Name(phase)
    except ValueError:
        return str(phase)
