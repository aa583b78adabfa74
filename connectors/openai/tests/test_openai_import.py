"""The plugin module stays light: importing it, and making its connectors, never imports the openai SDK."""

from __future__ import annotations

import subprocess
import sys

from core_connectors.testing import modules_after_discovery


def test_the_entry_point_module_does_not_import_openai():
    code = (
        "import sys\n"
        "import core_connectors_openai as m\n"
        "connectors = m.provide_connectors()\n"
        "assert sorted(c.name for c in connectors) == ['ChatGPT Connector', 'OpenAI Batch Endpoint Connector']\n"
        "assert 'openai' not in sys.modules, 'openai was imported'\n"
        "assert 'httpx' not in sys.modules and 'httpx2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_discovering_the_plugin_does_not_import_openai():
    loaded = modules_after_discovery()
    assert "core_connectors_openai" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("openai", "httpx")}


def test_discovery_finds_both_connectors_by_entry_point():
    code = (
        "import sys\n"
        "from core_connectors import ConnectorRegistry\n"
        "assert ConnectorRegistry.get_connector('chatgpt').name == 'ChatGPT Connector'\n"
        "assert ConnectorRegistry.get_connector('openai-batch').name == 'OpenAI Batch Endpoint Connector'\n"
        "assert 'openai' not in sys.modules, 'openai was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
