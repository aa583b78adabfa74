"""Real wheels, built with hatchling, installed into a fresh venv: what `pip install` users get."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(build_wheel, fresh_venv):
    wheels = [
        build_wheel(ROOT / "core"),
        build_wheel(ROOT / "connectors" / "sleep"),
        build_wheel(ROOT / "tests" / "distributions" / "thirdparty"),
        build_wheel(ROOT / "tests" / "distributions" / "broken"),
    ]
    return fresh_venv(*wheels)


def list_json(venv, **env):
    result = subprocess.run(
        [str(venv / "bin" / "core-connectors"), "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return json.loads(result.stdout), result.stderr


def test_installed_connectors_are_listed_and_the_broken_one_reported(venv):
    listing, stderr = list_json(venv)
    connectors = {c["name"]: c for c in listing["connectors"]}
    assert connectors["Sleep Connector"]["distribution"] == "core-connectors-sleep"
    assert connectors["Sleep Connector"]["task_categories"] == [{"name": "sleep", "version": 0}]
    acme = connectors["Acme Connector"]
    assert (acme["distribution"], acme["version"], acme["is_sync"]) == ("acme-connector", "2.0.1", False)
    assert acme["task_categories"] == [{"name": "acme_job", "version": 2}]
    (failed,) = listing["failed"]
    assert failed["distribution"] == "broken-connector" and failed["version"] == "0.0.1"
    assert "ModuleNotFoundError" in failed["error"] and "vendor_sdk_that_is_not_installed" in failed["error"]
    assert "broken-connector" in stderr  # the log line names the distribution


def test_disable_skips_a_plugin_without_uninstalling_it(venv):
    listing, _ = list_json(venv, CORE_CONNECTORS_DISABLE="broken,acme")
    assert [c["name"] for c in listing["connectors"]] == ["Sleep Connector"]
    assert listing["failed"] == [] and sorted(listing["disabled"]) == ["acme", "broken"]


def test_third_party_metadata_round_trips_in_the_installed_venv(venv):
    code = (
        "from core_connectors import ConnectorRegistry\n"
        "c = ConnectorRegistry.get_connector('acme_job', 2)\n"
        "meta = c.create(task_template=None, output_prefix='')\n"
        "again = c.metadata_type.decode(meta.encode())\n"
        "assert again == meta and type(again.steps[0]).__name__ == 'Step', again\n"
        "print(c.get(again).message)\n"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "acme-1 has 2 steps"


def test_human_readable_table(venv):
    out = subprocess.run(
        [str(venv / "bin" / "core-connectors"), "list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "Sleep Connector" in out and "acme-connector 2.0.1" in out
    assert "Plugins that failed to load" in out and "broken-connector" in out
