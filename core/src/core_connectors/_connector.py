"""The connector contract, in the one module the registry, the service and the local runner depend on
(``core_connectors.base_connector`` re-exports it under flytekit's import path).

Connectors receive the flyteidl messages as they arrive on the wire (``TaskTemplate``, ``LiteralMap``,
``TaskExecutionMetadata``); every connector method may be a plain ``def`` or an ``async def``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, Union

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import json_format, struct_pb2

from ._errors import ResourceMetaDecodeError

Phase: TypeAlias = int
"""A ``flyteidl.core.execution_pb2.TaskExecution.Phase`` value (protobuf enums are ints)."""
_TaskExecution = execution_pb2.TaskExecution


class TaskCategory:
    """A task type and its version: the key propeller routes a task to a connector by."""

    __slots__ = ("_name", "_version")

    def __init__(self, name: str, version: int = 0):
        self._name = name
        self._version = version

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int:
        return self._version

    def __hash__(self) -> int:
        return hash((self._name, self._version))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskCategory):
            return NotImplemented
        return self._name == other._name and self._version == other._version

    def __str__(self) -> str:
        return f"{self._name}_v{self._version}"

    def __repr__(self) -> str:
        return f"TaskCategory(name={self._name!r}, version={self._version})"

    def to_flyte_idl(self) -> agent_pb2.TaskCategory:
        return agent_pb2.TaskCategory(name=self._name, version=self._version)


_M = TypeVar("_M", bound="ResourceMeta")
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@dataclass
class ResourceMeta:
    """Base of a connector's job handle. Subclasses are dataclasses; the bytes go back and forth to propeller.

    ``encode()`` writes exactly what flytekit writes, so propeller can keep polling a job that a flytekit
    connector service created. ``decode()`` never unpickles.
    """

    def encode(self) -> bytes:
        # The same bytes as json.dumps(asdict(self)); a flat dataclass skips asdict's deep copy (CreateTask).
        flat = {name: getattr(self, name) for name in _field_names(typing.cast(Any, type(self)))}
        if _PLAIN_JSON_TYPES.issuperset(map(type, flat.values())):
            return _dumps_flat(flat).encode("utf-8")
        return json.dumps(dataclasses.asdict(self)).encode("utf-8")

    @classmethod
    def decode(cls: type[_M], data: bytes) -> _M:
        if data[:1] != b"{" and data[:2] in _PICKLE_MAGIC:
            raise ResourceMetaDecodeError(
                f"cannot decode {cls.__name__}: the metadata is a Python pickle (as older flytekit connectors "
                "wrote it); it is never unpickled here, so the task must be started again"
            )
        try:
            raw = _json(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ResourceMetaDecodeError(f"cannot decode {cls.__name__}: the metadata is not JSON ({e})") from None
        return typing.cast(_M, _dataclass_from_json(cls, raw, cls.__name__))


def _flat_dumps() -> Callable[[dict[str, Any]], str]:
    """``json.dumps`` for a dict of plain values, its C encoder made once: ``json.dumps`` makes one per call, a
    microsecond of every CreateTask. The same encoder with the same settings, so the same text (checked here;
    ``json.dumps`` itself where the C encoder is missing or answers differently)."""
    plain = json.JSONEncoder()
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        encode = make(
            None,  # no circular check: a flat dict of plain values holds no containers
            plain.default,
            json.encoder.encode_basestring_ascii,
            None,
            plain.key_separator,
            plain.item_separator,
            False,
            False,
            True,
        )

        def dumps(flat: dict[str, Any]) -> str:
            return "".join(encode(flat, 0))

        sample = {"a": "é\n", "b": 1.5, "c": -(2**70), "d": None, "e": True, "f": float("nan"), "g": 1e300}
        if dumps(sample) == json.dumps(sample):
            return dumps
    except Exception:  # any surprise: json.dumps, as before
        pass
    return json.dumps


_dumps_flat = _flat_dumps()
# The C scanner json.loads runs, without its wrappers.
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json(data: bytes) -> Any:
    """``json.loads(data)``, a third of its cost for the common case (GetTask decodes on every poll): an object
    in UTF-8 with nothing after it. Anything else (UTF-16/-32, which json detects, trailing whitespace, an
    error) is left to ``json.loads``, so values and errors stay exactly its own."""
    if data[:1] == b"{" and data[1:2] != b"\0":  # no BOM, no NUL in the first two bytes: json reads UTF-8
        try:
            text = data.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
            value, end = _scan_json(text, 0)
            if end == len(text):
                return value
        except (StopIteration, ValueError):  # ValueError: UnicodeDecodeError, JSONDecodeError
            pass
    return json.loads(data)


def _dataclass_from_json(cls: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ResourceMetaDecodeError(f"cannot decode {where}: expected a JSON object, got {type(raw).__name__}")
    kwargs = {}
    for name, tp, required, as_is in _decode_plan(cls):
        if name in raw:
            value = raw[name]
            # A plain value of the field's own type (the common case) needs no conversion.
            kwargs[name] = value if type(value) in as_is else _value_from_json(tp, value, f"{where}.{name}")
        elif required:
            raise ResourceMetaDecodeError(f"cannot decode {where}: field {name!r} is missing")
    return cls(**kwargs)


@functools.cache
def _field_names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _decode_plan(cls: type) -> tuple[tuple[str, Any, bool, frozenset[type]], ...]:
    """(name, type, required, JSON types taken as they are) of each init field, worked out once per class:
    GetTask decodes on every poll."""
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        if f.init:
            tp = hints.get(f.name, Any)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            plan.append((f.name, tp, required, _json_types_as_is(tp)))
    return tuple(plan)


_PLAIN_JSON_TYPES = frozenset({str, int, float, bool, type(None)})


def _json_types_as_is(tp: Any) -> frozenset[type]:
    """The JSON value types that need no conversion for a field of type ``tp`` (``str | None``: str, None)."""
    if tp in _PLAIN_JSON_TYPES:
        return frozenset({tp})
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        if all(a in _PLAIN_JSON_TYPES for a in args) and not (float in args and int not in args):
            return frozenset(args)
    return frozenset()


def _value_from_json(tp: Any, value: Any, where: str) -> Any:
    """Rebuild one field: nested dataclasses, Optional/Union, list, tuple and dict; basic types are checked."""
    if tp is Any or isinstance(tp, TypeVar) or type(value) is tp:  # the last: a plain field, the common case
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _value_from_json(arg, value, where)
            except ResourceMetaDecodeError as e:
                errors.append(str(e))
        raise ResourceMetaDecodeError(errors[0] if len(errors) == 1 else f"cannot decode {where}: no type fits")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_from_json(tp, value, where)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ResourceMetaDecodeError(f"cannot decode {where}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = [_value_from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=False))]
        else:
            item_type = args[0] if args else Any
            items = [_value_from_json(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return (origin or tp)(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ResourceMetaDecodeError(f"cannot decode {where}: expected an object, got {type(value).__name__}")
        value_type = args[1] if len(args) == 2 else Any
        return {k: _value_from_json(value_type, v, f"{where}[{k!r}]") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and type(value) is not tp:
        raise ResourceMetaDecodeError(f"cannot decode {where}: expected {tp.__name__}, got {type(value).__name__}")
    return value


@dataclass
class Resource:
    """What a connector says about a job: its phase, a message, log links, outputs and custom info.

    ``outputs`` may be a ``LiteralMap`` or a dict of plain Python values, which the service converts by the
    template's interface where it has one. ``phase`` must be a real phase: propeller reads 0 (UNDEFINED) as
    a retryable failure.
    """

    phase: Phase
    message: str | None = None
    log_links: list[execution_pb2.TaskLog] | None = None
    outputs: literals_pb2.LiteralMap | dict[str, Any] | None = None
    custom_info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.phase not in _VALID_PHASES:  # _check_phase, inlined: every GetTask makes one
            _check_phase(self.phase)

    async def to_flyte_idl(self, output_types: Mapping[str, types_pb2.LiteralType] | None = None) -> agent_pb2.Resource:
        """Awaitable, as in flytekit; the same as ``to_flyte_idl_sync``."""
        return self.to_flyte_idl_sync(output_types)

    def to_flyte_idl_sync(self, output_types: Mapping[str, types_pb2.LiteralType] | None = None) -> agent_pb2.Resource:
        """The wire message; plain-value outputs are converted, guided by ``output_types`` when given."""
        resource = agent_pb2.Resource()
        self._write_idl(resource, output_types)
        return resource

    def _write_idl(
        self, resource: agent_pb2.Resource, output_types: Mapping[str, types_pb2.LiteralType] | None = None
    ) -> None:
        """``to_flyte_idl_sync`` into an empty message the caller owns (the service's reply: no copy)."""
        _check_phase(self.phase)
        resource.phase = self.phase
        if self.message:
            resource.message = self.message
        if self.log_links:
            resource.log_links.extend(self.log_links)
        if self.outputs is not None:
            resource.outputs.CopyFrom(_outputs_to_literal_map(self.outputs, output_types))
        if self.custom_info:
            resource.custom_info.CopyFrom(json_format.ParseDict(_jsonable(self.custom_info), struct_pb2.Struct()))

    @classmethod
    def from_flyte_idl(cls, pb2_object: agent_pb2.Resource) -> Resource:
        return cls(
            phase=pb2_object.phase or _phase_from_state(pb2_object.state),
            message=pb2_object.message or None,
            log_links=list(pb2_object.log_links) or None,
            outputs=pb2_object.outputs if pb2_object.HasField("outputs") else None,
            custom_info=(
                json_format.MessageToDict(pb2_object.custom_info) if pb2_object.HasField("custom_info") else None
            ),
        )


_VALID_PHASES = frozenset(_TaskExecution.Phase.values()) - {_TaskExecution.UNDEFINED}


def _check_phase(phase: Any) -> None:
    if phase not in _VALID_PHASES:
        raise ValueError(
            f"Resource.phase must be a TaskExecution phase other than UNDEFINED, got {phase!r} "
            "(propeller reads UNDEFINED as a retryable failure)"
        )


def _phase_from_state(state: int) -> int:
    """Map the deprecated ``State`` enum of old services onto a phase."""
    return {
        agent_pb2.RETRYABLE_FAILURE: _TaskExecution.RETRYABLE_FAILED,
        agent_pb2.PERMANENT_FAILURE: _TaskExecution.FAILED,
        agent_pb2.PENDING: _TaskExecution.INITIALIZING,
        agent_pb2.RUNNING: _TaskExecution.RUNNING,
        agent_pb2.SUCCEEDED: _TaskExecution.SUCCEEDED,
    }.get(state, _TaskExecution.RETRYABLE_FAILED)


def _outputs_to_literal_map(
    outputs: Any, output_types: Mapping[str, types_pb2.LiteralType] | None
) -> literals_pb2.LiteralMap:
    if isinstance(outputs, literals_pb2.LiteralMap):
        return outputs
    if hasattr(outputs, "to_flyte_idl"):  # a flytekit model, from a connector that still uses them
        return outputs.to_flyte_idl()
    if isinstance(outputs, Mapping):
        from .literals import python_to_literal_map

        return python_to_literal_map(outputs, output_types)
    raise TypeError(f"Resource.outputs must be a LiteralMap or a dict, got {type(outputs).__name__}")


def _jsonable(value: Any) -> Any:
    """custom_info goes into a protobuf Struct: make dataclasses, tuples, datetimes and the like fit."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"custom_info value of type {type(value).__name__} is not JSON serialisable")


class ConnectorBase(ABC):  # noqa: B024 - abstract by intent, as in flytekit
    """What every connector has: a display name and the task category it serves."""

    name = "Base Connector"
    max_concurrent_calls: int | None = None
    """The service's bound on this connector's calls at once (a bulkhead: a hanging vendor cannot take every
    thread); None takes the service's default, derived from its thread pool. ``--max-concurrent-calls``
    overrides it."""

    def __init__(self, task_type_name: str, task_type_version: int = 0, **kwargs: Any):
        self._task_category = TaskCategory(name=task_type_name, version=task_type_version)

    @property
    def task_category(self) -> TaskCategory:
        """The task category that the connector supports."""
        return self._task_category


class SyncConnectorBase(ConnectorBase):
    """A connector that answers in one call (ExecuteTaskSync): ``do`` returns a terminal Resource."""

    name = "Base Sync Connector"

    @abstractmethod
    def do(
        self,
        task_template: tasks_pb2.TaskTemplate,
        output_prefix: str,
        inputs: literals_pb2.LiteralMap | None = None,
        **kwargs: Any,
    ) -> Resource | Awaitable[Resource]:
        """Run the task and return its terminal Resource (may be ``async def``)."""
        raise NotImplementedError


class AsyncConnectorBase(ConnectorBase, Generic[_M]):
    """A connector for long jobs: ``create`` starts one, propeller polls ``get``, and may ``delete`` it.

    Generic in its metadata type, so a type checker sees what ``get`` and ``delete`` receive::

        class MyConnector(AsyncConnectorBase[MyMeta]):
            async def get(self, resource_meta: MyMeta, **kwargs: Any) -> Resource: ...

    ``AsyncConnectorBase`` without a parameter works at runtime exactly as flytekit's class. Each method may
    be ``def`` or ``async def``, hence the ``X | Awaitable[X]`` return types.
    """

    name = "Base Async Connector"

    def __init__(self, metadata_type: type[_M], **kwargs: Any):
        super().__init__(**kwargs)
        self._metadata_type = metadata_type

    @property
    def metadata_type(self) -> type[_M]:
        return self._metadata_type

    @abstractmethod
    def create(
        self,
        task_template: tasks_pb2.TaskTemplate,
        output_prefix: str,
        inputs: literals_pb2.LiteralMap | None,
        task_execution_metadata: agent_pb2.TaskExecutionMetadata | None,
        **kwargs: Any,
    ) -> _M | Awaitable[_M]:
        """Start the job and return the handle that ``get`` and ``delete`` receive."""
        raise NotImplementedError

    @abstractmethod
    def get(self, resource_meta: _M, **kwargs: Any) -> Resource | Awaitable[Resource]:
        """Return the job's phase, and its outputs when the connector produces them."""
        raise NotImplementedError

    @abstractmethod
    def delete(self, resource_meta: _M, **kwargs: Any) -> None | Awaitable[None]:
        """Cancel the job. Must be idempotent: deleting a finished or unknown job succeeds."""
        raise NotImplementedError

    def get_metrics(self, resource_meta: _M, **kwargs: Any) -> Any:
        """Optional: the job's metrics (the service answers UNIMPLEMENTED when absent)."""
        raise NotImplementedError

    def get_logs(self, resource_meta: _M, **kwargs: Any) -> Any:
        """Optional: the job's logs, one response or an iterator of them (UNIMPLEMENTED when absent)."""
        raise NotImplementedError


_FAILED_STATES = {"failed", "timeout", "timedout", "canceled", "cancelled", "skipped"}
_SUCCEEDED_STATES = {"done", "succeeded", "success", "completed"}


def convert_to_flyte_phase(state: str) -> Phase:
    """Map a job state word onto a phase, with flytekit 1.16's table; an unknown word is a ValueError."""
    word = state.lower()
    if word in _FAILED_STATES:
        return _TaskExecution.FAILED
    if word == "internal_error":
        return _TaskExecution.RETRYABLE_FAILED
    if word in _SUCCEEDED_STATES:
        return _TaskExecution.SUCCEEDED
    if word in ("running", "terminating"):
        return _TaskExecution.RUNNING
    if word == "pending":
        return _TaskExecution.INITIALIZING
    raise ValueError(f"Unrecognized state: {word}")


_TERMINAL_PHASES = frozenset(
    {_TaskExecution.SUCCEEDED, _TaskExecution.ABORTED, _TaskExecution.FAILED, _TaskExecution.RETRYABLE_FAILED}
)


def is_terminal_phase(phase: Phase) -> bool:
    """True when propeller stops polling: SUCCEEDED, ABORTED, FAILED or RETRYABLE_FAILED."""
    return phase in _TERMINAL_PHASES
