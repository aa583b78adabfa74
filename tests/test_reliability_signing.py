"""Signed resource metadata: off, the bytes are flytekit's; on, metadata of anyone's making is refused, keys
rotate without failing running tasks, and unsigned metadata passes only during a migration window."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta

Phase = execution_pb2.TaskExecution
TIMEOUT = 5


@dataclass
class JobMeta(ResourceMeta):
    job_id: str
    project: str = "p1"


class JobConnector(AsyncConnectorBase):
    name = "Job Connector"

    def __init__(self, task_type: str = "job") -> None:
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="job-7")

    async def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.RUNNING, message=f"{resource_meta.project}/{resource_meta.job_id}")

    async def delete(self, resource_meta, **kwargs):
        pass


def create(service, task_type: str = "job") -> bytes:
    request = agent_pb2.CreateTaskRequest(template=tasks_pb2.TaskTemplate(type=task_type))
    return service.async_stub.CreateTask(request, timeout=TIMEOUT).resource_meta


def get(service, meta: bytes, task_type: str = "job") -> agent_pb2.Resource:
    request = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name=task_type), resource_meta=meta)
    return service.async_stub.GetTask(request, timeout=TIMEOUT).resource


def refused(service, meta: bytes, task_type: str = "job") -> str:
    with pytest.raises(grpc.RpcError) as caught:
        get(service, meta, task_type)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value.details()


FLYTEKIT_BYTES = json.dumps(dataclasses.asdict(JobMeta(job_id="job-7"))).encode()


def test_off_the_bytes_are_flytekits(connector_service):
    service = connector_service(JobConnector())
    assert create(service) == FLYTEKIT_BYTES
    assert get(service, FLYTEKIT_BYTES).message == "p1/job-7"


def test_on_metadata_is_signed_and_what_it_names_cannot_be_changed(connector_service):
    service = connector_service(JobConnector(), metadata_keys=[b"k1-0123456789"])
    meta = create(service)
    assert meta.startswith(FLYTEKIT_BYTES) and meta != FLYTEKIT_BYTES
    assert get(service, meta).message == "p1/job-7"
    forged = meta.replace(b'"p1"', b'"someone-elses"')
    assert "signature does not verify" in refused(service, forged)
    assert "not signed" in refused(service, FLYTEKIT_BYTES)
    assert "k1-0123456789" not in refused(service, forged)


@pytest.mark.parametrize("tag", [b"\xff" * 64, b"0" * 63 + b"\xe9", "é".encode() * 32])
def test_a_tag_of_any_bytes_is_refused_as_a_bad_signature(connector_service, tag):
    service = connector_service(JobConnector(), metadata_keys=[b"k1-0123456789"])
    assert "signature does not verify" in refused(service, FLYTEKIT_BYTES + b"\n#hmac-sha256:" + tag)


def test_a_signature_is_bound_to_its_task_type(connector_service):
    service = connector_service(JobConnector("job"), JobConnector("other-job"), metadata_keys=[b"k1-0123456789"])
    assert "signature does not verify" in refused(service, create(service, "job"), "other-job")


def test_keys_rotate_without_failing_running_tasks(connector_service):
    old = connector_service(JobConnector(), metadata_keys=[b"old-key-000000"])
    rotating = connector_service(JobConnector(), metadata_keys=[b"new-key-111111", b"old-key-000000"])
    retired = connector_service(JobConnector(), metadata_keys=[b"new-key-111111"])
    from_old = create(old)
    assert get(rotating, from_old).message == "p1/job-7"  # the old key still verifies
    from_rotating = create(rotating)  # ... and the new key signs
    assert get(retired, from_rotating).message == "p1/job-7"
    assert "signature does not verify" in refused(retired, from_old)


def test_unsigned_metadata_passes_only_in_the_migration_window(connector_service):
    window = connector_service(JobConnector(), metadata_keys=[b"k1-0123456789"], accept_unsigned_metadata=True)
    assert get(window, FLYTEKIT_BYTES).message == "p1/job-7"
    forged = create(window).replace(b'"p1"', b'"p2"')
    assert "signature does not verify" in refused(window, forged)  # a tag that is there must verify


def test_signing_turned_off_again_keeps_running_tasks_polling(connector_service):
    signed = create(connector_service(JobConnector(), metadata_keys=[b"k1-0123456789"]))
    assert get(connector_service(JobConnector()), signed).message == "p1/job-7"


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, words",
    [
        (["--sign-metadata"], "--sign-metadata: secret 'metadata_signing_keys' not found"),
        (["--accept-unsigned-metadata"], "--accept-unsigned-metadata goes with --sign-metadata"),
    ],
)
def test_serve_refuses_to_start_with_signing_misconfigured(tmp_path, flags, words):
    env = {k: v for k, v in os.environ.items() if k != "_FSEC_METADATA_SIGNING_KEYS"}
    env["FLYTE_SECRETS_DEFAULT_DIR"] = str(tmp_path)
    argv = [sys.executable, "-m", "core_connectors", "serve", "--port", "0", "--prometheus-port", "0"]
    done = subprocess.run([*argv, "--timeout", "5", *flags], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert words in done.stderr
