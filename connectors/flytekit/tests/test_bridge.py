"""The bridge inside `core-connectors serve` and `core-connectors list`: bridged calls never stall the service,
native connectors win (and the shadowed ones are shown), connectors from --modules that register into
flytekit's registry are served, one broken flytekit plugin is reported and skipped, and nothing of flytekit
is imported unless the bridge is installed and enabled."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BLOCKING = textwrap.dedent(
    """
    import time
    from dataclasses import dataclass

    from flyteidl.core.execution_pb2 import TaskExecution
    from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


    @dataclass
    class BlockingMeta(ResourceMeta):
        job: str


    class BlockingConnector(AsyncConnectorBase):
        name = "Blocking Connector"

        def __init__(self):
            super().__init__(task_type_name="blocking", metadata_type=BlockingMeta)

        async def create(self, task_template, **kwargs):
            return BlockingMeta(job="1")

        async def get(self, resource_meta, **kwargs):
            time.sleep(0.2)  # blocking work inside async def, as flytekit connectors do
            return Resource(phase=TaskExecution.RUNNING)

        async def delete(self, resource_meta, **kwargs):
            return None


    ConnectorRegistry.register(BlockingConnector())
    """
)


WHERE = textwrap.dedent(
    """
    import threading
    from dataclasses import dataclass

    from flyteidl.core.execution_pb2 import TaskExecution
    from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


    @dataclass
    class WhereMeta(ResourceMeta):
        created_on: str


    class WhereConnector(AsyncConnectorBase):
        name = "Where Connector"

        def __init__(self):
            super().__init__(task_type_name="where", metadata_type=WhereMeta)

        def create(self, task_template, **kwargs):  # a plain def
            return WhereMeta(created_on=threading.current_thread().name)

        async def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, message=threading.current_thread().name)

        async def delete(self, resource_meta, **kwargs):
            return None


    ConnectorRegistry.register(WhereConnector())
    """
)


def list_json(tools, env: dict[str, str], cwd: Path) -> dict:
    command = [str(tools.bin / "core-connectors"), "list", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, env=tools.env(env), cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tools):
    """Ours with every native connector enabled and a blocking flytekit connector given with --modules."""
    tmp = tmp_path_factory.mktemp("bridge")
    (tmp / "blocking_flytekit_connectors.py").write_text(BLOCKING)
    service = tools.start_ours(tmp, {}, "--modules", "blocking_flytekit_connectors")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def test_bridged_calls_do_not_stall_the_service(served):
    sleep_meta = served.async_stub.CreateTask(
        agent_pb2.CreateTaskRequest(template={"type": "sleep", "custom": {"seconds": 60}}), timeout=5
    ).resource_meta
    blocking = agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name="blocking"), resource_meta=b'{"job":"1"}'
    )
    in_flight = [served.async_stub.GetTask.future(blocking, timeout=60) for _ in range(32)]
    time.sleep(0.5)  # the bridge loop is now busy with blocking calls, one after another
    native = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=sleep_meta)
    list_agents = [timed(lambda: served.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5))]
    get_native = [timed(lambda: served.async_stub.GetTask(native, timeout=5))]
    for _ in range(4):
        list_agents.append(timed(lambda: served.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)))
        get_native.append(timed(lambda: served.async_stub.GetTask(native, timeout=5)))
    assert sum(not f.done() for f in in_flight) >= 16, "the bridged calls should still be running"
    assert statistics.median(list_agents) < 0.05, list_agents
    assert statistics.median(get_native) < 0.05, get_native
    assert all(f.result().resource.phase for f in in_flight)  # and every bridged call completes


@pytest.mark.parametrize(
    ("flag", "get_runs_on"), [((), "flytekit-bridge-loop"), (("--flytekit-loop", "service"), "MainThread")]
)
def test_the_flytekit_loop_flag_moves_async_methods_to_the_service_loop(tools, tmp_path, flag, get_runs_on):
    (tmp_path / "where_flytekit_connectors.py").write_text(WHERE)
    service = tools.start_ours(tmp_path, {}, "--modules", "where_flytekit_connectors", *flag)
    try:
        service.wait_ready()
        template = {"type": "where", "id": {"name": "t"}, "interface": {}}
        meta = service.async_stub.CreateTask(agent_pb2.CreateTaskRequest(template=template), timeout=10).resource_meta
        assert json.loads(meta)["created_on"].startswith("connector-flytekit")  # a plain def: the bridge's pool
        got = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name="where"), resource_meta=meta)
        assert service.async_stub.GetTask(got, timeout=10).resource.message == get_runs_on
    finally:
        service.stop()


def test_on_the_service_loop_a_blocking_flytekit_method_is_named_by_the_watchdog(tools, tmp_path):
    """The price of --flytekit-loop service, as on pyflyte: a blocking method stalls the loop; the log says which."""
    (tmp_path / "blocking_flytekit_connectors.py").write_text(BLOCKING)
    service = tools.start_ours(tmp_path, {}, "--modules", "blocking_flytekit_connectors", "--flytekit-loop", "service")
    try:
        service.wait_ready()
        blocking = agent_pb2.GetTaskRequest(
            task_category=agent_pb2.TaskCategory(name="blocking"), resource_meta=b'{"job":"1"}'
        )
        running = service.async_stub.GetTask(blocking, timeout=10).resource.phase  # after 200 ms on the loop
        assert running == execution_pb2.TaskExecution.RUNNING
        deadline = time.monotonic() + 5
        while "blocked" not in service.log and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = [line for line in service.log.splitlines() if "blocked" in line]
        assert "Blocking Connector.get" in line, line
    finally:
        service.stop()


def test_an_unknown_flytekit_loop_is_reported_and_the_native_connectors_serve(tools, tmp_path):
    listing = list_json(tools, {"CORE_CONNECTORS_FLYTEKIT_LOOP": "sideways"}, tmp_path)
    (failure,) = [f for f in listing["failed"] if f["entry_point"] == "flytekit"]
    assert (
        "CORE_CONNECTORS_FLYTEKIT_LOOP='sideways' (--flytekit-loop): expected one of bridge, service"
        in failure["error"]
    )
    assert "Sleep Connector" in by_name(listing["connectors"])


def test_native_connectors_win_and_the_shadowed_ones_are_shown(served, tools, tmp_path):
    agents = served.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents
    assert [a.name for a in agents].count("ChatGPT Connector") == 1
    assert "not served: ChatGPT Connector (chatgpt v0) from flytekitplugins-openai" in served.log
    assert "shadowed by core-connectors-openai" in served.log
    assert "module blocking_flytekit_connectors (via flytekit)" in served.log

    listing = list_json(tools, {}, tmp_path)
    assert by_name(listing["connectors"])["ChatGPT Connector"]["distribution"] == "core-connectors-openai"
    shadowed = by_name(listing["shadowed"])["ChatGPT Connector"]
    assert shadowed["distribution"] == "flytekitplugins-openai" and shadowed["entry_point"] == "openai"
    assert shadowed["via"] == "flytekit" and shadowed["version"].startswith("1.16")
    assert shadowed["shadowed_by"]["distribution"] == "core-connectors-openai"

    listing = list_json(tools, {"CORE_CONNECTORS_DISABLE": "openai"}, tmp_path)  # the flytekit one serves instead
    chatgpt = by_name(listing["connectors"])["ChatGPT Connector"]
    assert (chatgpt["distribution"], chatgpt["via"]) == ("flytekitplugins-openai", "flytekit")
    assert "ChatGPT Connector" not in by_name(listing["shadowed"])
    assert by_name(listing["connectors"])["Sensor"]["distribution"] == "flytekit"


def test_a_broken_flytekit_plugin_is_reported_and_skipped(tools, tmp_path):
    site = tmp_path / "site"
    (site / "broken_flytekit_plugin-0.3.dist-info").mkdir(parents=True)
    (site / "broken_flytekit_plugin-0.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-flytekit-plugin\nVersion: 0.3\n"
    )
    (site / "broken_flytekit_plugin-0.3.dist-info" / "entry_points.txt").write_text(
        "[flytekit.plugins]\nbroken = broken_flytekit_plugin\n"
    )
    (site / "broken_flytekit_plugin.py").write_text("raise ImportError('needs a library that is not installed')\n")
    listing = list_json(tools, {"PYTHONPATH": str(site)}, tmp_path)
    (failure,) = [f for f in listing["failed"] if f["entry_point"] == "broken"]
    assert failure["distribution"] == "broken-flytekit-plugin" and failure["version"] == "0.3"
    assert "needs a library that is not installed" in failure["error"]
    served = by_name(listing["connectors"]) | by_name(listing["shadowed"])
    assert {"Sensor", "Webhook Connector", "ChatGPT Connector", "Bigquery Connector"} <= set(served)


# flytekitplugins-* install an old-style namespace .pth that puts the empty `flytekitplugins` package into
# sys.modules at interpreter start: count what is imported beyond it
DISCOVER = "import sys; from core_connectors import ConnectorRegistry; ConnectorRegistry.list_connectors(); " + (
    "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('flytekit')} - {'flytekitplugins'}))"
)


def test_nothing_of_flytekit_is_imported_without_the_bridge(tools):
    def imported(env: dict[str, str]) -> list[str]:
        out = subprocess.run([sys.executable, "-c", DISCOVER], capture_output=True, text=True, env=tools.env(env))
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().replace("'", '"'))

    assert imported({"CORE_CONNECTORS_DISABLE": "flytekit"}) == []
    with_bridge = imported({})
    assert "flytekit" in with_bridge and {"flytekitplugins.openai", "flytekitplugins.bigquery"} <= set(with_bridge)
    entry_module = (
        "import sys, core_connectors_flytekit; print([m for m in sys.modules if m.split('.')[0] == 'flytekit'])"
    )
    assert subprocess.run([sys.executable, "-c", entry_module], capture_output=True, text=True).stdout.strip() == "[]"


def test_discovery_keeps_the_hosts_sigint_handler(tools):
    keep = (
        "import signal; from core_connectors import ConnectorRegistry\n"
        "def mine(*a): pass\n"
        "signal.signal(signal.SIGINT, mine)\n"
        "assert any(a.name == 'Sensor' for a in ConnectorRegistry.list_connectors()), 'the bridge did not load'\n"
        "print(signal.getsignal(signal.SIGINT) is mine)"
    )
    out = subprocess.run([sys.executable, "-c", keep], capture_output=True, text=True, env=tools.env({}))
    assert out.stdout.strip() == "True", out.stderr
