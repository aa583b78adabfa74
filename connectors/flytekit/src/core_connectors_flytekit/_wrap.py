"""Wrappers that give a flytekit connector what ``pyflyte serve connector`` gives it, inside the core's service.

Each call goes to the bridge loop (or, with ``--flytekit-loop service``, an ``async def`` one stays on the
service's: see ``_loop``), where the wire messages become flytekit's model classes
(``TaskTemplate.from_flyte_idl``, ``LiteralMap.from_flyte_idl``, flytekit's ``TaskExecutionMetadata``), the
connector's method is called as flytekit calls it (``mirror_async_methods``), and its ``Resource`` goes back
through flytekit's own ``to_flyte_idl`` (the type engine, in the flytekit context of that thread) and comes back
as the core's ``Resource`` (outputs already literals), which the core handles as any connector's: routing,
status codes, error ids, metrics. The connector's ``ResourceMeta`` bytes are its own ``metadata_type``'s, both ways.
"""

from __future__ import annotations

from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flytekit.extend.backend import base_connector as fk
from flytekit.extend.backend.utils import mirror_async_methods
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, SyncConnectorBase

from ._loop import runner_for

__all__ = ["wrap"]


def wrap(connector: Any) -> AsyncConnectorBase[Any] | SyncConnectorBase:
    """The core connector that serves ``connector`` (a flytekit one) as flytekit's service would."""
    if isinstance(connector, fk.SyncConnectorBase):
        return BridgedSyncConnector(connector)
    if not isinstance(connector, fk.AsyncConnectorBase):
        raise TypeError(f"{type(connector).__name__} is neither a flytekit sync nor async connector")
    optional = [m for m in (_Metrics, _Logs) if _overrides(connector, m.method)]
    cls = type("BridgedAsyncConnector", (*optional, BridgedAsyncConnector), {}) if optional else BridgedAsyncConnector
    return cls(connector)


def _overrides(connector: Any, method: str) -> bool:
    return getattr(type(connector), method) is not getattr(fk.AsyncConnectorBase, method)


def _runners(connector: Any, *methods: str) -> dict[str, Any]:
    """Where each method's calls run (see ``_loop.runner_for``), worked out when the connector is wrapped."""
    return {method: runner_for(getattr(connector, method)) for method in methods}


def _metadata_type(connector: Any) -> type[ResourceMeta]:
    """The connector's own metadata class behind the core's ``decode`` (its ``encode`` is on the instances
    it returns). Whatever it writes is served as flytekit serves it, pickles included: see the README."""
    own = connector.metadata_type

    class FlytekitMetadata(ResourceMeta):
        @classmethod
        def decode(cls, data: bytes) -> Any:
            return own.decode(data)

    FlytekitMetadata.__qualname__ = FlytekitMetadata.__name__ = f"{own.__name__}(flytekit)"
    return FlytekitMetadata


def _inputs(inputs: literals_pb2.LiteralMap | None) -> LiteralMap | None:
    return LiteralMap.from_flyte_idl(inputs) if inputs is not None else None


async def _resource(resource: Any) -> Resource:
    """flytekit's Resource as the core's, which goes out as flytekit's own wire form (a phase of 0, which
    propeller reads as a retryable failure, is named so: RETRYABLE_FAILED, as the core's Resource reads it)."""
    if not isinstance(resource, fk.Resource):
        raise TypeError(f"the connector returned {type(resource).__name__}, expected a flytekit Resource")
    wire = await resource.to_flyte_idl()
    return _FlytekitResource(resource, wire) if wire.phase else Resource.from_flyte_idl(wire)


class _FlytekitResource(Resource):
    """The core's Resource for a flytekit one, sent as flytekit wrote it (the bytes pyflyte sends), not parsed
    back field by field and written again: custom info makes that cost a JSON round trip of its own."""

    def __init__(self, resource: Any, wire: agent_pb2.Resource) -> None:
        super().__init__(
            wire.phase,
            resource.message or None,
            list(resource.log_links) if resource.log_links else None,
            wire.outputs if wire.HasField("outputs") else None,  # literals already, as the type engine wrote them
            resource.custom_info or None,
        )
        self.wire = wire

    def to_flyte_idl_sync(self, output_types: Any = None) -> agent_pb2.Resource:
        """The message flytekit wrote (each of these Resources answers one call: the service copies it once)."""
        return self.wire


class BridgedSyncConnector(SyncConnectorBase):
    """A flytekit SyncConnectorBase behind the core's ExecuteTaskSync."""

    def __init__(self, connector: Any) -> None:
        super().__init__(task_type_name=connector.task_category.name, task_type_version=connector.task_category.version)
        self.flytekit_connector = connector
        self.name = connector.name
        self._run = _runners(connector, "do")

    async def do(
        self,
        task_template: tasks_pb2.TaskTemplate,
        output_prefix: str,
        inputs: literals_pb2.LiteralMap | None = None,
        **kwargs: Any,
    ) -> Resource:
        return await self._run["do"](self._do(task_template, output_prefix, inputs))

    async def _do(
        self, template: tasks_pb2.TaskTemplate, output_prefix: str, inputs: literals_pb2.LiteralMap | None
    ) -> Resource:
        resource = await mirror_async_methods(
            self.flytekit_connector.do,
            task_template=TaskTemplate.from_flyte_idl(template),
            inputs=_inputs(inputs),
            output_prefix=output_prefix,
        )
        return await _resource(resource)


class BridgedAsyncConnector(AsyncConnectorBase[Any]):  # flytekit's ResourceMeta, typed as Any here
    """A flytekit AsyncConnectorBase behind the core's CreateTask, GetTask and DeleteTask."""

    def __init__(self, connector: Any) -> None:
        super().__init__(
            task_type_name=connector.task_category.name,
            task_type_version=connector.task_category.version,
            metadata_type=_metadata_type(connector),
        )
        self.flytekit_connector = connector
        self.name = connector.name
        self._run = _runners(connector, "create", "get", "delete", "get_metrics", "get_logs")

    async def create(
        self,
        task_template: tasks_pb2.TaskTemplate,
        output_prefix: str,
        inputs: literals_pb2.LiteralMap | None,
        task_execution_metadata: agent_pb2.TaskExecutionMetadata | None,
        **kwargs: Any,
    ) -> Any:
        return await self._run["create"](self._create(task_template, output_prefix, inputs, task_execution_metadata))

    async def _create(
        self,
        template: tasks_pb2.TaskTemplate,
        output_prefix: str,
        inputs: literals_pb2.LiteralMap | None,
        metadata: agent_pb2.TaskExecutionMetadata | None,
    ) -> Any:
        return await mirror_async_methods(
            self.flytekit_connector.create,
            task_template=TaskTemplate.from_flyte_idl(template),
            inputs=_inputs(inputs),
            output_prefix=output_prefix,
            task_execution_metadata=TaskExecutionMetadata.from_flyte_idl(
                metadata if metadata is not None else agent_pb2.TaskExecutionMetadata()
            ),
        )

    async def get(self, resource_meta: Any, **kwargs: Any) -> Resource:
        return await self._run["get"](self._get(resource_meta))

    async def _get(self, resource_meta: Any) -> Resource:
        resource = await mirror_async_methods(self.flytekit_connector.get, resource_meta=resource_meta)
        return await _resource(resource)

    async def delete(self, resource_meta: Any, **kwargs: Any) -> None:
        await self._run["delete"](_call(self.flytekit_connector.delete, resource_meta))


class _Metrics:
    method = "get_metrics"

    async def get_metrics(self, resource_meta: Any, **kwargs: Any) -> Any:
        connector, run = getattr(self, "flytekit_connector"), getattr(self, "_run")  # noqa: B009 - a mixin
        return await run["get_metrics"](_call(connector.get_metrics, resource_meta))


class _Logs:
    method = "get_logs"

    async def get_logs(self, resource_meta: Any, **kwargs: Any) -> Any:
        connector, run = getattr(self, "flytekit_connector"), getattr(self, "_run")  # noqa: B009 - a mixin
        return await run["get_logs"](_call(connector.get_logs, resource_meta))


async def _call(method: Any, resource_meta: Any) -> Any:
    """On the bridge loop: ``mirror_async_methods`` runs a plain ``def`` in the running loop's executor."""
    return await mirror_async_methods(method, resource_meta=resource_meta)
