"""A task a user can call locally, and the executor mixins that run a task through its connector.

``ConnectorTask`` is the small, flytekit-free stand-in for a flytekit ``PythonTask`` of a connector plugin:
it renders the ``TaskTemplate`` that the service would receive, and running it goes through the connector
found in the registry by the template's task type and version.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, ClassVar

from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import json_format, struct_pb2

from .._connector import AsyncConnectorBase, ConnectorBase, SyncConnectorBase
from ..literals import literal_map_to_python, python_to_literal_map, variable_map
from ._runner import LOCAL_DOMAIN, LOCAL_PROJECT, LocalRun, LocalRunError

__all__ = ["AsyncConnectorExecutorMixin", "ConnectorTask", "SyncConnectorExecutorMixin"]

RUNTIME_FLAVOR = "core-connectors"


class _ConnectorExecutor:
    """``execute`` and ``aexecute`` for a class with a ``name`` and a ``task_template()`` (ConnectorTask)."""

    _connector_kind: ClassVar[type[ConnectorBase] | None] = None
    name: str
    output_prefix: str | None = None
    progress: bool | None = None

    def task_template(self) -> tasks_pb2.TaskTemplate:
        raise NotImplementedError(f"{type(self).__name__} must render its TaskTemplate (derive from ConnectorTask)")

    def execute(self, **kwargs: Any) -> literals_pb2.LiteralMap:
        """Run the task through its connector, blocking; return the outputs as a LiteralMap."""
        return self.local_run(**kwargs).run()

    async def aexecute(self, **kwargs: Any) -> literals_pb2.LiteralMap:
        """``execute`` on the caller's event loop (notebooks, async code); cancelling it deletes the job."""
        return await self.local_run(**kwargs).arun()

    def local_run(self, **kwargs: Any) -> LocalRun:
        """The run ``execute`` would make, with the keyword inputs converted by the template's interface."""
        template = self.task_template()
        return LocalRun(
            template,
            _input_literals(self.name, template.interface.inputs, kwargs),
            name=self.name,
            output_prefix=self.output_prefix,
            progress=self.progress,
            expect=self._connector_kind,
        )


class SyncConnectorExecutorMixin(_ConnectorExecutor):
    """Runs the task through a sync connector's ``do`` (flytekit's name); use with ConnectorTask."""

    _connector_kind = SyncConnectorBase


class AsyncConnectorExecutorMixin(_ConnectorExecutor):
    """Runs the task through an async connector: create, then get with a growing interval, delete on Ctrl-C."""

    _connector_kind = AsyncConnectorBase


class ConnectorTask(_ConnectorExecutor):
    """A task of ``task_type`` run by its connector: typed inputs and outputs, a ``custom`` dict, maybe SQL.

    ``task(**inputs)`` returns plain Python values: the value for one output, a named tuple in declared
    order for several, and None without declared outputs (or the dict of whatever the connector returned).
    ``execute(**inputs)`` returns the LiteralMap (as flytekit).
    ``inputs``/``outputs`` map names to Python types (int, float, str, bool, datetime, timedelta, list[T],
    dict[str, T], dataclasses, Optional). ``output_prefix`` defaults to a fresh temporary directory per run.
    """

    def __init__(
        self,
        name: str,
        task_type: str,
        task_type_version: int = 0,
        custom: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        sql: str | None = None,
        *,
        config: Mapping[str, str] | None = None,
        output_prefix: str | None = None,
        progress: bool | None = None,
    ):
        self.name = name
        self.task_type = task_type
        self.task_type_version = task_type_version
        self.custom = dict(custom or {})
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.sql = sql
        self.config = dict(config or {})
        self.output_prefix = output_prefix
        self.progress = progress
        # Converted once, so an unsupported type fails here rather than at the first run.
        self._interface = interface_pb2.TypedInterface(
            inputs=variable_map(self.inputs), outputs=variable_map(self.outputs)
        )
        names = list(self.outputs)
        self._outputs_tuple = collections.namedtuple("Outputs", names) if len(names) > 1 else None

    def get_custom(self) -> dict[str, Any]:
        """The template's ``custom`` (JSON-like values); subclasses override it as flytekit tasks do."""
        return self.custom

    def get_config(self) -> dict[str, str]:
        return self.config

    def get_sql(self) -> tasks_pb2.Sql | None:
        return tasks_pb2.Sql(statement=self.sql, dialect=tasks_pb2.Sql.ANSI) if self.sql is not None else None

    def task_template(self) -> tasks_pb2.TaskTemplate:
        """The TaskTemplate the service would receive from propeller for this task."""
        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK,
                project=LOCAL_PROJECT,
                domain=LOCAL_DOMAIN,
                name=self.name,
                version="local",
            ),
            type=self.task_type,
            task_type_version=self.task_type_version,
            metadata=tasks_pb2.TaskMetadata(
                runtime=tasks_pb2.RuntimeMetadata(
                    type=tasks_pb2.RuntimeMetadata.OTHER, version=_version(), flavor=RUNTIME_FLAVOR
                )
            ),
            interface=self._interface,
            config=self.get_config(),
        )
        custom = self.get_custom()
        if custom:
            try:
                template.custom.CopyFrom(json_format.ParseDict(custom, struct_pb2.Struct()))
            except (json_format.ParseError, TypeError, ValueError) as e:
                raise TypeError(f"custom of task {self.name} must hold JSON values: {e}") from None
        sql = self.get_sql()
        if sql is not None:
            template.sql.CopyFrom(sql)
        return template

    def __call__(self, **kwargs: Any) -> Any:
        """Run the task and return its outputs as Python values."""
        return self.python_outputs(self.execute(**kwargs))

    async def acall(self, **kwargs: Any) -> Any:
        """``task(**kwargs)`` for async code: ``await task.acall(...)`` on the caller's loop."""
        return self.python_outputs(await self.aexecute(**kwargs))

    def python_outputs(self, outputs: literals_pb2.LiteralMap) -> Any:
        values = literal_map_to_python(outputs)
        if not self.outputs:
            return values or None
        missing = [n for n in self.outputs if n not in values]
        if missing:
            raise LocalRunError(f"task {self.name} declares outputs {missing} that its connector did not return")
        if self._outputs_tuple is None:
            return values[next(iter(self.outputs))]
        return self._outputs_tuple(**{n: values[n] for n in self.outputs})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, task_type={self.task_type!r})"


def _input_literals(
    name: str, declared: interface_pb2.VariableMap, values: Mapping[str, Any]
) -> literals_pb2.LiteralMap:
    """Check the keyword inputs against the interface (a mistyped name is an error) and convert them."""
    unknown = sorted(set(values) - set(declared.variables))
    if unknown:
        raise TypeError(f"{name}() got unexpected inputs {unknown}; its inputs are {sorted(declared.variables)}")
    missing = sorted(n for n, v in declared.variables.items() if n not in values and not _accepts_none(v.type))
    if missing:
        raise TypeError(f"{name}() is missing inputs {missing}")
    return python_to_literal_map(values, declared)


def _accepts_none(literal_type: types_pb2.LiteralType) -> bool:
    if literal_type.HasField("union_type"):
        return any(_accepts_none(v) for v in literal_type.union_type.variants)
    return literal_type.HasField("simple") and literal_type.simple == types_pb2.NONE


def _version() -> str:
    from .. import __version__

    return __version__
