"""The sensors installed: every entry point of the ``core_connectors.sensors`` group, each loaded on its own.

A request names a flytekit (module, class) pair; the catalog answers with the installed sensor class that
declared that pair, or with nothing. It never imports a name that came with a request. A sensor plugin that
fails to load, or is not a ``Sensor``, is logged with its distribution and skipped; the others serve.
``CORE_CONNECTORS_DISABLE=sensor.<name>`` skips the sensor entry point ``<name>`` (``sensor`` alone disables
the whole connector, as for any connector plugin).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from .sensor import Sensor

__all__ = ["ENTRY_POINT_GROUP", "SensorCatalog", "SensorPluginFailure"]

ENTRY_POINT_GROUP = "core_connectors.sensors"
DISABLE_ENV = "CORE_CONNECTORS_DISABLE"  # the core's variable; sensor entry points are named sensor.<name>
_DISABLE_PREFIX = "sensor."

logger = logging.getLogger("core_connectors_sensor")


@dataclass(frozen=True)
class SensorPluginFailure:
    """A sensor entry point that could not be served, and why."""

    entry_point: str
    distribution: str
    error: str


class SensorCatalog:
    """Installed sensors by the flytekit ``(module, class)`` names they declared, loaded on first use."""

    def __init__(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        self._given = None if entry_points is None else list(entry_points)
        self._by_name: dict[tuple[str, str], type[Sensor]] | None = None
        self.failures: list[SensorPluginFailure] = []
        self.disabled: list[str] = []
        self._lock = threading.Lock()  # GetTask calls come from several pool threads at once

    def find(self, module: str, name: str) -> type[Sensor] | None:
        """The sensor serving flytekit's ``module.name``, or None: the pair is looked up, never imported."""
        return self._sensors().get((module, name))

    def served(self) -> list[str]:
        """The flytekit names served, sorted, for messages."""
        return sorted(f"{module}.{name}" for module, name in self._sensors())

    def _sensors(self) -> dict[tuple[str, str], type[Sensor]]:
        found = self._by_name
        if found is None:
            with self._lock:
                if self._by_name is None:
                    self._by_name = self._load_all()
                found = self._by_name
        return found

    def _load_all(self) -> dict[tuple[str, str], type[Sensor]]:
        disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        entry_points = self._given if self._given is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
        by_name: dict[tuple[str, str], type[Sensor]] = {}
        for entry_point in entry_points:
            if _DISABLE_PREFIX + entry_point.name in disabled:
                self.disabled.append(entry_point.name)
                continue
            dist = getattr(entry_point, "dist", None)
            distribution = dist.metadata["Name"] if dist is not None else ""
            try:
                sensor = _load_sensor(entry_point)
            except Exception as e:  # one broken plugin must not take the others down
                self._fail(entry_point.name, distribution, f"{type(e).__name__}: {e}", e)
                continue
            for flytekit_name in sensor.flytekit_names:
                module, _, name = flytekit_name.rpartition(".")
                if (module, name) in by_name:
                    owner = by_name[(module, name)].__qualname__
                    self._fail(entry_point.name, distribution, f"{flytekit_name} is already served by {owner}")
                    continue
                by_name[(module, name)] = sensor
        return by_name

    def _fail(self, entry_point: str, distribution: str, error: str, exc: BaseException | None = None) -> None:
        self.failures.append(SensorPluginFailure(entry_point, distribution, error))
        logger.warning(
            "skipped sensor plugin %r from %s: %s",
            entry_point,
            distribution or "an unknown distribution",
            error,
            exc_info=exc,
        )


def _load_sensor(entry_point: metadata.EntryPoint) -> type[Sensor]:
    sensor = entry_point.load()
    if not (inspect.isclass(sensor) and issubclass(sensor, Sensor)):
        raise TypeError(f"{entry_point.value} is not a Sensor subclass")
    names = sensor.flytekit_names
    if isinstance(names, str) or not names or not all(isinstance(n, str) and "." in n.strip(".") for n in names):
        raise TypeError(f'{entry_point.value}.flytekit_names must be a tuple of "module.Class" names, got {names!r}')
    return sensor
