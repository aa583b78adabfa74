"""The public surface an author sees: a few modules, each listing its names in ``__all__``; the connector
packages of this repository (the pages third parties copy) import nothing else of the core."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = (
    "core_connectors",
    "core_connectors.base_connector",
    "core_connectors.literals",
    "core_connectors.templates",
    "core_connectors.secrets",
    "core_connectors.local",
    "core_connectors.testing",
    "core_connectors.server",
    "core_connectors.server.testing",
)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_module_declares_its_names(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"
    assert not [n for n in module.__all__ if n.startswith("_")]


def _core_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every ``from core_connectors... import name`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "core_connectors":
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "core_connectors"]
    return found


def test_connector_packages_import_only_public_names():
    offences = []
    for path in sorted(ROOT.glob("connectors/*/*/**/*.py")):
        for module, name, line in _core_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module not in PUBLIC:
                offences.append(f"{where}: {module} is not a public module")
            elif name and name not in importlib.import_module(module).__all__:
                offences.append(f"{where}: {module}.{name} is not in its __all__")
    assert not offences, "\n".join(offences)
