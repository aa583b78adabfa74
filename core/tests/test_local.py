"""Local execution: ConnectorTask, the executor mixins and the runner (polling, signals, outputs, threads)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2, types_pb2

from core_connectors import (
    AsyncConnectorBase,
    AsyncConnectorExecutorMixin,
    ConnectorNotFound,
    Resource,
    ResourceMeta,
    SyncConnectorBase,
    SyncConnectorExecutorMixin,
)
from core_connectors.literals import python_to_literal_map
from core_connectors.local import ConnectorTask, LocalRun, LocalRunError, TaskFailed, TaskInterrupted
from core_connectors.local import _runner as runner

TE = execution_pb2.TaskExecution


# ------------------------------------------------------------------------------------------- test connectors
@dataclass
class JobMeta(ResourceMeta):
    job: str


class Recorder:
    """Shared behaviour of the test connectors: records calls; ``script`` is the phases ``get`` returns."""

    def setup(self, script: list[Resource] | None = None, on_get: Any = None, on_create: Any = None) -> None:
        self.calls: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.deleted: list[JobMeta] = []
        self.script = list(script or [Resource(phase=TE.SUCCEEDED)])
        self.on_get = on_get
        self.on_create = on_create
        self.lock = threading.Lock()

    def _create(self, **kwargs: Any) -> JobMeta:
        with self.lock:
            self.calls.append("create")
            self.created.append(kwargs)
            job = f"job-{len(self.created)}"
        if self.on_create:
            self.on_create(kwargs)
        return JobMeta(job=job)

    def _get(self, resource_meta: JobMeta) -> Resource:
        with self.lock:
            self.calls.append("get")
            n = self.calls.count("get")
        if self.on_get:
            self.on_get(n)
        return self.script[min(n, len(self.script)) - 1]

    def _delete(self, resource_meta: JobMeta) -> None:
        with self.lock:
            self.calls.append("delete")
            self.deleted.append(resource_meta)


class AsyncRecorder(Recorder, AsyncConnectorBase):
    name = "Async Recorder"

    def __init__(self, task_type: str = "rec", **kwargs: Any):
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)
        self.setup(**kwargs)

    async def create(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> JobMeta:
        return self._create(task_template=task_template, output_prefix=output_prefix, inputs=inputs, **kwargs)

    async def get(self, resource_meta: JobMeta, **kwargs: Any) -> Resource:
        return self._get(resource_meta)

    async def delete(self, resource_meta: JobMeta, **kwargs: Any) -> None:
        self._delete(resource_meta)


class DefRecorder(Recorder, AsyncConnectorBase):
    """The same with plain ``def`` methods, which the runner calls in threads."""

    name = "Def Recorder"

    def __init__(self, task_type: str = "rec", **kwargs: Any):
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)
        self.setup(**kwargs)
        self.threads: set[str] = set()

    def create(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> JobMeta:
        self.threads.add(threading.current_thread().name)
        return self._create(task_template=task_template, output_prefix=output_prefix, inputs=inputs, **kwargs)

    def get(self, resource_meta: JobMeta, **kwargs: Any) -> Resource:
        return self._get(resource_meta)

    def delete(self, resource_meta: JobMeta, **kwargs: Any) -> None:
        self._delete(resource_meta)


RECORDERS = [AsyncRecorder, DefRecorder]


class RecTask(AsyncConnectorExecutorMixin, ConnectorTask):
    def __init__(self, name: str = "rec-task", **kwargs: Any):
        super().__init__(name=name, task_type="rec", **kwargs)


@pytest.fixture
def register(connector_registry):
    def register(connector):
        connector_registry.register(connector)
        return connector

    return register


# -------------------------------------------------------------------------------------------- the template
def test_template_has_id_type_interface_custom_metadata_and_sql():
    task = ConnectorTask(
        "my-query",
        task_type="bigquery_query_job_task",
        task_type_version=1,
        custom={"ProjectID": "p", "Location": "EU", "limits": [1, 2]},
        inputs={"ds": str, "n": int, "when": dt.datetime},
        outputs={"results": list[float]},
        sql="SELECT * FROM t WHERE ds = @ds",
        config={"k": "v"},
    )
    t = task.task_template()
    assert isinstance(t, tasks_pb2.TaskTemplate)
    assert t.id.resource_type == identifier_pb2.TASK and t.id.name == "my-query"
    assert (t.type, t.task_type_version) == ("bigquery_query_job_task", 1)
    assert t.metadata.runtime.type == tasks_pb2.RuntimeMetadata.OTHER
    assert t.metadata.runtime.flavor == "core-connectors"
    assert t.interface.inputs.variables["n"].type.simple == types_pb2.INTEGER
    assert t.interface.inputs.variables["when"].type.simple == types_pb2.DATETIME
    assert t.interface.outputs.variables["results"].type.collection_type.simple == types_pb2.FLOAT
    assert t.custom["ProjectID"] == "p" and list(t.custom["limits"]) == [1, 2]
    assert t.sql.statement == "SELECT * FROM t WHERE ds = @ds" and t.sql.dialect == tasks_pb2.Sql.ANSI
    assert dict(t.config) == {"k": "v"}


def test_template_without_sql_or_custom_leaves_them_unset():
    t = ConnectorTask("t", task_type="x").task_template()
    assert not t.HasField("sql") and not t.HasField("custom")


def test_unsupported_types_fail_when_the_task_is_made():
    with pytest.raises(TypeError, match="object"):
        ConnectorTask("t", task_type="x", inputs={"o": object})
    with pytest.raises(TypeError, match="custom of task t"):
        ConnectorTask("t", task_type="x", custom={"o": object()}).task_template()


# ------------------------------------------------------------------------------------------- calling tasks
@pytest.mark.parametrize("recorder", RECORDERS)
def test_async_path_returns_plain_values_and_passes_metadata(register, recorder):
    conn = register(recorder(script=[Resource(phase=TE.RUNNING), Resource(phase=TE.SUCCEEDED, outputs={"o": 2})]))
    task = RecTask(inputs={"x": int}, outputs={"o": float})
    assert task(x=1) == 2.0  # an int returned for a float output is converted by the interface
    assert conn.calls == ["create", "get", "get"]
    created = conn.created[0]
    assert created["inputs"].literals["x"].scalar.primitive.integer == 1
    assert created["task_template"].id.name == "rec-task"
    meta = created["task_execution_metadata"]
    exec_id = meta.task_execution_id.node_execution_id.execution_id
    assert meta.namespace == "local" and exec_id.name and meta.labels["execution-id"] == exec_id.name
    assert meta.task_execution_id.task_id.name == "rec-task"
    assert Path(created["output_prefix"]).name.startswith("core-connectors-")
    if recorder is DefRecorder:
        assert threading.main_thread().name not in conn.threads


def test_execute_returns_a_literal_map(register):
    register(AsyncRecorder(script=[Resource(phase=TE.SUCCEEDED, outputs={"o": "x"})]))
    result = RecTask(outputs={"o": str}).execute()
    assert isinstance(result, literals_pb2.LiteralMap)
    assert result.literals["o"].scalar.primitive.string_value == "x"


def test_output_shapes(register):
    outputs = {"a": 1, "b": "two"}
    register(AsyncRecorder(script=[Resource(phase=TE.SUCCEEDED, outputs=outputs)]))
    assert RecTask()() == {"a": 1, "b": "two"}  # nothing declared: whatever came back, as a dict
    assert RecTask(outputs={"a": int})() == 1
    both = RecTask(outputs={"b": str, "a": int})()
    assert both == ("two", 1) and both.a == 1 and both.b == "two"
    with pytest.raises(LocalRunError, match=r"declares outputs \['c'\]"):
        RecTask(outputs={"a": int, "c": int})()


def test_no_outputs_gives_none(register):
    register(AsyncRecorder())
    assert RecTask()() is None


def test_inputs_are_checked(register):
    register(AsyncRecorder())
    with pytest.raises(TypeError, match=r"unexpected inputs \['y'\]"):
        RecTask(inputs={"x": int})(x=1, y=2)
    with pytest.raises(TypeError, match=r"missing inputs \['x'\]"):
        RecTask(inputs={"x": int})()
    with pytest.raises(TypeError, match="'x'"):
        RecTask(inputs={"x": int})(x="not a number")
    RecTask(inputs={"x": int | None})()  # optional inputs may be left out


def test_failure_message(register):
    register(AsyncRecorder(script=[Resource(phase=TE.RUNNING), Resource(phase=TE.FAILED, message="quota exceeded")]))
    with pytest.raises(TaskFailed, match="^Failed to run the task rec-task with error: quota exceeded$") as e:
        RecTask()()
    assert e.value.phase == TE.FAILED


def test_unknown_task_type():
    with pytest.raises(ConnectorNotFound):
        ConnectorTask("t", task_type="no-such-type-here")()


def test_poll_interval_starts_short_and_grows_to_a_cap(register, monkeypatch):
    register(AsyncRecorder(script=[Resource(phase=TE.RUNNING)] * 16 + [Resource(phase=TE.SUCCEEDED)]))
    waits = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds, *args):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    RecTask()()
    growth = runner.POLL_GROWTH
    assert waits[:3] == pytest.approx([runner.POLL_FIRST, runner.POLL_FIRST * growth, runner.POLL_FIRST * growth**2])
    assert waits[-1] == runner.POLL_MAX and max(waits) == runner.POLL_MAX and len(waits) == 16
    assert runner.POLL_FIRST <= 0.05 and 1 <= runner.POLL_MAX <= 5


def test_a_failing_get_deletes_the_job(register):
    def boom(n):
        raise RuntimeError("backend unreachable")

    conn = register(DefRecorder(on_get=boom))
    with pytest.raises(RuntimeError, match="backend unreachable"):
        RecTask()()
    assert conn.calls == ["create", "get", "delete"]


def test_each_run_gets_its_own_output_prefix_unless_given(register, tmp_path):
    conn = register(AsyncRecorder())
    RecTask()()
    RecTask()()
    RecTask(output_prefix=str(tmp_path))()
    prefixes = [c["output_prefix"] for c in conn.created]
    assert prefixes[0] != prefixes[1] and prefixes[2] == str(tmp_path)
    assert not Path(prefixes[0]).exists() and tmp_path.exists()  # an unused temporary directory is removed


def test_a_temporary_output_prefix_the_connector_wrote_to_is_kept(register):
    conn = register(AsyncRecorder(on_create=lambda kw: _write_outputs(kw["output_prefix"], {"rows": 1})))
    assert RecTask(outputs={"rows": int})() == 1
    assert Path(conn.created[0]["output_prefix"], "outputs.pb").exists()


# ---------------------------------------------------------------------------------------------- sync path
class Doer(SyncConnectorBase):
    name = "Doer"

    def __init__(self, resource: Resource):
        super().__init__(task_type_name="doer")
        self.resource = resource
        self.received: list[dict[str, Any]] = []

    def do(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Resource:
        self.received.append({"task_template": task_template, "output_prefix": output_prefix, "inputs": inputs})
        return self.resource


class AsyncDoer(Doer):
    async def do(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Resource:  # type: ignore[override]
        return super().do(task_template, output_prefix, inputs)


class DoTask(SyncConnectorExecutorMixin, ConnectorTask):
    def __init__(self, **kwargs: Any):
        super().__init__(name="do-task", task_type="doer", **kwargs)


@pytest.mark.parametrize("doer", [Doer, AsyncDoer])
def test_sync_connector_do(connector_registry, doer):
    conn = doer(Resource(phase=TE.SUCCEEDED, outputs={"answer": 42, "when": dt.datetime(2024, 1, 1)}))
    connector_registry.register(conn)
    answer = DoTask(inputs={"q": str}, outputs={"answer": float, "when": dt.datetime})(q="why")
    assert answer.answer == 42.0 and answer.when == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert conn.received[0]["inputs"].literals["q"].scalar.primitive.string_value == "why"


def test_sync_connector_failure(connector_registry):
    connector_registry.register(Doer(Resource(phase=TE.FAILED, message="bad prompt")))
    with pytest.raises(TaskFailed, match="^Failed to run the task do-task with error: bad prompt$"):
        DoTask()()


def test_a_plain_connector_task_runs_either_kind(connector_registry):
    connector_registry.register(Doer(Resource(phase=TE.SUCCEEDED, outputs={"o": 1})))
    assert ConnectorTask("t", task_type="doer", outputs={"o": int})() == 1


def test_mixin_rejects_a_connector_of_the_other_kind(connector_registry):
    connector_registry.register(Doer(Resource(phase=TE.SUCCEEDED)))

    class WrongTask(AsyncConnectorExecutorMixin, ConnectorTask):
        pass

    with pytest.raises(LocalRunError, match="runs through an async connector, but Doer is sync"):
        WrongTask("w", task_type="doer")()


# ------------------------------------------------------------------------------------------- outputs.pb
def _write_outputs(prefix: str, values: dict[str, Any]) -> None:
    Path(prefix, "outputs.pb").write_bytes(python_to_literal_map(values).SerializeToString())


def test_outputs_are_read_from_outputs_pb_when_the_connector_returns_none(register):
    register(AsyncRecorder(on_create=lambda kw: _write_outputs(kw["output_prefix"], {"rows": 7})))
    assert RecTask(outputs={"rows": int})() == 7


def test_outputs_pb_under_a_file_uri(register, tmp_path):
    _write_outputs(str(tmp_path), {"rows": 8})
    register(AsyncRecorder())
    assert RecTask(outputs={"rows": int}, output_prefix=f"file://{tmp_path}/")() == 8


def test_missing_outputs_pb_is_a_clear_error(register, tmp_path):
    register(AsyncRecorder())
    with pytest.raises(LocalRunError, match=f"returned no outputs and wrote no {tmp_path}/outputs.pb"):
        RecTask(outputs={"rows": int}, output_prefix=str(tmp_path))()


def test_remote_outputs_without_fsspec_say_what_is_missing(register, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "fsspec", None)
    register(AsyncRecorder())
    with pytest.raises(LocalRunError, match=r"s3://bucket/run/outputs.pb.*fsspec.*core-connectors\[fsspec\]"):
        RecTask(outputs={"rows": int}, output_prefix="s3://bucket/run")()


def test_remote_outputs_through_fsspec(register):
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://run-1/outputs.pb", "wb") as f:
        f.write(python_to_literal_map({"rows": 9}).SerializeToString())
    register(AsyncRecorder())
    assert RecTask(outputs={"rows": int}, output_prefix="memory://run-1")() == 9


# ---------------------------------------------------------------------------------- loops and threads
async def test_a_blocking_call_inside_a_running_loop(register):
    conn = register(AsyncRecorder(script=[Resource(phase=TE.RUNNING), Resource(phase=TE.SUCCEEDED, outputs={"o": 1})]))
    assert RecTask(outputs={"o": int})() == 1  # a notebook cell: no await
    assert conn.calls == ["create", "get", "get"]


async def test_await_inside_a_running_loop(register):
    register(AsyncRecorder(script=[Resource(phase=TE.SUCCEEDED, outputs={"o": 1})]))
    assert await RecTask(outputs={"o": int}).acall() == 1
    assert (await RecTask(outputs={"o": int}).aexecute()).literals["o"].scalar.primitive.integer == 1


@pytest.mark.parametrize("recorder", RECORDERS)
async def test_cancelling_aexecute_deletes_the_job_once(register, recorder):
    conn = register(recorder(script=[Resource(phase=TE.RUNNING)]))
    run = asyncio.ensure_future(RecTask().aexecute())
    while conn.calls.count("get") < 2:
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert conn.calls.count("delete") == 1 and conn.deleted == [JobMeta(job="job-1")]


def test_two_runs_in_threads_at_once_share_nothing(register):
    both_creating = threading.Barrier(2, timeout=10)
    conn = register(
        DefRecorder(
            script=[Resource(phase=TE.RUNNING), Resource(phase=TE.SUCCEEDED)],
            on_create=lambda kw: both_creating.wait(),  # passes only when both runs are inside create together
        )
    )
    runs = [RecTask(name=f"t{i}").local_run() for i in range(2)]
    errors: list[BaseException] = []

    def go(run: LocalRun) -> None:
        try:
            run.run()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    ids = {c["task_execution_metadata"].labels["execution-id"] for c in conn.created}
    prefixes = {c["output_prefix"] for c in conn.created}
    assert len(ids) == 2 and len(prefixes) == 2
    assert {r.resource_meta.job for r in runs} == {"job-1", "job-2"}


def test_runs_off_the_main_thread_leave_signal_handlers_alone(register):
    seen = []
    register(AsyncRecorder(on_get=lambda n: seen.append(signal.getsignal(signal.SIGINT))))
    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=RecTask())
    t.start()
    t.join(30)
    assert seen == [before]


# ---------------------------------------------------------------------------------------------- signals
def _send_on_get(signum: int, at: int = 2):
    def on_get(n: int) -> None:
        if n == at:
            os.kill(os.getpid(), signum)

    return on_get


@pytest.mark.parametrize("recorder", RECORDERS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_create_deletes_once_then_interrupts(register, recorder, signum):
    conn = register(recorder(script=[Resource(phase=TE.RUNNING)], on_get=_send_on_get(signum)))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TaskInterrupted, match=f"Interrupted by {signal.Signals(signum).name}: deleted the job") as e:
        RecTask()()
    assert isinstance(e.value, KeyboardInterrupt)
    assert e.value.exit_code == 128 + signum
    assert conn.calls.count("delete") == 1 and conn.calls[-1] == "delete"
    assert {s: signal.getsignal(s) for s in before} == before


async def test_a_signal_while_blocking_inside_a_running_loop(register):
    """A notebook: the run is on a worker thread, the main thread waits and catches the signal."""
    conn = register(AsyncRecorder(script=[Resource(phase=TE.RUNNING)], on_get=_send_on_get(signal.SIGINT)))
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TaskInterrupted, match="deleted the job"):
        RecTask()()
    assert conn.calls.count("delete") == 1 and signal.getsignal(signal.SIGINT) is before


def test_a_signal_during_create_still_deletes_the_job(register):
    def on_create(kw: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(0.2)  # create goes on after the signal; its job must not be leaked

    conn = register(DefRecorder(on_create=on_create))
    with pytest.raises(TaskInterrupted, match="deleted the job"):
        RecTask()()
    assert conn.calls == ["create", "delete"]


def test_handlers_are_installed_only_during_a_run_and_never_pile_up(register):
    during = []
    register(AsyncRecorder(on_get=lambda n: during.append(signal.getsignal(signal.SIGINT))))
    before = signal.getsignal(signal.SIGINT)
    for _ in range(3):
        RecTask()()
    assert signal.getsignal(signal.SIGINT) is before
    assert len(during) == 3 and all(h is not before for h in during)
    assert len({id(getattr(h, "__self__", h)) for h in during}) == 3  # one handler per run, none reused


def test_an_ignored_signal_stays_ignored(register):
    during = []
    register(AsyncRecorder(on_get=lambda n: during.append(signal.getsignal(signal.SIGTERM))))
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        RecTask()()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert during == [signal.SIG_IGN]


# ---------------------------------------------------------------------------------------------- progress
def test_no_progress_when_stderr_is_not_a_terminal(register, capsys):
    register(AsyncRecorder(script=[Resource(phase=TE.RUNNING), Resource(phase=TE.SUCCEEDED)]))
    RecTask()()
    assert capsys.readouterr().err == ""


def test_progress_shows_name_phase_message_and_log_links(register, capsys):
    link = execution_pb2.TaskLog(name="Console", uri="https://console.example/job-1")
    register(AsyncRecorder(script=[Resource(phase=TE.SUCCEEDED, message="all good", log_links=[link])]))
    RecTask(name="shown", progress=True)()
    err = capsys.readouterr().err
    for text in ("shown", "SUCCEEDED", "all good", "Console: https://console.example/job-1", " s"):
        assert text in err


def test_local_run_of_a_raw_template(register):
    register(AsyncRecorder(script=[Resource(phase=TE.SUCCEEDED, outputs={"o": 3})]))
    template = tasks_pb2.TaskTemplate(type="rec")
    run = LocalRun(template)
    assert run.name == "rec" and run.run().literals["o"].scalar.primitive.integer == 3
