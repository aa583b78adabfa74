"""The one thread and event loop on which every bridged call runs.

flytekit connectors do blocking work inside ``async def`` (the type engine, synchronous HTTP clients), which
would stall the service's own loop: ListAgents and every native connector would wait behind them. So each
bridged call is handed to this loop and awaited from the service's loop, which stays free. One loop, not one
per call or per thread, because flytekit connectors keep loop-bound clients across calls (the Webhook
connector's ``httpx.AsyncClient`` is made at import), exactly as they do on ``pyflyte serve connector``'s
single loop. Plain ``def`` methods run in this loop's default executor, as flytekit runs them, but in a pool
as large as the service's so that blocking connectors overlap.

The handoff is one ``call_soon_threadsafe`` each way and a future of the caller's loop, not
``run_coroutine_threadsafe`` and ``wrap_future``: their thread-safe ``concurrent.futures.Future`` (a lock and a
condition per call) and chained callbacks took half of a bridged GetTask's Python time.

The handoff still costs two thread wake-ups and the GIL passing between the loops: about a tenth of a bridged
GetTask's rate against ``pyflyte serve connector`` (bench/run.py --bridge). Where every flytekit connector
served is truly asynchronous, ``--flytekit-loop service`` runs their ``async def`` methods on the service's
loop, as pyflyte does, at the price pyflyte pays: one that blocks stalls the whole service. Plain ``def``
methods keep this loop's pool either way.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["LOOP_ENV", "LOOPS", "run_on_bridge_loop", "runner_for"]

LOOP_ENV = "CORE_CONNECTORS_FLYTEKIT_LOOP"
LOOPS = ("bridge", "service")
"""Where bridged ``async def`` methods run: this module's loop (the default) or the service's."""

T = TypeVar("T")

_THREADS = 128  # the service's default pool: 64 blocking `def` calls of 50 ms overlap
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _bridge_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            # "connector" threads are the ones the service waits a moment for at exit, then abandons
            loop.set_default_executor(ThreadPoolExecutor(_THREADS, thread_name_prefix="connector-flytekit"))
            threading.Thread(target=loop.run_forever, name="flytekit-bridge-loop", daemon=True).start()
            _loop = loop
        return _loop


class _Call:
    """One coroutine handed to the bridge loop, and the caller's future that gets its outcome."""

    __slots__ = ("coro", "done", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any], done: asyncio.Future[Any]) -> None:
        self.coro = coro
        self.done = done
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """On the bridge loop (in a copy of the caller's context, which ``call_soon_threadsafe`` carries)."""
        self.task = asyncio.get_running_loop().create_task(_contained(self.coro))
        self.task.add_done_callback(self.finished)

    def finished(self, task: asyncio.Task[Any]) -> None:
        """On the bridge loop."""
        self.done.get_loop().call_soon_threadsafe(self.settle, task)

    def settle(self, task: asyncio.Task[Any]) -> None:
        """On the caller's loop: the task's outcome, unless the caller gave up meanwhile."""
        if task.cancelled():
            self.done.cancel()
            return
        exc = task.exception()  # read even when the caller gave up: no "exception never retrieved" warning
        if self.done.done():
            return
        if exc is not None:
            self.done.set_exception(exc)
        else:
            self.done.set_result(task.result())

    def cancel(self) -> None:
        """On the bridge loop, after ``start`` (the loop runs its callbacks in order)."""
        if self.task is not None:
            self.task.cancel()


async def _contained(coro: Coroutine[Any, Any, T]) -> T:
    """SystemExit or KeyboardInterrupt from a flytekit connector (a library's ``sys.exit``) would leave a task
    through ``run_forever`` and end the bridge loop's thread, and every bridged call after it would wait for
    ever: it fails the call that raised it instead."""
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as e:
        raise RuntimeError(f"the flytekit connector raised {type(e).__name__}{f': {e}' if str(e) else ''}") from e


async def run_on_bridge_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the bridge loop and await its result here; cancelling this cancels it there too."""
    bridge = _loop if _loop is not None else _bridge_loop()
    call = _Call(coro, asyncio.get_running_loop().create_future())
    bridge.call_soon_threadsafe(call.start)
    try:
        return await call.done
    except asyncio.CancelledError:
        bridge.call_soon_threadsafe(call.cancel)  # a no-op when the task there is done
        raise


def _on_this_loop(coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    return coro  # awaited by the caller, on the service's loop


def runner_for(method: Any) -> Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]:
    """How calls of a flytekit connector's ``method`` run, decided once per method: on the service's loop when
    it is an ``async def`` and ``--flytekit-loop service`` is set, else handed to the bridge loop."""
    where = os.environ.get(LOOP_ENV, "").strip() or "bridge"
    if where not in LOOPS:
        raise ValueError(f"{LOOP_ENV}={where!r} (--flytekit-loop): expected one of {', '.join(LOOPS)}")
    if where == "service" and inspect.iscoroutinefunction(method):
        return _on_this_loop
    return run_on_bridge_loop
