"""Where connectors live: a registry instance, discovery of installed connector distributions, and the
static ``ConnectorRegistry`` facade with flytekit's API.

``pip install core-connectors-sleep`` is all it takes: on first use the registry loads every entry point in
the ``flytekit.connectors`` group, each on its own, so one broken plugin is reported and skipped while the
rest serve. ``CORE_CONNECTORS_DISABLE=name,...`` skips plugins by entry-point name.

A plugin may also serve connectors on behalf of another framework (the flytekit bridge returns ``Bridged``
items): those yield their task category to a native connector, and the registry records each one shadowed
so that ``list`` and the start-up table can show it. Connectors written for flyte-sdk (its ``flyte.connectors``
entry-point group, loaded when flyte-sdk is installed) are another framework's too and yield the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
import threading
import typing
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import pluggy
from flyteidl.admin import agent_pb2

from ._connector import AsyncConnectorBase, ConnectorBase, SyncConnectorBase, TaskCategory
from ._errors import ConnectorNotFound
from ._hooks import ENTRY_POINT_GROUP, PROJECT_NAME, ConnectorHookSpec, ServeOption

if TYPE_CHECKING:  # importlib.metadata (email, zipfile, csv: 20 ms, 2.6 MB) loads with the first discovery
    from importlib import metadata

AnyConnector: TypeAlias = Union[AsyncConnectorBase[Any], SyncConnectorBase]  # noqa: UP007 - evaluated at runtime on 3.10

__all__ = ["Bridged", "ConnectorRegistry", "PluginFailure", "PluginSource", "Registry", "Shadowed", "serve_options"]

logger = logging.getLogger("core_connectors._registry")

DISABLE_ENV = "CORE_CONNECTORS_DISABLE"
FLYTE_SDK_ENTRY_POINT_GROUP = "flyte.connectors"
"""Where flyte-sdk plugins announce their connectors; served too, as another framework's connectors (they yield
to native ones). Their names (for CORE_CONNECTORS_DISABLE and ``core-connectors list``) get the prefix
``flyte.``: flyteplugins-bigquery's ``bigquery`` is ``flyte.bigquery``."""
FLYTE_SDK = "flyte-sdk"
"""``PluginSource.via`` of a flyte-sdk connector."""


@dataclass(frozen=True)
class PluginSource:
    """The entry point and distribution a connector came from (empty for connectors registered in code)."""

    entry_point: str = ""
    distribution: str = ""
    version: str = ""
    via: str = ""
    """For a bridged connector: the entry point of the plugin that serves it (``flytekit``)."""

    def describe(self) -> str:
        """One line for tables: distribution and version, the entry point, and the bridge it comes through."""
        text = f"{self.distribution} {self.version}".strip()
        if not self.via:
            return text
        if not self.distribution:  # registered at run time, by a module given with --modules
            return f"module {self.entry_point} (via {self.via})" if self.entry_point else f"(via {self.via})"
        plugin = f"{self.via} plugin {self.entry_point!r}, " if self.entry_point else ""
        return f"{text} ({plugin}via {self.via})"


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not contribute its connectors, and why."""

    source: PluginSource
    error: str


@dataclass(frozen=True)
class Bridged:
    """What a bridge plugin's ``provide_connectors`` returns for a connector written for another framework:
    it serves its task category only where no native connector does, and ``source`` says where it came from."""

    connector: ConnectorBase
    source: PluginSource


@dataclass(frozen=True)
class Shadowed:
    """A bridged connector that is not served because a native connector serves its task category."""

    connector: ConnectorBase
    source: PluginSource
    by: PluginSource


class Registry:
    """One set of connectors, keyed by task category, with the Agent metadata ListAgents serves.

    The service uses one; tests make their own (``ConnectorRegistry.isolated()``) so nothing leaks.
    """

    def __init__(self, discover: bool = True):
        self._connectors: dict[TaskCategory, ConnectorBase] = {}
        self._agents: dict[str, agent_pb2.Agent] = {}
        self._sources: dict[TaskCategory, PluginSource] = {}
        self.failures: list[PluginFailure] = []
        self.disabled: list[str] = []
        self.shadowed: list[Shadowed] = []
        self._bridged: set[TaskCategory] = set()  # categories served by a bridged connector, until a native one comes
        self._bridges: dict[PluginSource, Any] = {}  # plugins that returned Bridged items: asked again after --modules
        self._discovered = not discover
        self._discovering = False  # a plugin being loaded looks connectors up: it sees what is there so far
        self._lock = threading.RLock()
        self.generation = 0
        """Counts registrations, so that a caller caching lookups (the service) knows when to look again."""

    # -------------------------------------------------------------------------------------- registration
    def register(
        self,
        connector: ConnectorBase,
        override: bool = False,
        source: PluginSource | None = None,
        bridged: bool = False,
    ) -> None:
        """Add a connector. ``bridged`` ones yield: to a native connector already registered (recorded in
        ``shadowed``, not served) and to one registered later (which replaces it, recorded the same way)."""
        if not isinstance(connector, ConnectorBase):
            raise TypeError(f"expected a ConnectorBase instance, got {type(connector).__name__}")
        category = connector.task_category
        source = source or PluginSource()
        with self._lock:
            previous = self._connectors.get(category)
            if previous is not None and bridged and category not in self._bridged:
                self.shadowed.append(Shadowed(connector, source, by=self._sources[category]))
                return
            if previous is not None and not bridged and category in self._bridged:
                self.shadowed.append(Shadowed(previous, self._sources[category], by=source))
                override = True
            if previous is not None and not override:
                raise ValueError(_duplicate_message(category, self._sources[category]))
            self._bridged.discard(category)
            if bridged:
                self._bridged.add(category)
            if previous is not None and previous.name != connector.name:
                self._forget_category(previous.name, category)
            self._connectors[category] = connector
            self._sources[category] = source
            self._add_category(connector, category)
            self.generation += 1

    def _add_category(self, connector: ConnectorBase, category: TaskCategory) -> None:
        agent = self._agents.get(connector.name)
        if agent is None:
            agent = agent_pb2.Agent(name=connector.name, is_sync=isinstance(connector, SyncConnectorBase))
            self._agents[connector.name] = agent
        if not any(c.name == category.name and c.version == category.version for c in agent.supported_task_categories):
            agent.supported_task_categories.append(category.to_flyte_idl())
            if category.name not in agent.supported_task_types:
                agent.supported_task_types.append(category.name)

    def _forget_category(self, agent_name: str, category: TaskCategory) -> None:
        agent = self._agents[agent_name]
        kept = [c for c in agent.supported_task_categories if (c.name, c.version) != (category.name, category.version)]
        if not kept:
            del self._agents[agent_name]
            return
        del agent.supported_task_categories[:]
        agent.supported_task_categories.extend(kept)
        del agent.supported_task_types[:]
        agent.supported_task_types.extend(dict.fromkeys(c.name for c in kept))

    # ------------------------------------------------------------------------------------------- lookups
    def get_connector(self, task_type_name: str, task_type_version: int = 0) -> ConnectorBase:
        self.ensure_discovered()
        category = TaskCategory(name=task_type_name, version=task_type_version)
        connector = self._connectors.get(category)
        if connector is None:
            raise ConnectorNotFound(f"Cannot find connector for task category: {category}.")
        return connector

    def get_connector_metadata(self, name: str) -> agent_pb2.Agent:
        self.ensure_discovered()
        agent = self._agents.get(name)
        if agent is None:
            raise ConnectorNotFound(f"Cannot find connector for name: {name}.")
        return agent

    def list_connectors(self) -> list[agent_pb2.Agent]:
        self.ensure_discovered()
        return list(self._agents.values())

    def connectors(self) -> list[tuple[ConnectorBase, PluginSource]]:
        """Every registered connector with where it came from, in registration order."""
        self.ensure_discovered()
        return [(c, self._sources[cat]) for cat, c in self._connectors.items()]

    # ----------------------------------------------------------------------------------------- discovery
    def ensure_discovered(self) -> None:
        """Discover on first use. Callers on other threads (or an event loop) meanwhile wait for the whole
        registry: none of them sees it half loaded."""
        if self._discovered:
            return
        with self._lock:
            if not self._discovered and not self._discovering:
                self.discover()

    def discover(self) -> None:
        """Load every entry point of the ``flytekit.connectors`` group, then of flyte-sdk's ``flyte.connectors``
        group, not disabled by name (again if asked)."""
        with self._lock:
            self._discovering = True
            try:
                disabled = _disabled()
                self.disabled = []
                installed = _installed_entry_points()
                for entry_point in installed.select(group=ENTRY_POINT_GROUP):
                    if entry_point.name in disabled:
                        self.disabled.append(entry_point.name)
                        continue
                    self._load(entry_point)
                for entry_point in installed.select(group=FLYTE_SDK_ENTRY_POINT_GROUP):  # flyte-sdk's connectors
                    if f"flyte.{entry_point.name}" in disabled:
                        self.disabled.append(f"flyte.{entry_point.name}")
                        continue
                    self._load(entry_point, flyte_sdk=True)
            finally:
                self._discovering = False
                self._discovered = True  # only now: a caller that saw it True finds every connector

    def _load(self, entry_point: metadata.EntryPoint, flyte_sdk: bool = False) -> None:
        dist = getattr(entry_point, "dist", None)
        source = PluginSource(
            entry_point=f"flyte.{entry_point.name}" if flyte_sdk else entry_point.name,
            distribution=dist.metadata["Name"] if dist is not None else "",
            version=dist.version if dist is not None else "",
            via=FLYTE_SDK if flyte_sdk else "",
        )
        if (
            any(s == source for s in self._sources.values())
            or any(f.source == source for f in self.failures)
            or any(s.source == source for s in self.shadowed)
            or source in self._bridges
        ):
            return  # already loaded by an earlier discover()
        before = set(self._connectors)
        token = _loading_into.set(self)  # flytekit-style plugins register at import: into this registry
        try:
            if flyte_sdk:  # another framework's connectors: they yield to native ones, as bridged ones do
                plugin = None
                provided = [Bridged(c, source) for c in _flyte_sdk_connectors(entry_point)]
            else:
                plugin = entry_point.load()
                for connector in _registered_at_import.get(entry_point.value, ()):  # imported for serve_options
                    self.register(connector)
                provided = _provided_connectors(plugin, entry_point.name)
        except Exception as e:  # a plugin's own failure must not stop the others
            self._fail(source, f"{type(e).__name__}: {e}", exc=e)
            return
        finally:
            _loading_into.reset(token)
        if plugin is not None and any(isinstance(item, Bridged) for item in provided):
            self._bridges[source] = plugin
        self._add_provided(provided, source)
        for category in set(self._connectors) - before:  # registered as an import side effect, flytekit style
            if self._sources[category] == PluginSource():
                self._sources[category] = source
        if not provided and set(self._connectors) == before:
            self._fail(source, "provides no connectors (no provide_connectors hook and nothing registered)")

    def _add_provided(self, provided: list[Any], source: PluginSource) -> None:
        for item in provided:
            if isinstance(item, PluginFailure):  # a bridge reports the plugins of its framework that failed
                self._fail(item.source, item.error)
                continue
            try:
                if isinstance(item, Bridged):
                    self.register(item.connector, source=item.source, bridged=True)
                else:
                    self.register(item, source=source)
            except (TypeError, ValueError) as e:
                self._fail(source, str(e))

    def _ask_bridges_again(self) -> None:
        """After ``--modules``: bridges serve what the modules registered into their framework's registry."""
        known = {id(c) for c in self._connectors.values()} | {id(s.connector) for s in self.shadowed}
        for source, plugin in self._bridges.items():
            provided = _provided_connectors(plugin, source.entry_point)
            self._add_provided([i for i in provided if isinstance(i, Bridged) and id(i.connector) not in known], source)

    def import_modules(self, module_names: Iterable[str]) -> None:
        """Import the modules named with ``--modules`` (the working directory first on sys.path, as flytekit
        does). Connectors they register at import or return from ``provide_connectors`` join this registry;
        returned ones override installed connectors of the same category. A failure is an ImportError.
        Bridges are asked again afterwards, for connectors the modules registered into flytekit's registry."""
        self.ensure_discovered()
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        for name in module_names:
            token = _loading_into.set(self)
            try:
                module = importlib.import_module(name)
                provided = _provided_connectors(module, name) if hasattr(module, "provide_connectors") else []
                for connector in provided:
                    self.register(connector, override=True)
            except Exception as e:
                raise ImportError(f"cannot import module {name!r}: {type(e).__name__}: {e}") from e
            finally:
                _loading_into.reset(token)
        self._ask_bridges_again()

    def _fail(self, source: PluginSource, error: str, exc: BaseException | None = None) -> None:
        self.failures.append(PluginFailure(source=source, error=error))
        logger.warning(
            "skipped connector plugin %r from %s %s: %s",
            source.entry_point,
            source.distribution or "an unknown distribution",
            source.version,
            error,
            exc_info=exc,
        )


def serve_options() -> list[ServeOption]:
    """The ``serve`` flags of the installed, not disabled ``flytekit.connectors`` plugins (their
    ``serve_options`` hook), before any connector is made. A plugin that fails here is skipped, as in discovery;
    what a flytekit-style plugin registers at import is kept for the registry that discovers it later."""
    global _kept_scan
    disabled = _disabled()
    options: list[ServeOption] = []
    installed = _installed_entry_points()
    _kept_scan = (tuple(sys.path), installed)
    for entry_point in installed.select(group=ENTRY_POINT_GROUP):
        if entry_point.name in disabled:
            continue
        imported = Registry(discover=False)
        token = _loading_into.set(imported)
        try:
            plugin = entry_point.load()
            if _is_connector(plugin):  # a connector named directly has no hooks (and its properties stay unread)
                continue
            found = [o for result in _plugin_manager(plugin, entry_point.name).hook.serve_options() for o in result]
            if not all(isinstance(o, ServeOption) for o in found):
                raise TypeError(f"serve_options returned {found!r}, which are not all ServeOption")
        except Exception as e:  # a plugin's own failure must not stop the others
            logger.warning(
                "skipped the serve options of connector plugin %r: %s: %s", entry_point.name, type(e).__name__, e
            )
            continue
        finally:
            _loading_into.reset(token)
            _registered_at_import.setdefault(entry_point.value, [c for c, _ in imported.connectors()])
        options += found
    return options


def _installed_entry_points() -> Any:
    """Every installed distribution's entry points, from one scan of ``sys.path`` (each scan reads every
    distribution's metadata: 10-20 ms with a few dozen installed). The scan ``serve_options`` made is kept for
    the one discovery that follows it, so that ``core-connectors serve`` scans once; any other discovery scans
    afresh and finds what was installed since."""
    global _kept_scan
    kept, _kept_scan = _kept_scan, None
    if kept is not None and kept[0] == tuple(sys.path):
        return kept[1]
    from importlib import metadata

    return metadata.entry_points()


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _is_connector(obj: Any) -> bool:
    return isinstance(obj, ConnectorBase) or (inspect.isclass(obj) and issubclass(obj, ConnectorBase))


def _plugin_manager(plugin: Any, name: str) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(ConnectorHookSpec)
    manager.register(plugin, name=name)
    return manager


def _duplicate_message(category: TaskCategory, existing: PluginSource) -> str:
    if not existing.entry_point or existing.via:
        return f"Duplicate connector for task type: {category}"
    return (
        f"Duplicate connector for task type: {category}: {existing.distribution or 'an installed plugin'} "
        f"(entry point {existing.entry_point!r}) already serves it; to serve this one instead, disable that plugin "
        f"with CORE_CONNECTORS_DISABLE={existing.entry_point}"
    )


def _flyte_sdk_connectors(entry_point: metadata.EntryPoint) -> list[ConnectorBase]:
    """A ``flyte.connectors`` entry point's connectors. flyte-sdk (a large import) is imported only here, when
    such an entry point is installed: an optional dependency kept out of import time, not a cycle."""
    from ._flyte_sdk import connectors_of

    return connectors_of(entry_point)


def _provided_connectors(obj: Any, name: str) -> list[Any]:
    """Ask one loaded entry point for its connectors through the pluggy hook (or take it if it is one)."""
    if _is_connector(obj):
        results: list[Any] = [[obj]]
    else:
        results = _plugin_manager(obj, name).hook.provide_connectors()
    connectors: list[Any] = []
    for result in results:
        for item in result if isinstance(result, (list, tuple)) else [result]:
            if inspect.isclass(item) and issubclass(item, ConnectorBase) and not inspect.isabstract(item):
                item = typing.cast(Any, item)()  # a no-argument connector class
            if isinstance(item, (Bridged, PluginFailure)):
                connectors.append(item)
                continue
            if not isinstance(item, ConnectorBase):
                raise TypeError(f"provide_connectors returned {item!r}, which is not a connector")
            connectors.append(item)
    return connectors


_current = Registry()
_loading_into: ContextVar[Registry | None] = ContextVar("core_connectors_loading_into", default=None)
_kept_scan: tuple[tuple[str, ...], Any] | None = None
"""(sys.path, entry points) of the scan ``serve_options`` made, until a discovery takes it."""
_registered_at_import: dict[str, list[ConnectorBase]] = {}
"""Entry point value -> connectors its module registered when imported for ``serve_options`` (once per process)."""


class ConnectorRegistry:
    """flytekit's static registry API, served by the current ``Registry`` (discovered on first use)."""

    @staticmethod
    def register(connector: AnyConnector, override: bool = False) -> None:
        (_loading_into.get() or _current).register(connector, override=override)

    @staticmethod
    def get_connector(task_type_name: str, task_type_version: int = 0) -> AnyConnector:
        return typing.cast(AnyConnector, _current.get_connector(task_type_name, task_type_version))

    @staticmethod
    def get_agent(task_type_name: str, task_type_version: int = 0) -> AnyConnector:
        """Alias of ``get_connector`` kept for connectors written against the agent names."""
        return typing.cast(AnyConnector, _current.get_connector(task_type_name, task_type_version))

    @staticmethod
    def list_connectors() -> list[agent_pb2.Agent]:
        return _current.list_connectors()

    @staticmethod
    def get_connector_metadata(name: str) -> agent_pb2.Agent:
        return _current.get_connector_metadata(name)

    @staticmethod
    def current() -> Registry:
        """The registry the static methods use."""
        return _current

    @staticmethod
    @contextlib.contextmanager
    def isolated(discover: bool = False) -> Iterator[Registry]:
        """Swap in a fresh registry for the duration (tests); ``discover=True`` loads installed plugins."""
        global _current
        previous, _current = _current, Registry(discover=discover)
        try:
            yield _current
        finally:
            _current = previous
