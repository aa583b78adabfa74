"""Discovery on first use, from many threads and an event loop at once: every caller sees the whole registry
or waits for it. Before the fix, two local tasks started together in two threads could get "Cannot find
connector" for an installed connector while the other thread was still loading plugins.

The plugin is a real distribution (a ``.dist-info`` with its entry point) put on ``sys.path``, whose module
takes a while to import, as a vendor SDK's would.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading

import pytest
from flyteidl.core import tasks_pb2

from core_connectors import ConnectorRegistry
from core_connectors.local import LocalRun

PLUGIN = textwrap.dedent(
    """
    import time
    from dataclasses import dataclass

    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, SyncConnectorBase, hookimpl

    time.sleep(0.5)  # a heavy import: the window in which other callers used to see a half-loaded registry


    @dataclass
    class SlowMeta(ResourceMeta):
        job: str


    class SlowImportConnector(AsyncConnectorBase):
        name = "Slow Import Connector"

        def __init__(self):
            super().__init__(task_type_name="slow-import", metadata_type=SlowMeta)

        def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            return SlowMeta(job="j")

        def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, outputs={})

        def delete(self, resource_meta, **kwargs):
            pass


    class SlowImportSync(SyncConnectorBase):
        name = "Slow Import Sync"

        def __init__(self):
            super().__init__(task_type_name="slow-import-sync")

        async def do(self, task_template, output_prefix, inputs=None, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, outputs={})


    @hookimpl
    def provide_connectors():
        return [SlowImportConnector(), SlowImportSync()]
    """
)


@pytest.fixture
def slow_plugin(tmp_path, monkeypatch):
    """Install (onto sys.path) a distribution whose entry point takes half a second to import."""
    module = f"slow_import_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    info = tmp_path / "slow_import_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-import-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[flytekit.connectors]\nslow_import = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop(module, None)


def _run_local(task_type: str) -> None:
    LocalRun(tasks_pb2.TaskTemplate(type=task_type), progress=False).run()


def test_two_local_tasks_started_at_once_in_two_threads_both_find_the_connector(slow_plugin):
    with ConnectorRegistry.isolated(discover=True):
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(task_type: str) -> None:
            start.wait()
            try:
                _run_local(task_type)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(t,)) for t in ("slow-import", "slow-import-sync")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []


def test_threads_and_an_event_loop_at_once_all_see_the_whole_registry(slow_plugin):
    """Eight threads and a coroutine on an event loop ask at the same moment; each sees both connectors."""
    with ConnectorRegistry.isolated(discover=True) as registry:
        start = threading.Barrier(9)
        seen: list[set[str]] = []

        def look() -> None:
            start.wait()
            seen.append({a.name for a in ConnectorRegistry.list_connectors()})

        async def on_loop() -> None:
            await asyncio.to_thread(start.wait)
            await LocalRun(tasks_pb2.TaskTemplate(type="slow-import"), progress=False).arun()
            seen.append({a.name for a in registry.list_connectors()})

        threads = [threading.Thread(target=look) for _ in range(8)]
        for thread in threads:
            thread.start()
        asyncio.run(on_loop())
        for thread in threads:
            thread.join(30)
        assert len(seen) == 9
        assert all({"Slow Import Connector", "Slow Import Sync"} <= names for names in seen)


def test_a_plugin_that_looks_itself_up_while_loading_does_not_deadlock(tmp_path, monkeypatch):
    """flytekit-style plugins may consult the registry at import: they see what is loaded so far."""
    module = f"self_lookup_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from core_connectors import ConnectorRegistry\nSEEN = ConnectorRegistry.list_connectors()\n"
        + PLUGIN.replace("time.sleep(0.5)", "pass")
    )
    info = tmp_path / "self_lookup-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: self-lookup\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[flytekit.connectors]\nself_lookup = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with ConnectorRegistry.isolated(discover=True):
            names = {a.name for a in ConnectorRegistry.list_connectors()}
            assert "Slow Import Connector" in names
    finally:
        sys.modules.pop(module, None)
