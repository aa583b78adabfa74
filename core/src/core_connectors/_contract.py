"""The contract suite: what propeller relies on from a connector, checked from the author's own pytest.

One subclass in a test module runs every check::

    class TestContract(AsyncConnectorContract):
        entry_point = "acme"                      # its name in [project.entry-points."flytekit.connectors"]

        @pytest.fixture
        def connector(self):
            return AcmeConnector()

Fixtures to override: ``connector`` (required), ``task_template``, ``inputs`` and ``task_execution_metadata``
(a task that finishes within ``finish_timeout`` seconds), ``failing_case`` (a template and inputs that fail,
to check its message) and ``metadata_samples`` (flytekit-era metadata bytes that must still decode). Every
check runs the connector the way the service does (``async def`` on the loop, ``def`` in a thread) on its own
event loop, so it needs no pytest-asyncio setting; a failure says what propeller would do and how to fix it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import subprocess
import sys
import time
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2, types_pb2

from ._connector import AsyncConnectorBase, ConnectorBase, Resource, ResourceMeta, SyncConnectorBase
from ._connector import is_terminal_phase as _is_terminal
from ._hooks import ENTRY_POINT_GROUP
from .local._runner import _call
from .server._errors import scrub

__all__ = ["AsyncConnectorContract", "ContractWarning", "SyncConnectorContract", "discovery_report"]

_TE = execution_pb2.TaskExecution
_REAL_PHASES = frozenset(_TE.Phase.values()) - {_TE.UNDEFINED}
_BLOCKING_LIMIT = 0.1  # seconds an ``async def`` method may hold the event loop
_TICK = 0.005


class ContractWarning(UserWarning):
    """Something propeller copes with but should not have to (large metadata)."""


# --------------------------------------------------------------------------------------------- discovery
_DISCOVER = """
import json, sys
from core_connectors._registry import Registry
registry = Registry()
registry.discover()
print(json.dumps({
    "modules": sorted(sys.modules),
    "failed": [{"entry_point": f.source.entry_point, "error": f.error} for f in registry.failures],
    "connectors": [
        {"entry_point": s.entry_point, "via": s.via, "class": f"{type(c).__module__}.{type(c).__qualname__}",
         "task_type": c.task_category.name, "version": c.task_category.version}
        for c, s in registry.connectors()
    ],
}))
"""


def discovery_report(python: str = sys.executable) -> dict[str, Any]:
    """What a fresh interpreter finds at discovery, as ``core-connectors list`` and the service do at start:
    the ``modules`` it then holds, the ``connectors`` (entry point, the bridge it came ``via`` if any, class,
    task type and version of each) and the plugins that ``failed`` (entry point and error)."""
    out = subprocess.run([python, "-c", _DISCOVER], capture_output=True, text=True, check=True).stdout
    return typing.cast(dict[str, Any], json.loads(out))


# ----------------------------------------------------------------------------------------------- running
@dataclass
class _Trace:
    """Everything a connector said during a run: what the checks look at."""

    resources: list[Resource] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    blocked: dict[str, float] = field(default_factory=dict)  # async def method -> worst loop stall (s)

    def said(self, resource: Any) -> Resource:
        if isinstance(resource, agent_pb2.Resource):  # the service answers with it as it is: check its words too
            resource = Resource.from_flyte_idl(resource)
        if not isinstance(resource, Resource):
            pytest.fail(
                f"the connector returned {type(resource).__name__}, not a core_connectors.Resource (nor "
                "flyteidl's Resource): the service cannot answer propeller with it; "
                "return Resource(phase=..., message=...)"
            )
        _Contract._check_phases([resource])  # fail at once, rather than poll an UNDEFINED job until the timeout
        self.resources.append(resource)
        self.texts.append(resource.message or "")
        self.texts.extend(link.uri for link in resource.log_links or [])
        if resource.custom_info:
            self.texts.append(json.dumps(resource.custom_info, default=str))
        return resource


class _Runner:
    """Calls connector methods as the service does and measures how long each ``async def`` holds the loop."""

    def __init__(self, trace: _Trace) -> None:
        self.trace = trace

    async def call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            if not inspect.iscoroutinefunction(method):
                return await _call(method, **kwargs)  # a plain def runs in a thread, as in the service
            return await self._timed(method, **kwargs)
        except Exception as e:
            self.trace.texts.append(f"{type(e).__name__}: {e}")
            raise

    async def _timed(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Await ``method`` while a ticker notes the longest stretch the loop could not run it."""
        loop = asyncio.get_running_loop()
        last, worst = loop.time(), 0.0

        async def tick() -> None:
            nonlocal last, worst
            while True:
                await asyncio.sleep(_TICK)
                now = loop.time()
                worst, last = max(worst, now - last - _TICK), now

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)  # the ticker now waits, so a method that blocks at once delays it
        last = loop.time()
        try:
            return await method(**kwargs)
        finally:
            worst = max(worst, loop.time() - last - _TICK)  # a block at the very end, before the next tick
            ticker.cancel()
            name = f"{type(getattr(method, '__self__', None)).__name__}.{method.__name__}"
            self.trace.blocked[name] = max(worst, self.trace.blocked.get(name, 0.0))


def _run(coro: Any) -> Any:
    """Each check on a fresh loop of its own: the author's pytest needs no asyncio plugin or mode."""
    return asyncio.run(coro)


def _phase(phase: int) -> str:
    return _TE.Phase.Name(phase) if phase in _TE.Phase.values() else str(phase)


def _output_types(template: tasks_pb2.TaskTemplate) -> dict[str, types_pb2.LiteralType]:
    return {name: var.type for name, var in template.interface.outputs.variables.items()}


# --------------------------------------------------------------------------------------------- the suite
class _Contract:
    entry_point: str | None = None
    """The connector's name in ``[project.entry-points."flytekit.connectors"]`` (required)."""
    vendor_modules: tuple[str, ...] = ()
    """Top-level modules of the vendor SDK (``("google.cloud.bigquery",)``) that discovery must not import."""
    finish_timeout: float = 30.0
    """Seconds the task of ``task_template`` and ``inputs`` may take to reach a terminal phase."""

    # ------------------------------------------------------------------------------------- fixtures
    @pytest.fixture
    def connector(self) -> ConnectorBase:
        pytest.fail(
            "the contract suite needs your connector: define a `connector` fixture in your subclass, "
            "e.g. `@pytest.fixture\\n    def connector(self): return MyConnector()`"
        )

    @pytest.fixture
    def task_template(self, connector: ConnectorBase) -> tasks_pb2.TaskTemplate:
        """A template of the connector's task type; override it with your task's (``MyTask(...).task_template()``)."""
        category = connector.task_category
        return tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK, project="flytesnacks", domain="development", name="contract"
            ),
            type=category.name,
            task_type_version=category.version,
        )

    @pytest.fixture
    def inputs(self) -> literals_pb2.LiteralMap | None:
        """The task's inputs (``core_connectors.literals.python_to_literal_map({...})``)."""
        return literals_pb2.LiteralMap()

    @pytest.fixture
    def failing_case(self) -> tuple[tasks_pb2.TaskTemplate, literals_pb2.LiteralMap | None] | None:
        """A template and inputs that make the task fail (a bad input, a rejected call), or None: its
        messages are checked for secrets and its phase for being a failure."""
        return None

    @pytest.fixture
    def output_prefix(self, tmp_path: Any) -> str:
        return str(tmp_path / "outputs")

    # ------------------------------------------------------------------------------------- shared checks
    def test_entry_point_is_declared_loads_and_keeps_the_vendor_sdk_out(self, connector: ConnectorBase) -> None:
        if not self.entry_point:
            pytest.fail(
                'set `entry_point = "<name>"` on your contract class: the name your pyproject declares under '
                f'[project.entry-points."{ENTRY_POINT_GROUP}"]; without it the service never finds the connector '
                "and propeller's ListAgents does not show it"
            )
        report = discovery_report()
        failed = [f["error"] for f in report["failed"] if f["entry_point"] == self.entry_point]
        if failed:
            pytest.fail(
                f"the entry point {self.entry_point!r} failed to load: {failed[0]}. The service skips it, so "
                "propeller finds no connector for the task type; make the module import without errors"
            )
        # a bridged connector is listed under the plugin it came from and served through the bridge's entry point
        mine = [c for c in report["connectors"] if self.entry_point in (c["entry_point"], c["via"])]
        if not mine:
            pytest.fail(
                f"no installed distribution declares the entry point {self.entry_point!r} in group "
                f"{ENTRY_POINT_GROUP!r} (or it provides no connectors): add it to pyproject.toml "
                f'([project.entry-points."{ENTRY_POINT_GROUP}"] {self.entry_point} = "your_package"), reinstall '
                "(pip install -e .) and return the connector from a `provide_connectors` hook"
            )
        category = connector.task_category
        wanted = f"{type(connector).__module__}.{type(connector).__qualname__}"
        if not any(
            (c["task_type"], c["version"], c["class"]) == (category.name, category.version, wanted) for c in mine
        ):
            pytest.fail(
                f"the entry point {self.entry_point!r} provides {[c['class'] for c in mine]}, not {wanted} for "
                f"{category}: propeller's tasks of that type would go elsewhere or nowhere"
            )
        loaded = sorted(
            m for m in report["modules"] if any(m == v or m.startswith(f"{v}.") for v in self.vendor_modules)
        )
        if loaded:
            pytest.fail(
                f"discovery imported the vendor SDK ({', '.join(loaded[:5])}): every replica of the service pays "
                "for it at start and a broken SDK install takes the other connectors down with it; import the "
                "SDK inside the methods that use it"
            )

    def _check_blocking(self, run: Callable[[_Runner], Any]) -> None:
        async def measured() -> dict[str, float]:
            # One loop for all runs, as the service has: clients and imports made on first use are warm-up.
            await run(_Runner(_Trace()))
            slow: dict[str, float] = {}
            for _ in range(2):  # a method that blocks does so every time; a busy machine stalls only once
                trace = _Trace()
                await run(_Runner(trace))
                slow = {n: s for n, s in trace.blocked.items() if s > _BLOCKING_LIMIT and (not slow or n in slow)}
                if not slow:
                    break
            return slow

        slow = _run(measured())
        if slow:
            name, stall = max(slow.items(), key=lambda item: item[1])
            pytest.fail(
                f"`async def {name}` blocked the event loop for {stall * 1000:.0f} ms (the limit is "
                f"{_BLOCKING_LIMIT * 1000:.0f} ms): while it blocks, the service answers no other call and "
                "propeller's GetTask polls time out; make the method a plain `def` (the service runs those in "
                "its thread pool) or await the blocking part with asyncio.to_thread"
            )

    @staticmethod
    def _round_trip(connector: Any, meta: Any) -> Any:
        """What GetTask and DeleteTask hand the connector: the metadata decoded from propeller's bytes."""
        return connector.metadata_type.decode(meta.encode())

    @staticmethod
    def _check_no_secret(trace: _Trace, caplog: pytest.LogCaptureFixture) -> None:
        texts = [*trace.texts, *(record.getMessage() for record in caplog.records)]
        leaked = [text for text in texts if scrub(text) != text]
        if leaked:  # no traceback: its local variables would print the secret into the test log
            pytest.fail(
                "a secret (a value read with get_connector_secret, or of a secret-looking environment variable) "
                f"appears in what the connector said: {scrub(leaked[0])[:300]!r}. Propeller shows messages to "
                "every user of the project and keeps them in its database; leave the secret out",
                pytrace=False,
            )

    @staticmethod
    def _check_phases(resources: list[Resource]) -> None:
        for resource in resources:
            if resource.phase not in _REAL_PHASES:
                pytest.fail(
                    f"a Resource has phase {_phase(resource.phase)}: propeller reads UNDEFINED (0) as a retryable "
                    "failure and runs the task again; return RUNNING, SUCCEEDED, FAILED, ... (TaskExecution.*)"
                )

    @staticmethod
    def _check_outputs(resources: list[Resource], template: tasks_pb2.TaskTemplate) -> None:
        output_types = _output_types(template)
        for resource in resources:
            if resource.outputs is None:
                continue
            if resource.phase != _TE.SUCCEEDED:
                pytest.fail(
                    f"outputs came with phase {_phase(resource.phase)}: propeller reads outputs only from a "
                    "SUCCEEDED task; return them with the SUCCEEDED Resource only"
                )
            names = (
                set(resource.outputs.literals)
                if isinstance(resource.outputs, literals_pb2.LiteralMap)
                else set(typing.cast(dict[str, Any], resource.outputs))
            )
            undeclared = sorted(names - set(output_types))
            if output_types and undeclared:
                pytest.fail(
                    f"outputs {undeclared} are not declared by the task's interface ({sorted(output_types)}): "
                    "downstream nodes cannot bind them; return the declared names"
                )
            try:
                resource.to_flyte_idl_sync(output_types or None)
            except Exception as e:
                pytest.fail(
                    f"the outputs do not convert to literals by the task's interface: {type(e).__name__}: {e}. "
                    "The service would fail the call and propeller the task; return values of the declared types"
                )


class AsyncConnectorContract(_Contract):
    """The contract of an ``AsyncConnectorBase``: subclass it in a test module and give a ``connector`` fixture.

    Set ``idempotent_create = True`` when ``create`` called twice with the same task execution metadata (as
    propeller does after a timeout) addresses one job: the suite then checks it returns equal metadata.
    """

    idempotent_create: bool = False
    max_metadata_bytes: int = 4096
    """Metadata larger than this draws a ContractWarning: propeller keeps it in etcd, in every poll."""

    @pytest.fixture
    def task_execution_metadata(self, task_template: tasks_pb2.TaskTemplate) -> agent_pb2.TaskExecutionMetadata:
        """What propeller sends for attempt 0 of one task execution (the same object for both creates)."""
        node = identifier_pb2.NodeExecutionIdentifier(
            node_id="n0",
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="flytesnacks", domain="development", name="contract0"
            ),
        )
        task_id = identifier_pb2.Identifier(
            resource_type=identifier_pb2.TASK,
            project="flytesnacks",
            domain="development",
            name=task_template.id.name or task_template.type,
            version="v1",
        )
        return agent_pb2.TaskExecutionMetadata(
            task_execution_id=identifier_pb2.TaskExecutionIdentifier(
                task_id=task_id, node_execution_id=node, retry_attempt=0
            ),
            namespace="flytesnacks-development",
            labels={"workflow-name": "contract-wf"},
        )

    @pytest.fixture
    def metadata_samples(self) -> list[bytes]:
        """Metadata bytes written by the connector's flytekit version, which propeller may still hold."""
        return []

    @pytest.fixture
    def job(
        self, connector: Any, task_template: Any, inputs: Any, task_execution_metadata: Any, output_prefix: str
    ) -> Callable[..., Any]:
        """Runs the task to a terminal phase: ``job(runner)`` returns (the metadata create made, resources);
        with ``poll=False`` it only creates."""
        self._require_async(connector)

        async def run(
            runner: _Runner, template: Any = task_template, job_inputs: Any = inputs, poll: bool = True
        ) -> Any:
            meta = await runner.call(
                connector.create,
                task_template=template,
                inputs=job_inputs,
                output_prefix=output_prefix,
                task_execution_metadata=task_execution_metadata,
            )
            if not poll:
                return meta, []
            resources = []
            deadline = time.monotonic() + self.finish_timeout
            while True:
                resource = runner.trace.said(
                    await runner.call(connector.get, resource_meta=self._round_trip(connector, meta))
                )
                resources.append(resource)
                if _is_terminal(resource.phase):
                    return meta, resources
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the task did not reach a terminal phase within {self.finish_timeout} s (last: "
                        f"{_phase(resource.phase)}, {resource.message!r}): give the contract a task that finishes "
                        "(override task_template/inputs) or raise finish_timeout"
                    )
                await asyncio.sleep(0.05)

        return run

    # ------------------------------------------------------------------------------------------ checks
    def test_metadata_is_a_resource_meta_dataclass(self, connector: Any) -> None:
        self._require_async(connector)
        meta_type = connector.metadata_type
        if not (isinstance(meta_type, type) and issubclass(meta_type, ResourceMeta)):
            pytest.fail(f"metadata_type {meta_type!r} is not a ResourceMeta subclass: pass metadata_type=MyMeta")
        if not dataclasses.is_dataclass(meta_type):
            pytest.fail(
                f"{meta_type.__name__} is not a dataclass: its encode() would not carry its fields to propeller; "
                "decorate it with @dataclass"
            )

    def test_create_returns_its_metadata_type(self, connector: Any, job: Any) -> None:
        meta, _ = _run(job(_Runner(_Trace()), poll=False))
        try:  # a bridged connector's metadata_type decodes as the class its own create makes
            decoded: Any = connector.metadata_type.decode(meta.encode())
        except Exception as e:
            decoded = e
        if type(decoded) is not type(meta):
            pytest.fail(
                f"create returned {type(meta).__name__}, not the connector's metadata_type "
                f"{connector.metadata_type.__name__} (its bytes decode as {type(decoded).__name__}): GetTask "
                "decodes with metadata_type, so get would receive a different object than create made"
            )

    def test_metadata_json_round_trip(self, connector: Any, job: Any, metadata_samples: list[bytes]) -> None:
        meta, _ = _run(job(_Runner(_Trace()), poll=False))
        data = meta.encode()
        try:
            json.loads(data)
        except ValueError:
            pytest.fail(
                f"{type(meta).__name__}.encode() is not JSON: propeller stores the bytes and older replicas "
                "and tools must read them; do not override encode with pickle"
            )
        again = connector.metadata_type.decode(data)
        if again != meta:
            pytest.fail(
                f"{type(meta).__name__} does not survive encode/decode: {meta!r} came back as {again!r}; get on "
                "another replica would see different state. Use JSON-friendly field types (str, int, float, "
                "bool, lists, dicts, nested dataclasses)"
            )
        if len(data) > self.max_metadata_bytes:
            warnings.warn(
                ContractWarning(
                    f"{type(meta).__name__} encodes to {len(data)} bytes (over {self.max_metadata_bytes}): "
                    "propeller keeps it in etcd and sends it with every GetTask; keep only what get and delete need"
                ),
                stacklevel=1,
            )
        for i, sample in enumerate(metadata_samples):
            try:
                decoded = connector.metadata_type.decode(sample)
            except Exception as e:
                pytest.fail(
                    f"metadata sample {i} (written by the flytekit connector) does not decode: {e}. Propeller "
                    "still holds such bytes for running tasks; give new fields defaults so the old bytes decode"
                )
            assert type(decoded) is connector.metadata_type

    def test_create_is_idempotent_when_declared(
        self, connector: Any, task_template: Any, inputs: Any, task_execution_metadata: Any, output_prefix: str
    ) -> None:
        self._require_async(connector)
        if not self.idempotent_create:
            pytest.skip(
                "idempotent_create is not set: propeller retries CreateTask after a timeout, so two jobs may run; "
                "derive the job id from task_execution_metadata.task_execution_id and set idempotent_create = True"
            )

        async def twice() -> tuple[Any, Any]:
            runner = _Runner(_Trace())
            kwargs = dict(
                task_template=task_template,
                inputs=inputs,
                output_prefix=output_prefix,
                task_execution_metadata=task_execution_metadata,
            )
            first = await runner.call(connector.create, **kwargs)
            second = await runner.call(connector.create, **kwargs)
            await runner.call(connector.delete, resource_meta=self._round_trip(connector, second))
            return first, second

        first, second = _run(twice())
        if first.encode() != second.encode():
            pytest.fail(
                f"create called twice with the same task execution metadata returned {first!r} and {second!r}: "
                "propeller retries CreateTask after a timeout and would start a second job that nobody polls or "
                "cancels; derive the job id from task_execution_metadata.task_execution_id"
            )

    def test_get_of_a_finished_job_is_terminal(self, connector: Any, job: Any) -> None:
        async def finished_then_again(runner: _Runner) -> tuple[Resource, Resource]:
            meta, resources = await job(runner)
            again = runner.trace.said(await runner.call(connector.get, resource_meta=self._round_trip(connector, meta)))
            return resources[-1], again

        last, again = _run(finished_then_again(_Runner(_Trace())))
        if not _is_terminal(again.phase):
            pytest.fail(
                f"get of a finished job ({_phase(last.phase)}) answered {_phase(again.phase)} when asked again: "
                "propeller may poll a finished job once more (another replica, a cache miss) and would then "
                "wait forever; keep what get needs to answer in the metadata or the remote system"
            )

    def test_every_phase_is_real(self, job: Any, failing_case: Any) -> None:
        trace = _Trace()
        _, resources = _run(job(_Runner(trace)))
        if failing_case is not None:
            _run(job(_Runner(trace), *failing_case))
        self._check_phases(trace.resources)

    def test_outputs_only_on_succeeded_and_convertible(self, job: Any, task_template: Any) -> None:
        _, resources = _run(job(_Runner(_Trace())))
        self._check_outputs(resources, task_template)

    def test_failing_case_fails_with_a_message(self, job: Any, failing_case: Any) -> None:
        if failing_case is None:
            pytest.skip("no failing_case fixture: give a template and inputs that fail to check the message")
        _, resources = _run(job(_Runner(_Trace()), *failing_case))
        last = resources[-1]
        if last.phase not in (_TE.FAILED, _TE.RETRYABLE_FAILED) or not last.message:
            pytest.fail(
                f"the failing case ended {_phase(last.phase)} with message {last.message!r}: propeller shows the "
                "message to the user as the reason; return FAILED (or RETRYABLE_FAILED) with what went wrong"
            )

    def test_delete_is_idempotent(
        self,
        connector: Any,
        job: Any,
        task_template: Any,
        inputs: Any,
        task_execution_metadata: Any,
        output_prefix: str,
    ) -> None:
        async def deletes(runner: _Runner) -> None:
            meta = await runner.call(
                connector.create,
                task_template=task_template,
                inputs=inputs,
                output_prefix=output_prefix,
                task_execution_metadata=task_execution_metadata,
            )
            for what in ("a job just created", "the same job again"):
                await self._delete(runner, connector, meta, what)
            finished, _ = await job(runner)
            for what in ("a finished job", "a finished job again"):
                await self._delete(runner, connector, finished, what)

        _run(deletes(_Runner(_Trace())))

    def test_no_async_method_blocks_the_event_loop(self, connector: Any, job: Any) -> None:
        async def lifecycle(runner: _Runner) -> None:
            meta, _ = await job(runner)
            await runner.call(connector.delete, resource_meta=self._round_trip(connector, meta))

        self._check_blocking(lifecycle)

    def test_no_secret_in_messages(
        self, connector: Any, job: Any, failing_case: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        trace = _Trace()

        async def runs(runner: _Runner) -> None:
            meta, _ = await job(runner)
            await runner.call(connector.delete, resource_meta=self._round_trip(connector, meta))
            if failing_case is not None:
                await job(runner, *failing_case)

        _run(runs(_Runner(trace)))
        self._check_no_secret(trace, caplog)

    # ------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _require_async(connector: Any) -> None:
        if not isinstance(connector, AsyncConnectorBase):
            pytest.fail(
                f"{type(connector).__name__} is not an AsyncConnectorBase: use SyncConnectorContract for a "
                "connector that answers in one call"
            )

    @staticmethod
    async def _delete(runner: _Runner, connector: Any, meta: Any, what: str) -> None:
        try:
            await runner.call(connector.delete, resource_meta=_Contract._round_trip(connector, meta))
        except Exception as e:
            pytest.fail(
                f"delete of {what} raised {type(e).__name__}: {e}. Propeller deletes on abort and may retry; "
                "an error fails the abort. Treat a finished, cancelled or unknown job as deleted"
            )


class SyncConnectorContract(_Contract):
    """The contract of a ``SyncConnectorBase``: subclass it in a test module and give a ``connector`` fixture."""

    @pytest.fixture
    def job(self, connector: Any, task_template: Any, inputs: Any, output_prefix: str) -> Callable[..., Any]:
        """Runs ``do`` once: ``job(runner)`` returns its Resource."""
        if not isinstance(connector, SyncConnectorBase):
            pytest.fail(
                f"{type(connector).__name__} is not a SyncConnectorBase: use AsyncConnectorContract for a "
                "connector with create/get/delete"
            )

        async def run(runner: _Runner, template: Any = task_template, job_inputs: Any = inputs) -> Resource:
            resource = await runner.call(
                connector.do, task_template=template, inputs=job_inputs, output_prefix=output_prefix
            )
            return runner.trace.said(resource)

        return run

    def test_do_returns_a_terminal_phase(self, job: Any, failing_case: Any) -> None:
        trace = _Trace()
        resources = [_run(job(_Runner(trace)))]
        if failing_case is not None:
            resources.append(_run(job(_Runner(trace), *failing_case)))
        self._check_phases(resources)
        for resource in resources:
            if not _is_terminal(resource.phase):
                pytest.fail(
                    f"do returned {_phase(resource.phase)}: propeller reads one answer from ExecuteTaskSync and the "
                    "service refuses a non-terminal one (INTERNAL); return SUCCEEDED, FAILED, RETRYABLE_FAILED or "
                    "ABORTED, or make the connector async"
                )

    def test_outputs_only_on_succeeded_and_convertible(self, job: Any, task_template: Any) -> None:
        self._check_outputs([_run(job(_Runner(_Trace())))], task_template)

    def test_failing_case_fails_with_a_message(self, job: Any, failing_case: Any) -> None:
        if failing_case is None:
            pytest.skip("no failing_case fixture: give a template and inputs that fail to check the message")
        resource = _run(job(_Runner(_Trace()), *failing_case))
        if resource.phase not in (_TE.FAILED, _TE.RETRYABLE_FAILED) or not resource.message:
            pytest.fail(
                f"the failing case ended {_phase(resource.phase)} with message {resource.message!r}: propeller "
                "shows the message to the user as the reason; return FAILED (or RETRYABLE_FAILED) with what went wrong"
            )

    def test_no_async_method_blocks_the_event_loop(self, job: Any) -> None:
        self._check_blocking(job)

    def test_no_secret_in_messages(self, job: Any, failing_case: Any, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        trace = _Trace()
        _run(job(_Runner(trace)))
        if failing_case is not None:
            _run(job(_Runner(trace), *failing_case))
        self._check_no_secret(trace, caplog)
