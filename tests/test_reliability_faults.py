"""Fault injection against a real service on loopback: connectors that hang, raise, return the wrong type,
return a huge message, block the event loop or leak a secret; each answered with the right status while the
rest of the service keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, get_connector_secret

Phase = execution_pb2.TaskExecution
TIMEOUT = 5
SECRET = "vendor-key-5be1c0ffee"


@dataclass
class JobMeta(ResourceMeta):
    job_id: str


def get_request(task_type: str, job_id: str = "j1") -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name=task_type), resource_meta=JobMeta(job_id=job_id).encode()
    )


class _Base(AsyncConnectorBase):
    def __init__(self, task_type: str) -> None:
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="j1")

    def delete(self, resource_meta, **kwargs):
        pass


# ------------------------------------------------------------------------------------------------ secrets
class LeakyConnector(_Base):
    """Echoes a vendor's error that contains the API key into everything it returns."""

    name = "Leaky Connector"

    def __init__(self) -> None:
        super().__init__("leaky")

    def get(self, resource_meta, **kwargs):
        key = get_connector_secret("vendor_api_key")
        return Resource(
            phase=Phase.RETRYABLE_FAILED,
            message=f"vendor said: 401 for key {key}",
            log_links=[execution_pb2.TaskLog(name=f"console ({key})", uri=f"https://vendor.example/jobs?key={key}")],
            custom_info={"error": {"detail": [f"key={key}", 3]}, "job": "j1"},
        )

    def get_logs(self, resource_meta, **kwargs):
        key = get_connector_secret("vendor_api_key")
        yield agent_pb2.GetTaskLogsResponse(
            body=agent_pb2.GetTaskLogsResponseBody(results=["starting", f"auth with {key} failed"])
        )


def test_a_secret_is_scrubbed_from_everything_a_connector_returns(connector_service, monkeypatch):
    monkeypatch.setenv("_FSEC_VENDOR_API_KEY", SECRET)
    service = connector_service(LeakyConnector())
    resource = service.async_stub.GetTask(get_request("leaky"), timeout=TIMEOUT).resource
    assert SECRET not in str(resource)
    assert resource.message == "vendor said: 401 for key [redacted]"
    assert resource.log_links[0].name == "console ([redacted])"
    assert resource.log_links[0].uri == "https://vendor.example/jobs?key=[redacted]"
    custom = resource.custom_info.fields
    assert custom["error"].struct_value.fields["detail"].list_value.values[0].string_value == "key=[redacted]"
    assert custom["job"].string_value == "j1"
    request = agent_pb2.GetTaskLogsRequest(
        task_category=agent_pb2.TaskCategory(name="leaky"), resource_meta=JobMeta(job_id="j1").encode()
    )
    logs = list(service.async_stub.GetTaskLogs(request, timeout=TIMEOUT))
    assert [list(r.body.results) for r in logs] == [["starting", "auth with [redacted] failed"]]
