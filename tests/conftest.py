"""Shared helpers for the cross-package tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        pytest.fail("the cross-package tests need `uv` (installed by the nox session)")
    return found


@pytest.fixture(scope="session")
def uv() -> str:
    return _uv()


@pytest.fixture(scope="session")
def build_wheel(uv, tmp_path_factory):
    """Build a package's wheel with its own backend (hatchling) into a session-wide folder, once per package."""
    out = tmp_path_factory.mktemp("wheels")
    built: dict[Path, Path] = {}

    def build(package_dir: Path) -> Path:
        if package_dir not in built:
            before = set(out.glob("*.whl"))
            subprocess.run([uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(package_dir)], check=True)
            (built[package_dir],) = set(out.glob("*.whl")) - before
        return built[package_dir]

    return build


@pytest.fixture(scope="session")
def fresh_venv(uv, tmp_path_factory):
    """Make an empty virtual environment and install the given wheels (dependencies from the registry)."""

    def make(*wheels: Path) -> Path:
        venv = tmp_path_factory.mktemp("venv")
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        python = venv / "bin" / "python"
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *map(str, wheels)], check=True, env=env
        )
        return venv

    return make
