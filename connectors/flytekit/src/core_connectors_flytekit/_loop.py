"""The one thread and event loop on which every bridged call runs.

flytekit connectors do blocking work inside ``async def`` (the type engine, synchronous HTTP clients), which
would stall the service's own loop: ListAgents and every native connector would wait behind them. So each
bridged call is handed to this loop and awaited from the service's loop, which stays free. One loop, not one
per call or per thread, because flytekit connectors keep loop-bound clients across calls (the Webhook
connector's ``httpx.AsyncClient`` is made at import), exactly as they do on ``pyflyte serve connector``'s
single loop. Plain ``def`` methods run in this loop's default executor, as flytekit runs them, but in a pool
as large as the service's so that blocking connectors overlap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_on_bridge_loop"]

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


async def run_on_bridge_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the bridge loop and await its result here; cancelling this cancels it there too."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, _bridge_loop()))
