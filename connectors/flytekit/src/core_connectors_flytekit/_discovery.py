"""Load flytekit and its plugins, and offer every connector in flytekit's registry to the core.

``import flytekit`` loads every ``flytekit.plugins`` entry point itself and fails as a whole when one of
them does. So flytekit is imported with that group hidden, and the bridge then loads each plugin on its own,
as the core loads its own plugins: one that fails is reported (with its distribution) and skipped. Then the
modules ``pyflyte serve connector`` imports for its built-in connectors are imported too (the Sensor engine
comes with flytekit, the Webhook connector with ``flytekit.extras.webhook``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from core_connectors import Bridged, PluginFailure, PluginSource

__all__ = ["bridged_connectors"]

logger = logging.getLogger("core_connectors_flytekit")

FLYTEKIT_PLUGINS = "flytekit.plugins"
BRIDGE = "flytekit"  # our entry-point name: what CORE_CONNECTORS_DISABLE takes to turn the bridge off
BUILT_IN = ("flytekit.sensor.sensor_engine", "flytekit.extras.webhook")

_failures: list[PluginFailure] = []
_plugins: list[tuple[str, PluginSource]] = []  # (module prefix, source) of each flytekit plugin that loaded
_wrapped: dict[int, Bridged] = {}  # flytekit connector id -> its wrapper, so asking again gives the same ones
_loaded = False


def bridged_connectors() -> list[Any]:
    """Every connector in flytekit's registry as a ``Bridged`` item, then the flytekit plugins that failed."""
    _load_flytekit()
    from flytekit.extend.backend.base_connector import ConnectorRegistry

    from ._wrap import wrap

    items: list[Any] = []
    for agent in ConnectorRegistry.list_connectors():
        for category in agent.supported_task_categories:
            connector = ConnectorRegistry.get_connector(category.name, category.version)
            if id(connector) not in _wrapped:
                _wrapped[id(connector)] = Bridged(wrap(connector), _source_of(connector))
            items.append(_wrapped[id(connector)])
    return [*dict.fromkeys(items), *_failures]


def _load_flytekit() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    with _sigint_kept():
        _import_flytekit_and_plugins()


def _import_flytekit_and_plugins() -> None:
    if "flytekit" not in sys.modules:
        with _flytekit_plugins_hidden():
            importlib.import_module("flytekit")
    for entry_point in importlib.metadata.entry_points(group=FLYTEKIT_PLUGINS):
        source = _plugin_source(entry_point)
        try:
            entry_point.load()
        except Exception as e:  # one broken flytekit plugin must not stop the others
            logger.debug("flytekit plugin %r failed to load", entry_point.name, exc_info=True)
            _failures.append(PluginFailure(source, f"flytekit plugin: {type(e).__name__}: {e}"))
            continue
        _plugins.append((entry_point.value.split(":")[0], source))
    for module in BUILT_IN:
        try:
            importlib.import_module(module)
        except Exception as e:
            source = PluginSource(entry_point=module, distribution="flytekit", version=_flytekit_version(), via=BRIDGE)
            _failures.append(PluginFailure(source, f"flytekit built-in connector: {type(e).__name__}: {e}"))


@contextlib.contextmanager
def _sigint_kept() -> Iterator[None]:
    """Importing flytekit on the main thread installs its own SIGINT handler, which exits the process (it is
    for flytekit's local executions): the host's handler (the service's drain, a script's KeyboardInterrupt)
    stays."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _flytekit_plugins_hidden() -> Iterator[None]:
    """While flytekit imports, its own plugin loader finds no ``flytekit.plugins`` entry points."""
    original = importlib.metadata.entry_points

    def entry_points(**params: Any) -> Any:
        if params.get("group") == FLYTEKIT_PLUGINS:
            return importlib.metadata.EntryPoints(())
        return original(**params)

    importlib.metadata.entry_points = entry_points
    try:
        yield
    finally:
        importlib.metadata.entry_points = original


def _plugin_source(entry_point: importlib.metadata.EntryPoint) -> PluginSource:
    dist = getattr(entry_point, "dist", None)
    return PluginSource(
        entry_point=entry_point.name,
        distribution=dist.metadata["Name"] if dist is not None else "",
        version=dist.version if dist is not None else "",
        via=BRIDGE,
    )


def _source_of(connector: Any) -> PluginSource:
    """The flytekit plugin whose module defines the connector; flytekit itself for its built-in ones; none
    (registered at run time) for one from ``--modules``."""
    module = type(connector).__module__
    for prefix, source in _plugins:
        if module == prefix or module.startswith(prefix + "."):
            return source
    if module.startswith("flytekit."):
        return PluginSource(distribution="flytekit", version=_flytekit_version(), via=BRIDGE)
    return PluginSource(entry_point=module, via=BRIDGE)


def _flytekit_version() -> str:
    return importlib.metadata.version("flytekit")
