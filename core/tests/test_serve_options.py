"""Flags that installed connector plugins add to `core-connectors serve` (their ``serve_options`` hook), from
real dist-info entry points: listed in --help with their variable, and given, set for the connectors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from core_connectors import ServeOption
from core_connectors._cli import main
from core_connectors._registry import Registry, serve_options

PLUGINS = {
    "acme_options": """
        import os
        from pathlib import Path
        from core_connectors import ServeOption, SyncConnectorBase, hookimpl

        class AcmeConnector(SyncConnectorBase):
            name = "Acme Connector"

            def __init__(self):
                super().__init__(task_type_name="acme")
                if os.environ.get("ACME_RECORD"):  # what the connector saw when it was made
                    seen = (os.environ.get("ACME_LEVEL"), os.environ.get("ACME_TAGS"))
                    (Path(os.environ["ACME_RECORD"]) / str(os.getpid())).write_text(repr(seen))

            def do(self, *args, **kwargs): ...

        @hookimpl
        def provide_connectors():
            return [AcmeConnector()]

        @hookimpl
        def serve_options():
            return [
                ServeOption("--acme-level", "ACME_LEVEL", help="How loud acme is."),
                ServeOption("--acme-tag", "ACME_TAGS", help="A tag.", multiple=True, metavar="TAG"),
            ]
    """,
    "broken_options": """
        from core_connectors import SyncConnectorBase, hookimpl

        class Sturdy(SyncConnectorBase):
            name = "Sturdy Connector"

            def __init__(self):
                super().__init__(task_type_name="sturdy")

            def do(self, *args, **kwargs): ...

        @hookimpl
        def provide_connectors():
            return [Sturdy()]

        @hookimpl
        def serve_options():
            raise RuntimeError("options misconfigured")
    """,
    "legacy_options": """
        from core_connectors import ConnectorRegistry, ServeOption, SyncConnectorBase, hookimpl

        class Legacy(SyncConnectorBase):
            name = "Legacy Options Connector"

            def __init__(self):
                super().__init__(task_type_name="legacy_options")

            def do(self, *args, **kwargs): ...

        ConnectorRegistry.register(Legacy())  # flytekit style, at import

        @hookimpl
        def serve_options():
            return [ServeOption("--port", "LEGACY_PORT", help="Clashes with the core's --port: left out.")]
    """,
}


@pytest.fixture
def plugins_dir(tmp_path, monkeypatch):
    """Each plugin as a module plus a real dist-info with its entry point, on sys.path."""
    for name, source in PLUGINS.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        dist_info = tmp_path / f"{name.replace('_', '-')}-1.0.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0.0\n")
        (dist_info / "entry_points.txt").write_text(f"[flytekit.connectors]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CORE_CONNECTORS_DISABLE", raising=False)
    yield tmp_path
    for name in PLUGINS:
        sys.modules.pop(name, None)


def test_help_lists_the_plugins_flags_with_their_variables(plugins_dir, caplog):
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--acme-level TEXT" in result.output and "How loud acme is." in result.output
    assert "[env var: ACME_LEVEL]" in result.output
    assert "--acme-tag TAG" in result.output and "[env var: ACME_TAGS]" in result.output
    assert "LEGACY_PORT" not in result.output  # a plugin cannot take over a flag the core has
    assert "skipped the serve options of connector plugin 'broken_options': RuntimeError" in caplog.text


def test_a_disabled_plugin_adds_no_flags_and_unknown_flags_still_fail(plugins_dir, monkeypatch):
    monkeypatch.setenv("CORE_CONNECTORS_DISABLE", "acme_options")
    assert [o.flag for o in serve_options() if o.flag.startswith("--acme")] == []
    result = CliRunner().invoke(main, ["serve", "--acme-level", "3"])
    assert result.exit_code == 2 and "No such option '--acme-level'" in result.output


def test_a_plugin_imported_for_its_options_still_registers_what_it_registers_at_import(plugins_dir):
    assert ServeOption("--acme-level", "ACME_LEVEL", help="How loud acme is.") in serve_options()
    registry = Registry()
    sources = {c.name: s for c, s in registry.connectors()}
    assert sources["Legacy Options Connector"].entry_point == "legacy_options"
    assert sources["Acme Connector"].distribution == "acme-options"
    assert sources["Sturdy Connector"].entry_point == "broken_options"  # its options failed, its connector serves
    assert [f for f in registry.failures if f.source.entry_point in PLUGINS] == []


def _serve(plugins_dir, *flags: str, timeout: str = "0.2", **env: str) -> list[str]:
    """Run `core-connectors serve` briefly as a process; return what the acme connector saw when made, in
    each process that made one."""
    record = plugins_dir / "record"
    shutil.rmtree(record, ignore_errors=True)
    record.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "core_connectors", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--prometheus-port", "0", "--timeout", timeout, *flags]
    base = {k: v for k, v in os.environ.items() if k not in ("ACME_LEVEL", "ACME_TAGS", "CORE_CONNECTORS_DISABLE")}
    env = {**base, "PYTHONPATH": str(plugins_dir), "ACME_RECORD": str(record), **env}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [p.read_text() for p in record.iterdir()]


@pytest.mark.slow
def test_the_flag_sets_the_variable_before_the_connectors_are_made(plugins_dir):
    assert _serve(plugins_dir, "--acme-level", "loud", "--acme-tag", "a", "--acme-tag", "b") == ["('loud', 'a,b')"]
    assert _serve(plugins_dir, ACME_LEVEL="quiet") == ["('quiet', None)"]  # the variable alone keeps working
    assert _serve(plugins_dir, "--acme-level", "loud", ACME_LEVEL="quiet") == ["('loud', None)"]  # the flag wins


@pytest.mark.slow
def test_the_workers_inherit_the_variable_a_flag_set(plugins_dir):
    seen = _serve(plugins_dir, "--workers", "2", "--acme-level", "loud", timeout="4", ACME_LEVEL="quiet")
    assert seen == ["('loud', None)"] * 2
