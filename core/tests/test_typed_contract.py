"""AsyncConnectorBase is generic in its metadata type for type checkers, and unchanged at runtime."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


@dataclass
class Meta(ResourceMeta):
    job_id: str


class Typed(AsyncConnectorBase[Meta]):
    name = "Typed"

    def __init__(self) -> None:
        super().__init__(task_type_name="typed", metadata_type=Meta)

    def create(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Meta:
        return Meta(job_id="j")

    async def get(self, resource_meta: Meta, **kwargs: Any) -> Resource:
        return Resource(phase=TaskExecution.SUCCEEDED, message=resource_meta.job_id)

    def delete(self, resource_meta: Meta, **kwargs: Any) -> None:
        return None


class Plain(AsyncConnectorBase):  # flytekit's form, without the parameter
    name = "Plain"

    def __init__(self) -> None:
        super().__init__(task_type_name="plain", metadata_type=Meta)

    def create(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Meta:
        return Meta(job_id="p")

    def get(self, resource_meta: Any, **kwargs: Any) -> Resource:
        return Resource(phase=TaskExecution.RUNNING)

    def delete(self, resource_meta: Any, **kwargs: Any) -> None:
        return None


def test_both_forms_register_and_serve_the_same(connector_registry):
    for connector in (Typed(), Plain()):
        assert isinstance(connector, AsyncConnectorBase) and connector.metadata_type is Meta
        connector_registry.register(connector)
    assert isinstance(ConnectorRegistry.get_connector("typed"), Typed)
    assert isinstance(ConnectorRegistry.get_connector("plain"), Plain)


def test_the_parameter_changes_nothing_at_runtime():
    assert AsyncConnectorBase[Meta].__origin__ is AsyncConnectorBase
    assert Typed.__mro__[1] is AsyncConnectorBase and Plain.__mro__[1] is AsyncConnectorBase
    assert not hasattr(Plain(), "__orig_class__")


def test_flytekits_method_signatures_are_kept():
    names = {m: list(inspect.signature(getattr(AsyncConnectorBase, m)).parameters) for m in ("create", "get", "delete")}
    assert names == {
        "create": ["self", "task_template", "output_prefix", "inputs", "task_execution_metadata", "kwargs"],
        "get": ["self", "resource_meta", "kwargs"],
        "delete": ["self", "resource_meta", "kwargs"],
    }
