"""Every code block of docs/writing-a-connector.md runs: the Python blocks in order as one module, the
``python test`` blocks under pytest with the contract suite, the TOML blocks parse. The shell blocks run in
tests/test_new_package.py, in a fresh venv against a local package index."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-a-connector.md"
_FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<code>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
KINDS = {"python", "python test", "toml", "bash"}


def blocks(info: str | None = None) -> list[tuple[int, str, str]]:
    """(line, info string, code) of each fenced block, in order; only those of ``info`` when given."""
    text = GUIDE.read_text()
    found = [(text.count("\n", 0, m.start()) + 1, m["info"].strip(), m["code"]) for m in _FENCE.finditer(text)]
    return [b for b in found if info is None or b[1] == info]


def guide_module() -> str:
    """The plain Python blocks as one module, each marked with its line in the guide."""
    return "\n".join(f"# --- {GUIDE.name}, line {line}\n{code}" for line, _, code in blocks("python"))


def test_every_block_is_of_a_kind_a_test_runs():
    assert {info for _, info, _ in blocks()} <= KINDS
    assert len(blocks("python")) >= 8 and blocks("python test") and blocks("bash")


def test_the_python_blocks_run_in_order(tmp_path):
    script = tmp_path / "acme_guide.py"
    script.write_text(guide_module())
    env = {k: v for k, v in os.environ.items() if not k.startswith("_FSEC_")}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_testing_block_passes_the_contract_suite(tmp_path):
    """The entry-point check is left out: here the guide's connector is not an installed distribution (the
    shell blocks install a real one, in tests/test_new_package.py)."""
    (tmp_path / "acme_guide.py").write_text(guide_module())
    tests = "from acme_guide import *  # noqa: F403\n" + "\n".join(code for _, _, code in blocks("python test"))
    (tmp_path / "test_acme_guide.py").write_text(tests)
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"),
            *("-k", "not entry_point", "--rootdir", str(tmp_path), str(tmp_path / "test_acme_guide.py")),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    cases = list(ET.parse(report).iter("testcase"))
    outcomes = {c.get("name"): [e.tag for e in c] for c in cases}
    assert "test_delete_is_idempotent" in outcomes and "test_served_over_grpc" in outcomes
    assert all(not tags or tags == ["system-out"] for tags in outcomes.values()), outcomes  # no skip, no failure


def test_the_toml_blocks_parse_and_name_the_entry_point_group():
    (block,) = [tomllib.loads(code) for _, _, code in blocks("toml")]
    assert block["project"]["entry-points"]["flytekit.connectors"] == {"acme": "core_connectors_acme"}
