"""The progress display of a local run: a rich live view on stderr when it is a terminal, else nothing.

rich is imported only when the display is shown, so runs in scripts, tests and pipes stay cheap; without it
(it comes with ``core-connectors[cli]``) the display is one plain line per phase. One display at a time: a run
that starts while another one is showing runs without a display rather than garbling it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from flyteidl.core import execution_pb2

from .._connector import Resource

__all__ = ["Display", "open_display"]

_Phase = execution_pb2.TaskExecution
_one_at_a_time = threading.Lock()


class Display(Protocol):
    def update(self, resource: Resource) -> None: ...


class _NoDisplay:
    def update(self, resource: Resource) -> None:
        pass


@contextmanager
def open_display(name: str, enabled: bool | None = None) -> Iterator[Display]:
    """A display for task ``name``; ``enabled`` None means: only when stderr is a terminal."""
    if enabled is None:
        enabled = _stderr_is_terminal()
    if not enabled or not _one_at_a_time.acquire(blocking=False):
        yield _NoDisplay()
        return
    try:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            yield _PlainView(name)
            return
        view = _LiveView(name)
        with Live(view, console=Console(stderr=True), refresh_per_second=8, transient=False) as live:
            yield view
            live.refresh()
    finally:
        _one_at_a_time.release()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class _PlainView:
    """Without rich: a line on stderr whenever the phase or the message changes."""

    def __init__(self, name: str):
        self.name = name
        self.started = time.monotonic()
        self.shown: tuple[int, str] | None = None

    def update(self, resource: Resource) -> None:
        state = (resource.phase, resource.message or "")
        if state == self.shown:
            return
        self.shown = state
        elapsed = time.monotonic() - self.started
        line = "  ".join(
            part for part in (self.name, _Phase.Phase.Name(resource.phase), state[1], f"{elapsed:.1f} s") if part
        )
        links = "".join(f"\n  {link.name}: {link.uri}" for link in resource.log_links or ())
        print(line + links, file=sys.stderr, flush=True)


class _LiveView:
    """Task name, phase, message, elapsed time and log links, re-rendered by rich on every refresh."""

    def __init__(self, name: str):
        self.name = name
        self.phase = "CREATING"
        self.message = ""
        self.links: list[tuple[str, str]] = []
        self.started = time.monotonic()
        self.ended: float | None = None
        self.done_style = ""
        self._spinner: Any = None

    def update(self, resource: Resource) -> None:
        self.phase = _Phase.Phase.Name(resource.phase)
        self.message = resource.message or ""
        if resource.log_links:
            self.links = [(link.name, link.uri) for link in resource.log_links]
        if resource.phase in (_Phase.SUCCEEDED, _Phase.FAILED, _Phase.ABORTED, _Phase.RETRYABLE_FAILED):
            self.ended = time.monotonic()
            self.done_style = "green" if resource.phase == _Phase.SUCCEEDED else "red"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        elapsed = (self.ended or time.monotonic()) - self.started
        line = Text.assemble(
            (self.name, "bold"),
            "  ",
            (self.phase, self.done_style or "cyan"),
            "  ",
            self.message,
            "  ",
            (f"{elapsed:.1f} s", "dim"),
        )
        if self.done_style:
            head: Any = Text.assemble(("✓ " if self.done_style == "green" else "✗ ", self.done_style), line)
        else:
            if self._spinner is None:  # one spinner for the whole run, so that it turns
                self._spinner = Spinner("dots")
            self._spinner.update(text=line)
            head = self._spinner
        return Group(head, *(Text(f"  {name}: {uri}", style="blue") for name, uri in self.links))
