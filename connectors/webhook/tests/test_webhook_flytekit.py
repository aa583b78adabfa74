"""Against flytekit 1.16 itself: our WebhookTask writes flytekit's template, and for the same request our
service's ``info`` is the literal flytekit's own WebhookConnector returns, read back by flytekit's TypeEngine."""

from __future__ import annotations

import datetime as dt
import json
import sys

import msgpack
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution

if sys.version_info >= (3, 13):
    pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

from flytekit.core.context_manager import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.extras.webhook import WebhookConnector as FlytekitWebhookConnector
from flytekit.models.literals import Literal, LiteralMap
from flytekit.models.task import TaskTemplate

from core_connectors.literals import literal_type_for, python_to_literal_map
from core_connectors_webhook import WebhookTask

pytestmark = pytest.mark.network


def execute_over_grpc(service, template, inputs):
    """ExecuteTaskSync as propeller calls it; the service runs on its own thread and loop."""
    header = agent_pb2.CreateRequestHeader(template=template, output_prefix="/tmp/out")
    requests = [agent_pb2.ExecuteTaskSyncRequest(header=header), agent_pb2.ExecuteTaskSyncRequest(inputs=inputs)]
    (reply,) = list(service.sync_stub.ExecuteTaskSync(iter(requests), timeout=30))
    return reply.header.resource


TASKS = [
    {"name": "simple-post", "url": "http://127.0.0.1:1/hook"},
    {
        "name": "get-with-params",
        "url": "http://127.0.0.1:1/items/{inputs.item_id}",
        "method": "GET",
        "headers": {"Content-Type": "application/json"},
        "dynamic_inputs": {"s": str, "item_id": int},
        "show_data": True,
        "show_url": True,
        "description": "Test Webhook Task",
        "data": {"q": "{inputs.s}"},
    },
    {"name": "timeout-int", "url": "http://h/x", "timeout": 3, "dynamic_inputs": {"when": dt.datetime}},
    {"name": "timeout-delta", "url": "http://h/x", "timeout": dt.timedelta(seconds=2.5)},
]


@pytest.mark.parametrize("kwargs", TASKS, ids=[t["name"] for t in TASKS])
def test_our_webhook_task_writes_flytekits_template(kwargs, flytekit_template):
    theirs = flytekit_template(**kwargs)
    ours = WebhookTask(**kwargs).task_template()
    assert (ours.type, ours.task_type_version) == (theirs.type, theirs.task_type_version) == ("webhook", 0)
    assert ours.custom == theirs.custom
    assert ours.interface == theirs.interface


def test_our_webhook_task_rejects_what_flytekits_rejects():
    with pytest.raises(ValueError, match="Method should be either GET or POST. Got PUT"):
        WebhookTask(name="x", url="http://h", method="PUT")


CASES = {
    "get": (
        {
            "url": "/items/{inputs.item_id}",
            "method": "GET",
            "data": {"q": "{inputs.s}", "id": "{inputs.item_id}"},
            "headers": {"X-Who": "{inputs.s}"},
            "dynamic_inputs": {"s": str, "item_id": int},
            "show_data": True,
            "show_url": True,
        },
        {"s": "hello", "item_id": 10},
    ),
    "post": ({"url": "/hook", "data": {"text": "hi {inputs.s}"}, "dynamic_inputs": {"s": str}}, {"s": "ann"}),
    "post-shown": ({"url": "/hook", "data": {"a": "b"}, "show_data": True}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_info_is_what_flytekits_own_connector_returns(
    case, stand_in, connector_service, connector, flytekit_template
):
    args, values = CASES[case]
    stand_in.expect_request(args["url"].replace("{inputs.item_id}", "10")).respond_with_data('{"answer": 42} é')
    template = flytekit_template(name="hook", **{**args, "url": stand_in.url_for(args["url"])})
    types = {k: literal_type_for(t) for k, t in args.get("dynamic_inputs", {}).items()}
    inputs = python_to_literal_map(values, types)

    theirs = await FlytekitWebhookConnector().do(
        TaskTemplate.from_flyte_idl(template), "", LiteralMap.from_flyte_idl(inputs)
    )
    their_idl = await theirs.to_flyte_idl()
    our_idl = execute_over_grpc(connector_service(connector), template, inputs)

    assert our_idl.phase == their_idl.phase == TaskExecution.SUCCEEDED
    assert our_idl.message == their_idl.message == "Webhook was successfully invoked!"
    # The same literal; msgpack keeps the key order of a protobuf map, which is not fixed from one parse to the
    # next (two runs of flytekit's own connector differ too), so the maps are compared unpacked.
    assert _unpacked(our_idl.outputs) == _unpacked(their_idl.outputs)
    ctx = FlyteContextManager.current_context()
    info = TypeEngine.to_python_value(ctx, Literal.from_flyte_idl(our_idl.outputs.literals["info"]), dict)
    assert info["status_code"] == 200 and info["response_data"] == '{"answer": 42} é'
    first, second = stand_in.log[0][0], stand_in.log[1][0]  # flytekit's request, then ours: the same
    assert _sent(first) == _sent(second)


def _sent(request):
    """What a request carries; `data` passes through a protobuf Struct, whose key order is not fixed from one parse
    to the next, so query parameters and JSON bodies are compared as the mappings they are."""
    body = request.get_data()
    return request.method, request.path, sorted(request.args.items(multi=True)), json.loads(body) if body else None


async def test_where_flytekit_fails_a_201_we_succeed(stand_in, connector, flytekit_template):
    stand_in.expect_request("/hook").respond_with_data("created", status=201)
    template = flytekit_template(name="hook", url=stand_in.url_for("/hook"))
    theirs = await FlytekitWebhookConnector().do(TaskTemplate.from_flyte_idl(template), "", None)
    assert theirs.phase == TaskExecution.FAILED
    ours = await connector.do(template, "", None)
    assert ours.phase == TaskExecution.SUCCEEDED


def _unpacked(outputs):
    binary = {name: literal.scalar.binary for name, literal in outputs.literals.items()}
    return {name: (b.tag, msgpack.unpackb(b.value)) for name, b in binary.items()}
