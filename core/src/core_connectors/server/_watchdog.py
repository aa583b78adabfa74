"""Names the ``async def`` connector method that blocks the event loop, at no cost per request.

asyncio's debug mode (``slow_callback_duration``) would do it but slows every callback. Instead a loop
callback records a heartbeat every 25 ms; a daemon thread that sees the heartbeat stall looks at the loop
thread's stack (the culprit is still on it) and finds the innermost connector method there. When the loop
runs again, the heartbeat measures how long it was blocked and logs one warning if that was too long.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import CodeType, FrameType

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("core_connectors.server")

INTERVAL = 0.025
_IDLE = "the idle loop"
_STILL_BLOCKED = 5.0  # report a loop that never comes back, from the watchdog thread


class LoopWatchdog:
    """Warns when the event loop is blocked for more than ``threshold`` seconds, naming the culprit."""

    def __init__(self, threshold: float = 0.1, names: dict[CodeType, str] | None = None):
        self.threshold = threshold
        self.names = names if names is not None else {}  # code object of a connector method -> its label
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._last = 0.0
        self._culprit: tuple[float, str] | None = None  # (heartbeat it was seen after, description)
        self._stopped = threading.Event()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start watching the running loop (call from the loop's thread)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last = time.monotonic()
        self._handle = self._loop.call_later(INTERVAL, self._beat)
        threading.Thread(target=self._watch, name="core-connectors-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self) -> None:
        now = time.monotonic()
        blocked = now - self._last - INTERVAL
        culprit = self._culprit[1] if self._culprit and self._culprit[0] == self._last else "unknown code"
        if blocked > self.threshold and culprit is not _IDLE:
            logger.warning(
                "the event loop was blocked for %.0f ms by %s: run blocking code in a plain `def` method "
                "(the service runs those in its thread pool) or with asyncio.to_thread",
                blocked * 1000,
                culprit,
            )
        self._culprit = None
        self._last = now
        if not self._stopped.is_set() and self._loop is not None:
            self._handle = self._loop.call_later(INTERVAL, self._beat)

    def _watch(self) -> None:
        reported = 0.0
        while not self._stopped.wait(INTERVAL):
            last = self._last
            stalled = time.monotonic() - last - INTERVAL
            if stalled > self.threshold / 2 and (self._culprit is None or self._culprit[0] != last):
                self._culprit = (last, self._find_culprit())
            if stalled > _STILL_BLOCKED and reported != last and self._culprit and self._culprit[1] is not _IDLE:
                reported = last
                logger.warning("the event loop has been blocked for %.1f s by %s", stalled, self._culprit[1])

    def _find_culprit(self) -> str:
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        innermost = frame
        if frame is not None and frame.f_code.co_name == "select" and frame.f_code.co_filename.endswith("selectors.py"):
            return _IDLE  # waiting for I/O: late because other threads held the GIL or the host paused us
        while frame is not None:
            label = self.names.get(frame.f_code)
            if label is not None:
                return f"{label} ({frame.f_code.co_filename}:{frame.f_lineno})"
            frame = frame.f_back
        if innermost is None:
            return "unknown code"
        return f"{innermost.f_code.co_name} ({innermost.f_code.co_filename}:{innermost.f_lineno})"
