"""Registration, lookups, ListAgents metadata, and discovery of entry points from real dist-info folders."""

from __future__ import annotations

import logging
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from flyteidl.admin import agent_pb2

from core_connectors import AsyncConnectorBase, ConnectorNotFound, ConnectorRegistry, ResourceMeta, SyncConnectorBase
from core_connectors._registry import PluginSource, Registry, Shadowed


@dataclass
class Meta(ResourceMeta):
    job_id: str


class Job(AsyncConnectorBase):
    name = "Job Connector"

    def __init__(self, task_type="job", version=0):
        super().__init__(task_type_name=task_type, task_type_version=version, metadata_type=Meta)

    def create(self, *args, **kwargs):
        return Meta("1")

    def get(self, *args, **kwargs): ...

    def delete(self, *args, **kwargs): ...


class Echo(SyncConnectorBase):
    name = "Echo Connector"

    def __init__(self):
        super().__init__(task_type_name="echo")

    def do(self, *args, **kwargs): ...


def categories(agent: agent_pb2.Agent) -> list[tuple[str, int]]:
    return [(c.name, c.version) for c in agent.supported_task_categories]


class TestRegistration:
    def test_register_and_look_up(self, connector_registry):
        job = Job()
        ConnectorRegistry.register(job)
        assert ConnectorRegistry.get_connector("job") is job
        assert ConnectorRegistry.get_agent("job", 0) is job

    def test_duplicate_without_override_is_an_error(self, connector_registry):
        ConnectorRegistry.register(Job())
        with pytest.raises(ValueError, match="^Duplicate connector for task type: job_v0$"):
            ConnectorRegistry.register(Job())

    def test_override_replaces_without_duplicating_categories(self, connector_registry):
        ConnectorRegistry.register(Job())
        replacement = Job()
        ConnectorRegistry.register(replacement, override=True)
        assert ConnectorRegistry.get_connector("job") is replacement
        (agent,) = ConnectorRegistry.list_connectors()
        assert categories(agent) == [("job", 0)] and list(agent.supported_task_types) == ["job"]

    def test_one_agent_per_name_collects_its_categories(self, connector_registry):
        ConnectorRegistry.register(Job("job", 0))
        ConnectorRegistry.register(Job("job", 1))
        ConnectorRegistry.register(Job("other", 0))
        ConnectorRegistry.register(Echo())
        agents = {a.name: a for a in ConnectorRegistry.list_connectors()}
        assert categories(agents["Job Connector"]) == [("job", 0), ("job", 1), ("other", 0)]
        assert list(agents["Job Connector"].supported_task_types) == ["job", "other"]
        assert agents["Job Connector"].is_sync is False and agents["Echo Connector"].is_sync is True
        assert ConnectorRegistry.get_connector_metadata("Echo Connector") == agents["Echo Connector"]

    def test_override_by_another_connector_moves_the_category(self, connector_registry):
        ConnectorRegistry.register(Job("echo"))
        ConnectorRegistry.register(Echo(), override=True)
        assert [a.name for a in ConnectorRegistry.list_connectors()] == ["Echo Connector"]

    def test_unknown_lookups_raise_connector_not_found(self, connector_registry):
        with pytest.raises(ConnectorNotFound, match=r"^Cannot find connector for task category: nope_v2\.$"):
            ConnectorRegistry.get_connector("nope", 2)
        with pytest.raises(ConnectorNotFound, match=r"^Cannot find connector for name: Nope\.$"):
            ConnectorRegistry.get_connector_metadata("Nope")

    def test_only_connectors_can_be_registered(self, connector_registry):
        with pytest.raises(TypeError, match="ConnectorBase"):
            ConnectorRegistry.register(object())

    def test_isolated_registries_do_not_leak(self):
        with ConnectorRegistry.isolated() as first:
            ConnectorRegistry.register(Job())
        with ConnectorRegistry.isolated() as second:
            assert second is not first
            with pytest.raises(ConnectorNotFound):
                ConnectorRegistry.get_connector("job")


PLUGINS = {
    "good_plugin": """
        from dataclasses import dataclass
        from core_connectors import AsyncConnectorBase, ResourceMeta, hookimpl

        @dataclass
        class GoodMeta(ResourceMeta):
            id: str

        class Good(AsyncConnectorBase):
            name = "Good Connector"
            def __init__(self):
                super().__init__(task_type_name="good", metadata_type=GoodMeta)
            def create(self, *a, **k): return GoodMeta("1")
            def get(self, *a, **k): ...
            def delete(self, *a, **k): ...

        @hookimpl
        def provide_connectors():
            return [Good]
    """,
    "broken_import": "import module_that_does_not_exist_anywhere\n",
    "raising_hook": """
        from core_connectors import hookimpl

        @hookimpl
        def provide_connectors():
            raise RuntimeError("vendor SDK misconfigured")
    """,
    "not_a_connector": """
        from core_connectors import hookimpl

        @hookimpl
        def provide_connectors():
            return ["a string"]
    """,
    "side_effect_style": """
        from core_connectors import ConnectorRegistry, SyncConnectorBase

        class Legacy(SyncConnectorBase):
            name = "Legacy Connector"
            def __init__(self):
                super().__init__(task_type_name="legacy")
            def do(self, *a, **k): ...

        ConnectorRegistry.register(Legacy())
    """,
    "empty_plugin": "X = 1\n",
}


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Write each plugin as a module plus a real dist-info with an entry point, and put both on sys.path."""
    lines = []
    for name, source in PLUGINS.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        dist_info = tmp_path / f"{name.replace('_', '-')}-1.2.3.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.2.3\n")
        (dist_info / "entry_points.txt").write_text(f"[flytekit.connectors]\n{name} = {name}\n")
        lines.append(name)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lines
    for name in PLUGINS:
        sys.modules.pop(name, None)


class TestDiscovery:
    def test_each_plugin_loads_on_its_own_and_failures_are_reported(self, installed_plugins, caplog):
        caplog.set_level(logging.WARNING, logger="core_connectors._registry")
        registry = Registry()
        names = {c.name: s for c, s in registry.connectors()}
        assert {"Good Connector", "Legacy Connector"} <= set(names)
        assert names["Good Connector"].distribution == "good-plugin" and names["Good Connector"].version == "1.2.3"
        assert names["Legacy Connector"].entry_point == "side_effect_style"
        failed = {f.source.entry_point: f.error for f in registry.failures}
        assert failed["broken_import"].startswith("ModuleNotFoundError")
        assert failed["raising_hook"] == "RuntimeError: vendor SDK misconfigured"
        assert "not a connector" in failed["not_a_connector"]
        assert "provides no connectors" in failed["empty_plugin"]
        assert "good_plugin" not in failed
        assert "broken-import 1.2.3" in caplog.text and caplog.text.count("skipped connector plugin") == 4

    def test_registry_discovers_on_first_use(self, installed_plugins):
        with ConnectorRegistry.isolated(discover=True):
            assert ConnectorRegistry.get_connector("good").name == "Good Connector"

    def test_disable_by_entry_point_name(self, installed_plugins, monkeypatch):
        monkeypatch.setenv("CORE_CONNECTORS_DISABLE", "good_plugin, broken_import")
        registry = Registry()
        with pytest.raises(ConnectorNotFound):
            registry.get_connector("good")
        assert sorted(registry.disabled) == ["broken_import", "good_plugin"]
        assert "broken_import" not in {f.source.entry_point for f in registry.failures}

    def test_discovering_again_does_not_duplicate(self, installed_plugins):
        registry = Registry()
        registry.discover()
        first = (len(registry.connectors()), len(registry.failures))
        registry.discover()
        assert (len(registry.connectors()), len(registry.failures)) == first


class TestBridgedConnectors:
    """A bridge plugin's connectors (Bridged) yield their task category to native ones, whichever comes first."""

    NATIVE = PluginSource(entry_point="jobs", distribution="core-connectors-jobs", version="0.1.0")
    FLYTEKIT = PluginSource(entry_point="jobs", distribution="flytekitplugins-jobs", version="1.16.0", via="flytekit")

    def test_a_native_connector_registered_first_shadows_the_bridged_one(self):
        registry = Registry(discover=False)
        native, bridged = Job(), Job()
        registry.register(native, source=self.NATIVE)
        registry.register(bridged, source=self.FLYTEKIT, bridged=True)
        assert registry.get_connector("job") is native
        assert registry.shadowed == [Shadowed(bridged, self.FLYTEKIT, by=self.NATIVE)]
        assert registry.failures == []

    def test_a_native_connector_registered_later_replaces_the_bridged_one(self):
        registry = Registry(discover=False)
        native, bridged = Job(), Job()
        registry.register(bridged, source=self.FLYTEKIT, bridged=True)
        assert registry.get_connector("job") is bridged
        registry.register(native, source=self.NATIVE)
        assert registry.get_connector("job") is native
        assert registry.shadowed == [Shadowed(bridged, self.FLYTEKIT, by=self.NATIVE)]
        assert [categories(a) for a in registry.list_connectors()] == [[("job", 0)]]

    def test_sources_describe_where_a_bridged_connector_came_from(self):
        assert self.NATIVE.describe() == "core-connectors-jobs 0.1.0"
        assert self.FLYTEKIT.describe() == "flytekitplugins-jobs 1.16.0 (flytekit plugin 'jobs', via flytekit)"
        assert PluginSource(entry_point="my_module", via="flytekit").describe() == "module my_module (via flytekit)"

    def test_a_duplicate_of_an_installed_plugin_names_the_way_out(self):
        registry = Registry(discover=False)
        registry.register(Job(), source=self.NATIVE)
        with pytest.raises(ValueError, match="CORE_CONNECTORS_DISABLE=jobs") as info:
            registry.register(Job())
        assert "core-connectors-jobs (entry point 'jobs') already serves it" in str(info.value)

    def test_a_modules_connector_claiming_an_installed_task_type_names_the_way_out(self, tmp_path, monkeypatch):
        (tmp_path / "my_jobs.py").write_text(
            textwrap.dedent(
                f"""
                import sys
                sys.path.insert(0, {str(Path(__file__).parent)!r})
                from test_registry import Job
                from core_connectors import ConnectorRegistry
                ConnectorRegistry.register(Job())
                """
            )
        )
        monkeypatch.chdir(tmp_path)
        with ConnectorRegistry.isolated() as registry:
            registry.register(Job(), source=self.NATIVE)
            with pytest.raises(ImportError, match="with CORE_CONNECTORS_DISABLE=jobs"):
                registry.import_modules(["my_jobs"])
