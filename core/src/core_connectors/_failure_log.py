"""How a failure is told, in one place for the service and for connectors: one line for the caller with a short
error id, the traceback in the log under the same id, secrets scrubbed from both, and a limit on log lines per
kind of failure.

The service answers a failed request with a status (``server._errors``); a connector that ends a task on an
exception answers with a FAILED Resource (``failed_resource``). Both go through ``LogLimit``: a connector that
fails every call, or a caller that floods bad requests, costs about what successes cost, and every line held
back is counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Hashable

from flyteidl.core.execution_pb2 import TaskExecution

from ._connector import Resource
from .secrets import scrub

__all__ = [
    "LOG_LINES",
    "LOG_WINDOW",
    "MAX_MESSAGE",
    "TASK_FAILURES",
    "LogLimit",
    "error_id",
    "failed_resource",
    "one_line",
    "traceback_text",
    "truncate",
]

LOG_LINES = 5
"""Log lines each kind of failure gets per window (``LogLimit``)."""
LOG_WINDOW = 10.0
"""Seconds of a ``LogLimit`` window."""
MAX_MESSAGE = 2000
"""Bytes (UTF-8) of a message told to a caller. A status's details travel percent-encoded in a header, up to three
characters per byte, which must stay under gRPC's 8 KiB metadata limit; a Resource's message goes into
propeller's events."""
_MAX_KINDS = 256  # kinds are bounded by the connectors served; this bounds them under any traffic
_OTHER = "other kinds of failure"


class LogLimit:
    """At most ``lines`` log lines for each kind of failure in every window of ``seconds``.

    The lines held back are counted; the count is logged with the first line of the kind's next window, or by
    ``flush`` (at the server's stop). Safe to use from the event loop and from connector threads alike.
    """

    def __init__(self, lines: int = LOG_LINES, seconds: float = LOG_WINDOW, logger: logging.Logger | None = None):
        self.lines = lines
        self.seconds = seconds
        self.logger = logger or logging.getLogger("core_connectors")
        self._kinds: dict[Hashable, list[float]] = {}  # kind -> [window start, lines logged, lines held back]
        self._lock = threading.Lock()

    def admit(self, kind: Hashable) -> int | None:
        """None when a line of ``kind`` is to be held back (it is counted); else the number held back in the
        kind's previous window, for the line to report."""
        with self._lock:
            state = self._kinds.get(kind)
            if state is None and len(self._kinds) >= _MAX_KINDS:
                kind = _OTHER
                state = self._kinds.get(kind)
            now = time.monotonic()
            if state is None or now - state[0] >= self.seconds:
                self._kinds[kind] = [now, 1, 0]
                return int(state[2]) if state is not None else 0
            if state[1] < self.lines:
                state[1] += 1
                return 0
            state[2] += 1
            return None

    def flush(self) -> None:
        """Log how many lines of each kind are held back since their window began, and forget them."""
        with self._lock:
            kinds, self._kinds = self._kinds, {}
        for kind, state in kinds.items():
            if state[2]:
                self.logger.warning(
                    "%d more failures like %s were not logged (at most %d lines per %g s)",
                    state[2],
                    _kind_name(kind),
                    self.lines,
                    self.seconds,
                )

    def note(self, held_back: int) -> str:
        """The words a line adds for the lines held back before it."""
        if not held_back:
            return ""
        return (
            f" ({held_back} more like it not logged in the window before: at most {self.lines} per {self.seconds:g} s)"
        )


def _kind_name(kind: Hashable) -> str:
    return " ".join(str(part) for part in kind if part) if isinstance(kind, tuple) else str(kind)


def error_id() -> str:
    """A short id that ties a reply to its log line: unique enough among recent failures, not a secret."""
    return f"{random.getrandbits(32):08x}"


def truncate(text: str) -> str:
    """``text`` cut at ``MAX_MESSAGE`` bytes of UTF-8 (lone surrogates, which gRPC cannot send, made "?").
    Scrub before cutting: a secret cut in two is no longer found."""
    if text.isascii():
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_MESSAGE:
        return data.decode()
    return data[:MAX_MESSAGE].decode("utf-8", "ignore") + " [...]"


def one_line(exc: BaseException) -> str:
    """``Type: message``, secrets scrubbed, then cut at ``MAX_MESSAGE`` bytes; or the type alone."""
    text = truncate(scrub(str(exc).strip()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def traceback_text(exc: BaseException) -> str:
    """The traceback of ``exc`` for a log line, secrets scrubbed."""
    return scrub("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))).rstrip()


TASK_FAILURES = LogLimit(logger=logging.getLogger("core_connectors.connectors"))
"""The limit of ``failed_resource``'s log lines: one per process, flushed by the service when it stops."""


def failed_resource(
    error: BaseException,
    source: str,
    *,
    retryable: bool = False,
    logger: logging.Logger | None = None,
    message: str | None = None,
) -> Resource:
    """A Resource that ends the task on ``error`` (FAILED, or RETRYABLE_FAILED when ``retryable``), for a
    connector whose job's failure is an exception of its own client: the message says ``"<source> failed:
    Type: message (error id ...)"`` (or ``"<message> (error id ...)"`` when the connector has better words,
    a vendor's status and request id), the log (``logger``, else ``core_connectors.connectors``) has the
    traceback under the same id, both with secrets scrubbed, at most a few lines per source and type of error
    every ten seconds (the rest are counted)."""
    told = truncate(scrub(message)) if message is not None else f"{truncate(scrub(source))} failed: {one_line(error)}"
    message = f"{told} (error id {error_id()})"
    held = TASK_FAILURES.admit((source, type(error).__name__))
    if held is not None:
        (logger or TASK_FAILURES.logger).warning("%s%s\n%s", message, TASK_FAILURES.note(held), traceback_text(error))
    phase = TaskExecution.RETRYABLE_FAILED if retryable else TaskExecution.FAILED
    return Resource(phase=phase, message=message)
