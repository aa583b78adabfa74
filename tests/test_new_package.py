"""`core-connectors new`, end to end: the shell blocks of docs/writing-a-connector.md, run as written in fresh
venvs. Generate a package, install it, its own tests pass and `core-connectors list` shows it; build it with
hatchling, `twine check` and upload it to a package index on loopback (pypiserver); install it by name from
there into another fresh venv, where `core-connectors serve` discovers and serves it (ListAgents over gRPC)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-connector.md"

pytestmark = pytest.mark.slow


def _bash_blocks() -> dict[str, str]:
    """The guide's shell blocks by the command that starts them."""
    found = re.findall(r"^```bash\n(.*?)^```", GUIDE.read_text(), re.MULTILINE | re.DOTALL)
    return {block.split("\n", 1)[0]: block for block in found}


BLOCKS = _bash_blocks()
SCAFFOLD = BLOCKS["core-connectors new acme"]
PUBLISH = BLOCKS["pip install build twine"]
INSTALL = BLOCKS["pip install core-connectors-acme"]
SERVE = BLOCKS["core-connectors serve"]


def test_the_guide_has_exactly_these_shell_blocks():
    assert len(BLOCKS) == 4 and SERVE.strip() == "core-connectors serve"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _venv(uv: str, path: Path, *wheels: Path) -> Path:
    """A fresh venv with pip (the guide's commands use it) and the given wheels."""
    subprocess.run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(path)], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(path)}
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(path / "bin" / "python"), *map(str, wheels)],
                   check=True, env=env)  # fmt: skip
    return path


def _env(venv: Path, **extra: str) -> dict[str, str]:
    """The shell of someone who activated ``venv``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_", "PYTHON"))}
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", **extra}


def _run(block: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def core_wheel(build_wheel):
    return build_wheel(ROOT / "core")


@pytest.fixture(scope="module")
def author(uv, core_wheel, tmp_path_factory):
    """The guide's first block in an author's fresh venv: new, install, pytest, list."""
    work = tmp_path_factory.mktemp("author")
    venv = _venv(uv, work / ".venv", core_wheel)
    out = _run(SCAFFOLD, work, _env(venv, COLUMNS="200"))
    return work, venv, out


def test_generated_package_passes_its_own_tests_and_is_listed(author):
    work, venv, out = author
    assert re.search(r"\b14 passed\b", out), out  # the contract suite and the package's own tests, no skip
    assert "Acme Connector" in out and "core-connectors-acme 0.1.0" in out
    listing = subprocess.run(
        [str(venv / "bin" / "core-connectors"), "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    (acme,) = [c for c in json.loads(listing)["connectors"] if c["name"] == "Acme Connector"]
    assert (acme["entry_point"], acme["distribution"], acme["is_sync"]) == ("acme", "core-connectors-acme", False)


def test_a_sync_package_passes_its_own_tests(author):
    work, venv, _ = author
    out = _run("core-connectors new echo --sync\npip install './echo[test]'\npytest echo", work, _env(venv))
    assert re.search(r"\b8 passed\b", out), out  # no skip


@pytest.fixture
def package_index(tmp_path):
    """pypiserver on loopback, taking uploads without credentials; yields its URL."""
    packages = tmp_path / "index"
    packages.mkdir()
    port = _free_port()
    server = Path(sys.executable).with_name("pypi-server")
    cmd = [str(server), "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".", "--disable-fallback"]
    proc = subprocess.Popen([*cmd, str(packages)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/simple/", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "pypiserver did not start within 30 s"
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def test_published_to_an_index_installed_by_name_and_served(author, package_index, uv, core_wheel, tmp_path):
    work, author_venv, _ = author
    out = _run(
        PUBLISH,
        work,
        _env(
            author_venv,
            TWINE_REPOSITORY_URL=f"{package_index}/",
            TWINE_USERNAME="acme",
            TWINE_PASSWORD="unused",
            TWINE_NON_INTERACTIVE="1",
        ),
    )
    assert out.count("PASSED") == 2, out  # twine check: the wheel and the sdist, README rendered
    with urllib.request.urlopen(f"{package_index}/simple/core-connectors-acme/", timeout=5) as page:
        files = re.findall(r">([^<]+)</a>", page.read().decode())
    assert sorted(files) == ["core_connectors_acme-0.1.0-py3-none-any.whl", "core_connectors_acme-0.1.0.tar.gz"]

    # Another machine: core-connectors installed, the connector installed by name from the index.
    server_venv = _venv(uv, tmp_path / "server", core_wheel)
    env = _env(server_venv, PIP_INDEX_URL=f"{package_index}/simple/", COLUMNS="200")
    assert "Acme Connector" in _run(INSTALL, tmp_path, env)

    port = _free_port()
    serve_env = {
        **env,
        "CORE_CONNECTORS_HOST": "127.0.0.1",
        "CORE_CONNECTORS_PORT": str(port),
        "CORE_CONNECTORS_PROMETHEUS_PORT": "0",
    }
    proc = subprocess.Popen(["bash", "-c", f"exec {SERVE}"], cwd=tmp_path, env=serve_env, stderr=subprocess.PIPE)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            reply = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
                agent_pb2.ListAgentsRequest(), timeout=10
            )
        (acme,) = [a for a in reply.agents if a.name == "Acme Connector"]
        assert [(c.name, c.version) for c in acme.supported_task_categories] == [("acme", 0)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read().decode() if proc.stderr else ""
