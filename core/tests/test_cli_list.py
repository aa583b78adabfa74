"""`core-connectors list`: the table people read and the JSON scripts parse."""

from __future__ import annotations

import json

from click.testing import CliRunner

from core_connectors import ConnectorRegistry, SyncConnectorBase
from core_connectors._cli import main


class Echo(SyncConnectorBase):
    name = "Echo Connector"

    def __init__(self):
        super().__init__(task_type_name="echo", task_type_version=1)

    def do(self, *args, **kwargs): ...


def test_json_lists_registered_connectors(connector_registry):
    ConnectorRegistry.register(Echo())
    result = CliRunner().invoke(main, ["list", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing["connectors"] == [
        {
            "name": "Echo Connector",
            "task_categories": [{"name": "echo", "version": 1}],
            "is_sync": True,
            "entry_point": "",
            "distribution": "",
            "version": "",
        }
    ]
    assert listing["failed"] == []


def test_table_says_what_to_install_when_empty(connector_registry):
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0 and "pip install core-connectors-sleep" in result.output


def test_version_and_help():
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).exit_code == 0
    help_text = runner.invoke(main, ["--help"]).output
    assert "list" in help_text and "serve" in help_text and "run" in help_text


def test_a_shadowed_bridged_connector_is_listed_with_where_it_came_from(connector_registry):
    from core_connectors._registry import PluginSource

    native = PluginSource(entry_point="echo", distribution="core-connectors-echo", version="0.1.0")
    flytekit = PluginSource(entry_point="echo", distribution="flytekitplugins-echo", version="1.16.0", via="flytekit")
    connector_registry.register(Echo(), source=native)
    connector_registry.register(Echo(), source=flytekit, bridged=True)
    listing = json.loads(CliRunner().invoke(main, ["list", "--json"]).output)
    assert [c["distribution"] for c in listing["connectors"]] == ["core-connectors-echo"]
    (shadowed,) = listing["shadowed"]
    assert (shadowed["name"], shadowed["distribution"], shadowed["via"]) == (
        "Echo Connector",
        "flytekitplugins-echo",
        "flytekit",
    )
    assert shadowed["shadowed_by"] == {
        "entry_point": "echo",
        "distribution": "core-connectors-echo",
        "version": "0.1.0",
    }
    table = CliRunner().invoke(main, ["list"], env={"COLUMNS": "200"}).output
    assert "Shadowed by a native connector" in table and "flytekitplugins-echo 1.16.0 (flytekit plugin 'echo'" in table
    assert "CORE_CONNECTORS_DISABLE" in table
