"""A third-party connector: its own ResourceMeta dataclass, announced through the entry-point group."""

from dataclasses import dataclass, field

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, hookimpl


@dataclass
class Step:
    name: str


@dataclass
class AcmeJob(ResourceMeta):
    job_id: str
    steps: list[Step] = field(default_factory=list)
    parent: Step | None = None


class AcmeConnector(AsyncConnectorBase):
    name = "Acme Connector"

    def __init__(self):
        super().__init__(task_type_name="acme_job", task_type_version=2, metadata_type=AcmeJob)

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return AcmeJob(job_id="acme-1", steps=[Step("load"), Step("run")], parent=Step("root"))

    def get(self, resource_meta, **kwargs):
        return Resource(
            phase=TaskExecution.SUCCEEDED, message=f"{resource_meta.job_id} has {len(resource_meta.steps)} steps"
        )

    def delete(self, resource_meta, **kwargs):
        pass


@hookimpl
def provide_connectors():
    return [AcmeConnector()]
