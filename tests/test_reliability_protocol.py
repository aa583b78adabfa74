"""Every request answered well: bytes that are not a valid message of the RPC's type get INVALID_ARGUMENT
naming the RPC, never UNKNOWN, never the payload echoed, never a traceback, and the server keeps serving.

Property tests (hypothesis) over the raw request bytes of all six unary RPCs, the GetTaskLogs request and each
message of the ExecuteTaskSync stream, sent through a real channel with no serializer; plus the named cases
(truncated, random, wrong wire type, bad UTF-8, nesting past protobuf's limit) and ResourceMeta.decode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, ResourceMetaDecodeError, SyncConnectorBase
from core_connectors.server.testing import start_service

Phase = execution_pb2.TaskExecution
TIMEOUT = 5
SERVICE = "/flyteidl.service."
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class ProbeMeta(ResourceMeta):
    job_id: str
    attempt: int | None = None


class ProbeConnector(AsyncConnectorBase):
    """Takes anything: so whatever the service answers comes from the service, not from the connector."""

    name = "Probe Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="probe", metadata_type=ProbeMeta)

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return ProbeMeta(job_id="j1")

    async def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.RUNNING, message=resource_meta.job_id)

    async def delete(self, resource_meta, **kwargs):
        return None


class SyncProbeConnector(SyncConnectorBase):
    name = "Sync Probe Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="probe-sync")

    async def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=Phase.SUCCEEDED)


@pytest.fixture(scope="module")
def service():
    started = start_service(ProbeConnector(), SyncProbeConnector())
    yield started
    started.stop()


META = ProbeMeta(job_id="j1").encode()
CATEGORY = agent_pb2.TaskCategory(name="probe")
TEMPLATE = tasks_pb2.TaskTemplate(type="probe")
VALID = {  # one well-formed request of each unary RPC: mutated below to reach past the parser
    "AsyncAgentService/CreateTask": agent_pb2.CreateTaskRequest(template=TEMPLATE, output_prefix="s3://b/o"),
    "AsyncAgentService/GetTask": agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=META),
    "AsyncAgentService/DeleteTask": agent_pb2.DeleteTaskRequest(task_category=CATEGORY, resource_meta=META),
    "AsyncAgentService/GetTaskMetrics": agent_pb2.GetTaskMetricsRequest(task_category=CATEGORY, resource_meta=META),
    "AgentMetadataService/ListAgents": agent_pb2.ListAgentsRequest(),
    "AgentMetadataService/GetAgent": agent_pb2.GetAgentRequest(name="Probe Connector"),
}
UNARY = sorted(VALID)
ACCEPTABLE = {  # what a request the service refuses may get; never UNKNOWN or INTERNAL
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
}


def check_refusal(error: grpc.RpcError, payload: bytes) -> None:
    code, details = error.code(), error.details() or ""
    assert code in ACCEPTABLE, f"{code}: {details}"
    assert "Traceback" not in details and 'File "' not in details
    assert len(details) < 1000
    if len(payload) >= 16:
        assert payload.decode("latin-1") not in details


def call_unary(service, method: str, payload: bytes) -> None:
    """Send ``payload`` as the request bytes of ``method``; a refusal must be a clean one."""
    rpc = service.channel.unary_unary(SERVICE + method)
    try:
        rpc(payload, timeout=TIMEOUT)
    except grpc.RpcError as e:
        check_refusal(e, payload)


def assert_serving(service) -> None:
    agents = service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=TIMEOUT).agents
    assert {a.name for a in agents} == {"Probe Connector", "Sync Probe Connector"}


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid request truncated, with bytes changed, inserted or appended: mostly invalid, sometimes not."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["truncate", "flip", "insert", "append"]))
        at = draw(st.integers(0, len(data)))
        if action == "truncate":
            del data[at:]
        elif action == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data += draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


# ------------------------------------------------------------------------------------------------ properties
@pytest.mark.slow
@pytest.mark.parametrize("method", UNARY)
@SETTINGS
@given(payload=st.binary(max_size=512))
def test_random_bytes_to_a_unary_rpc_get_a_clean_answer(service, method, payload):
    call_unary(service, method, payload)


@pytest.mark.slow
@pytest.mark.parametrize("method", UNARY)
@SETTINGS
@given(data=st.data())
def test_mutated_requests_to_a_unary_rpc_get_a_clean_answer(service, method, data):
    call_unary(service, method, data.draw(mutated(VALID[method].SerializeToString())))


@pytest.mark.slow
@SETTINGS
@given(payload=st.binary(max_size=512) | mutated(VALID["AsyncAgentService/GetTask"].SerializeToString()))
def test_random_bytes_to_get_task_logs_get_a_clean_answer(service, payload):
    rpc = service.channel.unary_stream(SERVICE + "AsyncAgentService/GetTaskLogs")
    try:
        list(rpc(payload, timeout=TIMEOUT))
    except grpc.RpcError as e:
        check_refusal(e, payload)


HEADER = agent_pb2.ExecuteTaskSyncRequest(
    header=agent_pb2.CreateRequestHeader(template=tasks_pb2.TaskTemplate(type="probe-sync"))
).SerializeToString()
INPUTS = agent_pb2.ExecuteTaskSyncRequest(inputs=literals_pb2.LiteralMap()).SerializeToString()


@pytest.mark.slow
@SETTINGS
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_random_bytes_in_the_execute_task_sync_stream_get_a_clean_answer(service, which, data):
    """Either message of the stream (the header, the inputs) is garbage; the other one is well formed."""
    messages = [HEADER, INPUTS]
    messages[which] = data.draw(st.binary(max_size=256) | mutated(messages[which]))
    rpc = service.channel.stream_stream(SERVICE + "SyncAgentService/ExecuteTaskSync")
    try:
        replies = list(rpc(iter(messages), timeout=TIMEOUT))
    except grpc.RpcError as e:
        check_refusal(e, messages[which])
    else:
        assert len(replies) == 1


@pytest.mark.slow
def test_the_server_answers_list_agents_after_the_property_tests(service):
    """Runs after the properties above in this module (same server): nothing they sent broke it."""
    call_unary(service, "AsyncAgentService/GetTask", b"\xff" * 64)
    assert_serving(service)


# ------------------------------------------------------------------------------------------------ named cases
def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _nested_literal(depth: int) -> bytes:
    """A Literal that is a collection of a collection of ... (depth levels), built by hand: protobuf itself
    refuses to build a message past its recursion limit."""
    collection = literals_pb2.Literal.DESCRIPTOR.fields_by_name["collection"].number
    literals = literals_pb2.LiteralCollection.DESCRIPTOR.fields_by_name["literals"].number
    data = b""
    for _ in range(depth):
        data = _len_field(collection, _len_field(literals, data))
    return data


def _create_with_inputs(literal: bytes) -> bytes:
    inputs = agent_pb2.CreateTaskRequest.DESCRIPTOR.fields_by_name["inputs"].number
    literal_map = _len_field(1, _len_field(1, b"x") + _len_field(2, literal))  # map<string, Literal> entry
    return VALID["AsyncAgentService/CreateTask"].SerializeToString() + _len_field(inputs, literal_map)


GET_TASK = VALID["AsyncAgentService/GetTask"].SerializeToString()
NAMED = {
    "truncated": ("AsyncAgentService/GetTask", GET_TASK[:-3]),
    "random bytes": ("AsyncAgentService/CreateTask", bytes(range(255, 0, -1))),
    "wrong wire type": ("AsyncAgentService/GetTask", _key(1, 5) + b"\0\0\0"),  # task_type as a fixed32
    "invalid utf-8": ("AgentMetadataService/GetAgent", _len_field(1, b"conn\xff\xfector")),
    "nesting past the limit": ("AsyncAgentService/CreateTask", _create_with_inputs(_nested_literal(120))),
}


@pytest.mark.parametrize("case", sorted(NAMED))
def test_a_request_that_does_not_parse_gets_invalid_argument_naming_the_rpc(service, case):
    method, payload = NAMED[case]
    with pytest.raises(grpc.RpcError) as caught:
        service.channel.unary_unary(SERVICE + method)(payload, timeout=TIMEOUT)
    rpc = method.rsplit("/", 1)[1]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{rpc}: the request is not a valid flyteidl.admin.{rpc}Request (" in caught.value.details()
    check_refusal(caught.value, payload)
    assert_serving(service)


def test_nesting_within_the_limit_is_served(service):
    """The limit is protobuf's: a deep but legal request is not refused by us."""
    response = service.channel.unary_unary(SERVICE + "AsyncAgentService/CreateTask")(
        _create_with_inputs(_nested_literal(20)), timeout=TIMEOUT
    )
    assert agent_pb2.CreateTaskResponse.FromString(response).resource_meta == META


def test_a_garbled_execute_task_sync_inputs_message_is_invalid_argument(service):
    rpc = service.channel.stream_stream(SERVICE + "SyncAgentService/ExecuteTaskSync")
    with pytest.raises(grpc.RpcError) as caught:
        list(rpc(iter([HEADER, b"\x0a\xff\xff"]), timeout=TIMEOUT))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExecuteTaskSync: the request is not a valid flyteidl.admin.ExecuteTaskSyncRequest" in (
        caught.value.details()
    )


def test_a_large_garbage_payload_is_not_echoed(service):
    payload = b"\x0a\xff\xff\xff\x0f" + b"A" * (1024 * 1024)
    with pytest.raises(grpc.RpcError) as caught:
        service.channel.unary_unary(SERVICE + "AsyncAgentService/GetTask")(payload, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details()) < 300


# ------------------------------------------------------------------------------------------------ decode
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@dataclass
class Inner(ResourceMeta):
    ids: list[int]


@dataclass
class NestedMeta(ResourceMeta):
    job_id: str
    inner: Inner | None = None
    labels: dict[str, str] | None = None


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=256)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(["job_id", "inner", "labels", "ids", "x"]), json_values).map(
        lambda v: json.dumps(v).encode()
    )
)
def test_resource_meta_decode_answers_a_value_or_its_own_error(data):
    """Whatever the bytes, decode returns the metadata or raises ResourceMetaDecodeError: nothing else."""
    try:
        meta = NestedMeta.decode(data)
    except ResourceMetaDecodeError as e:
        assert len(str(e)) < 2000
    else:
        assert isinstance(meta, NestedMeta)
        assert isinstance(meta.job_id, str)
        assert meta.inner is None or all(type(i) is int for i in meta.inner.ids)
