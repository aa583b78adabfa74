"""The ``core-connectors`` command. Subcommands load their modules only when run, so ``list`` stays fast."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

__all__ = ["main"]

# subcommand name -> "module:attribute" of its click command, imported on use
_LAZY_COMMANDS = {
    "serve": "core_connectors.server._cli:serve",
    "run": "core_connectors.local._cli:run",
    "new": "core_connectors._scaffold:new",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="core-connectors")
def main() -> None:
    """Serve, list and run Flyte connectors without flytekit."""


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
def list_connectors(as_json: bool) -> None:
    """Show the installed connectors and the plugins that failed to load."""
    from ._registry import ConnectorRegistry

    registry = ConnectorRegistry.current()
    registry.ensure_discovered()
    connectors = [
        {
            "name": connector.name,
            "task_categories": [{"name": connector.task_category.name, "version": connector.task_category.version}],
            "is_sync": _is_sync(connector),
            **_source_fields(source),
        }
        for connector, source in registry.connectors()
    ]
    shadowed = [
        {
            "name": s.connector.name,
            "task_categories": [{"name": s.connector.task_category.name, "version": s.connector.task_category.version}],
            **_source_fields(s.source),
            "shadowed_by": _source_fields(s.by),
        }
        for s in registry.shadowed
    ]
    failures = [
        {
            "entry_point": f.source.entry_point,
            "distribution": f.source.distribution,
            "version": f.source.version,
            "error": f.error,
        }
        for f in registry.failures
    ]
    if as_json:
        listing = {"connectors": connectors, "shadowed": shadowed, "failed": failures, "disabled": registry.disabled}
        click.echo(json.dumps(listing, indent=2))
        return
    _print_tables(connectors, shadowed, failures, registry.disabled)


def _source_fields(source: Any) -> dict[str, str]:
    """Where a connector came from; ``via`` names the bridge plugin of a connector written for flytekit, or
    ``flyte-sdk`` for one written for flyte-sdk."""
    fields = {"entry_point": source.entry_point, "distribution": source.distribution, "version": source.version}
    return {**fields, "via": source.via} if source.via else fields


def _describe(fields: dict[str, Any]) -> str:
    from ._registry import PluginSource

    return PluginSource(**fields).describe() or "(registered in code)"


def _is_sync(connector: Any) -> bool:
    from ._connector import SyncConnectorBase

    return isinstance(connector, SyncConnectorBase)


def _print_tables(
    connectors: list[dict[str, Any]],
    shadowed: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    disabled: list[str],
) -> None:
    from ._tables import Table, print_tables

    tables = [
        Table(
            "Connectors",
            ("Name", "Task category", "Kind", "Distribution"),
            [
                (c["name"], _categories(c), "sync" if c["is_sync"] else "async", _describe(_fields_of(c)))
                for c in connectors
            ],
        )
    ]
    if shadowed:
        tables.append(
            Table(
                "Shadowed by a native connector (not served)",
                ("Name", "Task category", "From", "Served instead by"),
                [(c["name"], _categories(c), _describe(_fields_of(c)), _describe(c["shadowed_by"])) for c in shadowed],
                title_style="yellow",
                notes=[
                    (
                        "CORE_CONNECTORS_DISABLE=<entry point> on the native plugin serves the shadowed one instead.",
                        None,
                    )
                ],
            )
        )
    if failures:
        tables.append(
            Table(
                "Plugins that failed to load",
                ("Entry point", "Distribution", "Error"),
                [(f["entry_point"], _describe(_fields_of(f)), f["error"]) for f in failures],
                title_style="bold red",
            )
        )
    notes = tables[-1].notes
    if disabled:
        notes.append((f"Disabled by CORE_CONNECTORS_DISABLE: {', '.join(disabled)}", None))
    if not connectors and not failures:
        notes.append(("No connectors installed: try `pip install core-connectors-sleep`.", "yellow"))
    print_tables(tables)


def _categories(row: dict[str, Any]) -> str:
    return ", ".join(f"{t['name']} v{t['version']}" for t in row["task_categories"])


def _fields_of(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("entry_point", "distribution", "version", "via") if k in row}


if __name__ == "__main__":
    sys.exit(main())
