"""`core-connectors new`: what it writes, and what it refuses (the generated package is tested end to end in
tests/test_new_*.py)."""

from __future__ import annotations

import ast
import sys

import pytest
from click.testing import CliRunner

from core_connectors._cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib


def new(*args: str):
    return CliRunner().invoke(main, ["new", *args], catch_exceptions=False)


def test_an_async_connector_distribution(tmp_path):
    result = new("acme-jobs", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    root = tmp_path / "acme-jobs"
    pkg = root / "src" / "core_connectors_acme_jobs"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "noxfile.py",
        "pyproject.toml",
        "src/core_connectors_acme_jobs/__init__.py",
        "src/core_connectors_acme_jobs/connector.py",
        "src/core_connectors_acme_jobs/py.typed",
        "src/core_connectors_acme_jobs/task.py",
        "tests/test_connector.py",
    ]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "hatchling.build"
    assert project["project"]["name"] == "core-connectors-acme-jobs"
    assert project["project"]["dependencies"] == ["core-connectors>=0.1,<0.2"]
    assert project["project"]["entry-points"]["flytekit.connectors"] == {"acme-jobs": "core_connectors_acme_jobs"}
    connector = (pkg / "connector.py").read_text()
    assert "class AcmeJobsConnector(AsyncConnectorBase[AcmeJobsMetadata]):" in connector
    assert 'TASK_TYPE = "acme-jobs"' in connector
    assert "AsyncConnectorContract" in (root / "tests" / "test_connector.py").read_text()
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(), str(path))  # every template rendered into valid Python
    assert f"pip install '{root}[test]'" in result.output and f"pytest {root}" in result.output


def test_relative_dir_is_shown_as_a_path_pip_takes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = new("acme")
    assert "pip install './acme[test]'" in result.output and (tmp_path / "acme" / "pyproject.toml").exists()


def test_a_sync_connector_distribution(tmp_path):
    assert new("echo", "--sync", "--dir", str(tmp_path)).exit_code == 0
    pkg = tmp_path / "echo" / "src" / "core_connectors_echo"
    assert "class EchoConnector(SyncConnectorBase):" in (pkg / "connector.py").read_text()
    assert "SyncConnectorExecutorMixin" in (pkg / "task.py").read_text()
    assert "SyncConnectorContract" in (tmp_path / "echo" / "tests" / "test_connector.py").read_text()


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "mine.txt").write_text("keep me")
    result = new("acme", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert "already exists: nothing was written" in result.output
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("acme!", "is not a valid distribution name"),
        ("acme-", "must start and end with a letter or digit"),
        ("9lives", "start with a letter"),
        ("two--dashes", "single '-'"),
        ("with.dot", "cannot name the import package"),
    ],
)
def test_rejects_a_bad_name_saying_why(tmp_path, name, why):
    result = new(name, "--dir", str(tmp_path))
    assert result.exit_code == 2 and why in result.output, result.output
    assert not list(tmp_path.iterdir())
