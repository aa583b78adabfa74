"""Run one TaskTemplate through its connector in this process, the way propeller would drive the service.

Each ``LocalRun`` owns its state (connector, job handle, event loop), so runs in several threads at once
never see each other. The blocking ``run()`` works from a plain script, from a thread, and from code that
is already inside a running event loop (a notebook): there the coroutine runs on a private loop in a worker
thread while the caller blocks. On SIGINT/SIGTERM after ``create`` the job is deleted exactly once before
the run stops with ``TaskInterrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2

from .._connector import (
    AsyncConnectorBase,
    ConnectorBase,
    Resource,
    ResourceMeta,
    SyncConnectorBase,
    is_terminal_phase,
)
from .._registry import ConnectorRegistry
from ..literals import python_to_literal_map
from ._progress import Display, open_display

__all__ = [
    "POLL_FIRST",
    "POLL_GROWTH",
    "POLL_MAX",
    "LocalRun",
    "LocalRunError",
    "TaskFailed",
    "TaskInterrupted",
    "read_outputs_file",
]

logger = logging.getLogger("core_connectors.local")

POLL_FIRST = 0.02
"""Seconds before the second ``get``: short, so quick jobs return at once (flytekit sleeps a fixed second)."""
POLL_GROWTH = 1.5
"""Each wait is this much longer than the last: a job is seen done at most ~50% after it ends."""
POLL_MAX = 3.0
"""The poll interval grows up to this many seconds, so long jobs cost few calls."""

LOCAL_PROJECT = "local"
LOCAL_DOMAIN = "development"
LOCAL_NAMESPACE = "local"

_SUCCEEDED = execution_pb2.TaskExecution.SUCCEEDED
_T = TypeVar("_T")


class LocalRunError(RuntimeError):
    """A local run could not complete or could not find its outputs."""


class TaskFailed(LocalRunError):
    """The connector ended the task in a phase other than SUCCEEDED."""

    def __init__(self, name: str, message: str, phase: int):
        super().__init__(f"Failed to run the task {name} with error: {message}")
        self.phase = phase


class TaskInterrupted(KeyboardInterrupt):
    """The run stopped on SIGINT or SIGTERM; the job, if one had been created, was deleted first.

    A KeyboardInterrupt, so Ctrl-C in a script ends it as usual; ``exit_code`` is the shell's 128 + signal.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class LocalRun:
    """One run of ``template`` with ``inputs``: create, poll ``get`` until a terminal phase, return outputs.

    ``output_prefix`` defaults to a fresh temporary directory; ``progress`` None shows a display only when
    stderr is a terminal; ``expect`` (a connector base class) rejects a connector of the other kind.
    """

    def __init__(
        self,
        template: tasks_pb2.TaskTemplate,
        inputs: literals_pb2.LiteralMap | None = None,
        *,
        name: str | None = None,
        output_prefix: str | None = None,
        progress: bool | None = None,
        expect: type[ConnectorBase] | None = None,
    ):
        self.template = template
        self.inputs = inputs if inputs is not None else literals_pb2.LiteralMap()
        self.name = name or template.id.name or template.type
        self.output_prefix = output_prefix
        self.progress = progress
        self.expect = expect
        self.execution_id = "l" + os.urandom(10).hex()[:19]
        self.resource_meta: ResourceMeta | None = None
        self.deleted = False
        self.delete_started = False

    # ------------------------------------------------------------------------------------------ async API
    async def arun(self) -> literals_pb2.LiteralMap:
        """Run on the caller's event loop. Cancelling it after ``create`` deletes the job, then re-raises."""
        connector = self._connector()
        prefix = self.output_prefix or _temp_dir()
        try:
            with open_display(self.name, self.progress) as display:
                if isinstance(connector, SyncConnectorBase):
                    resource = await _call(
                        connector.do, task_template=self.template, output_prefix=prefix, inputs=self.inputs
                    )
                    display.update(resource)
                else:
                    resource = await self._run_async(connector, prefix, display)
            if resource.phase != _SUCCEEDED:
                message = resource.message or execution_pb2.TaskExecution.Phase.Name(resource.phase)
                raise TaskFailed(self.name, message, resource.phase)
            return self._outputs(resource, prefix)
        finally:
            if prefix != self.output_prefix:  # our temporary directory: keep it only if the connector wrote there
                with contextlib.suppress(OSError):
                    os.rmdir(prefix)

    def _connector(self) -> SyncConnectorBase | AsyncConnectorBase[Any]:
        connector = ConnectorRegistry.get_connector(self.template.type, self.template.task_type_version)
        if not isinstance(connector, (SyncConnectorBase, AsyncConnectorBase)):
            raise LocalRunError(f"{type(connector).__name__} is neither a sync nor an async connector")
        if self.expect is not None and not isinstance(connector, self.expect):
            kind, wanted = ("sync", "an async") if isinstance(connector, SyncConnectorBase) else ("async", "a sync")
            raise LocalRunError(f"task {self.name} runs through {wanted} connector, but {connector.name} is {kind}")
        return connector

    async def _run_async(self, connector: AsyncConnectorBase[Any], prefix: str, display: Display) -> Resource:
        created = asyncio.ensure_future(
            _call(
                connector.create,
                task_template=self.template,
                output_prefix=prefix,
                inputs=self.inputs,
                task_execution_metadata=self.execution_metadata(),
            )
        )
        try:
            meta = await asyncio.shield(created)
        except asyncio.CancelledError:
            # Stopped while the job was being created: wait for its handle so that it can still be deleted.
            self.resource_meta = await created
            await self._delete(connector)
            raise
        self.resource_meta = meta
        try:
            return await self._poll(connector, meta, display)
        except BaseException:  # Ctrl-C, a cancelled caller or a failing get: do not leave the job running
            await self._delete(connector)
            raise

    async def _poll(self, connector: AsyncConnectorBase[Any], meta: ResourceMeta, display: Display) -> Resource:
        interval = POLL_FIRST
        while True:
            resource: Resource = await _call(connector.get, resource_meta=meta)
            display.update(resource)
            if is_terminal_phase(resource.phase):
                return resource
            await asyncio.sleep(interval)
            interval = min(interval * POLL_GROWTH, POLL_MAX)

    async def _delete(self, connector: AsyncConnectorBase[Any]) -> None:
        if self.delete_started or self.resource_meta is None:
            return
        self.delete_started = True
        try:
            await _call(connector.delete, resource_meta=self.resource_meta)
        except Exception:
            logger.exception("could not delete the job of task %s (%s)", self.name, self.resource_meta)
        else:
            self.deleted = True

    def execution_metadata(self) -> agent_pb2.TaskExecutionMetadata:
        """What propeller sends with CreateTask, for connectors that read it: a fresh local execution id."""
        task_id = identifier_pb2.Identifier()
        task_id.CopyFrom(self.template.id)
        task_id.resource_type = identifier_pb2.TASK
        task_id.name = task_id.name or self.name
        execution = identifier_pb2.WorkflowExecutionIdentifier(
            project=task_id.project or LOCAL_PROJECT, domain=task_id.domain or LOCAL_DOMAIN, name=self.execution_id
        )
        return agent_pb2.TaskExecutionMetadata(
            task_execution_id=identifier_pb2.TaskExecutionIdentifier(
                task_id=task_id,
                node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id="n0", execution_id=execution),
            ),
            namespace=LOCAL_NAMESPACE,
            labels={
                "execution-id": self.execution_id,
                "project": execution.project,
                "domain": execution.domain,
                "node-id": "n0",
            },
            max_attempts=1,
        )

    def _outputs(self, resource: Resource, prefix: str) -> literals_pb2.LiteralMap:
        declared = self.template.interface.outputs
        if resource.outputs is None:
            return read_outputs_file(prefix) if declared.variables else literals_pb2.LiteralMap()
        if isinstance(resource.outputs, literals_pb2.LiteralMap):
            return resource.outputs
        return python_to_literal_map(resource.outputs, declared)

    # --------------------------------------------------------------------------------------- blocking API
    def run(self) -> literals_pb2.LiteralMap:
        """Run to the end and return the outputs, blocking the calling thread (see the module docstring)."""
        return run_blocking(self.arun(), self)


def run_blocking(coro: Coroutine[Any, Any, _T], run: LocalRun) -> _T:
    """Run ``coro`` on a private loop: here, or in a worker thread if this thread's loop is running."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)
    interrupts = _Interrupts(loop, task)
    try:
        with interrupts:
            if _loop_running():
                worker = threading.Thread(target=_run_loop, args=(loop, task), name="core-connectors-run", daemon=True)
                worker.start()
                worker.join()
            else:
                _run_loop(loop, task)
    finally:
        if not loop.is_closed() and not loop.is_running():  # a second Ctrl-C left the loop mid-run
            loop.close()
    if interrupts.signum is not None:
        raise TaskInterrupted(_interrupted_message(run, interrupts.signum), interrupts.signum) from None
    return task.result()


def _run_loop(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    try:
        loop.run_until_complete(asyncio.wait([task]))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _interrupted_message(run: LocalRun, signum: int) -> str:
    what = signal.Signals(signum).name
    if run.deleted:
        return f"Interrupted by {what}: deleted the job of task {run.name} ({run.resource_meta})"
    if run.delete_started:
        return f"Interrupted by {what}: could not delete the job of task {run.name} ({run.resource_meta}); see the log"
    if run.resource_meta is not None:
        return f"Interrupted by {what} after the job of task {run.name} had finished"
    return f"Interrupted by {what}: task {run.name} stopped before it had a job to delete"


class _Interrupts:
    """While a run lasts, SIGINT and SIGTERM cancel its task (main thread only; ignored signals stay ignored).

    The first signal puts the previous handlers back, so a second Ctrl-C stops at once without waiting for
    the delete, and nothing piles up across runs.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]):
        self.signum: int | None = None
        self._loop = loop
        self._task = task
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                previous = signal.getsignal(signum)
                if previous in (signal.SIG_IGN, None):  # ignored (nohup, background job) or not set from Python
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        self._restore()
        try:
            self._loop.call_soon_threadsafe(self._task.cancel)
        except RuntimeError:  # the loop has already closed: the run is over
            pass

    def _restore(self) -> None:
        while self._previous:
            signum, previous = self._previous.popitem()
            signal.signal(signum, previous)


async def _call(method: Callable[..., Any], **kwargs: Any) -> Any:
    """Await an ``async def`` connector method; run a plain ``def`` in a thread, never on the loop."""
    if inspect.iscoroutinefunction(method):
        return await method(**kwargs)
    result = await asyncio.to_thread(method, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _temp_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="core-connectors-")


def read_outputs_file(output_prefix: str) -> literals_pb2.LiteralMap:
    """Read ``<output_prefix>/outputs.pb`` as propeller does when a connector returns no outputs.

    Local paths (and ``file://``) are read directly; other schemes need fsspec (``core-connectors[fsspec]``).
    """
    uri = output_prefix.rstrip("/") + "/outputs.pb"
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme == "file" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        path = rest if scheme == "file" else uri
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise LocalRunError(
                f"the connector returned no outputs and wrote no {path}, but the task declares outputs"
            ) from None
    else:
        try:
            import fsspec
        except ImportError:
            raise LocalRunError(
                f"the connector returned no outputs, so they must be read from {uri}; reading {scheme}:// needs "
                f"fsspec, which is not installed: pip install 'core-connectors[fsspec]' (plus the filesystem for "
                f"{scheme}, e.g. s3fs or gcsfs)"
            ) from None
        try:
            with fsspec.open(uri, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise LocalRunError(
                f"the connector returned no outputs and wrote no {uri}, but the task declares outputs"
            ) from None
    return literals_pb2.LiteralMap.FromString(data)
