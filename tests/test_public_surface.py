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
    "core_connectors.tracing",
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


def test_every_other_module_is_private_by_name():
    """An author reads the public modules above; anything else carries an underscore in its dotted name."""
    package = ROOT / "core" / "src" / "core_connectors"
    public_by_accident = []
    for path in sorted(package.rglob("*.py")):
        name = _module_name(package, path)
        parts = name.split(".")
        if name not in PUBLIC and parts[-1] != "__main__" and not any(p.startswith("_") for p in parts):
            public_by_accident.append(name)
    assert not public_by_accident, f"neither public nor private by name: {public_by_accident}"


def _module_name(package: Path, path: Path) -> str:
    parts = ("core_connectors", *path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_core_imports_without_cycles():
    """Module-level imports inside the core form no cycle (the contract sits below the registry, the service and
    the local runner), so no module depends on being imported half-way."""
    package = ROOT / "core" / "src" / "core_connectors"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        name = _module_name(package, path)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.parse(path.read_text()).body:  # module level only: late imports in functions are not cycles
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                graph[name] |= {f"{target}.{a.name}" for a in node.names} | {target}
    modules = set(graph)
    # a package's own parents are always imported first: an edge to one is no cycle
    graph = {m: {t for t in targets if t in modules and not m.startswith(t)} for m, targets in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module not in done:
            for target in sorted(graph[module]):
                visit(target, [*path, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])
