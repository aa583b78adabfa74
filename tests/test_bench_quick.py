"""Smoke test of the benchmark harness: `bench/run.py --quick` of the figures of issue 16 runs to its end.

It runs the new parts (server CPU per call, mixed traffic, the webhook against nginx, the flytekit bridge
against pyflyte, v2 against v1) with every server from this venv, for a fraction of a second each, and checks
that each figure came out and that no call got an unexpected status code. It asserts nothing about the
numbers: those are measured by a full run on a quiet machine (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_fleet import ensure_installed

pytest.importorskip("flytekit", reason="flytekit 1.16 (pyflyte, the bridge) does not import on Python 3.13")

pytestmark = [pytest.mark.slow, pytest.mark.network]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_a_quick_run_measures_every_new_figure_side_by_side(tmp_path):
    ensure_installed("h2load", "nghttp2-client")
    ensure_installed("nginx", "nginx-light", "nginx")
    out = tmp_path / "bench.json"
    here = sys.executable
    argv = [here, str(ROOT / "bench" / "run.py"), "--quick", "--only", "load,mixed,webhook,bridge,v2"]
    argv += ["--ours-python", here, "--flytekit-python", here, "--extras-python", here, "--json", str(out)]
    argv += ["--seconds", "0.5", "--warmup", "0.2", "--rounds", "1", "--launches", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads(out.read_text())

    for server in ("ours", "flytekit"):
        figures = results[server]
        assert "error" not in figures, figures
        for key in ("get_rps", "get_cpu_us", "create_rps", "blocking_rps", "webhook_rps", "mixed_loops"):
            assert figures[key] > 0, (server, key, figures)
        assert figures["mixed_unexpected"] == 0, figures["mixed_unexpected_codes"]
        kinds = {code.split(": ")[0] for code in figures["mixed_codes"]}
        assert kinds == {"create", "get", "delete", "bad bytes", "bad meta", "unknown type", "failing"}, kinds
    assert results["bridge"]["get_rps"] > 0
    assert results["ours_flyte2"]["get_rps"] > 0 and results["ours_flyte2_v2"]["get_rps"] > 0

    head, *rows = results["table"]
    status = {row[0]: row[head.index("status")] for row in rows}
    for label in (
        "server CPU per GetTask",
        "mixed traffic, 32 clients, loops/s",
        "mixed traffic: unexpected status codes",
        "webhook ExecuteTaskSync/s, 32 at a time",
        "bridged flytekit conn., GetTask/s (ours: bridge)",
        "v2 GetTask/s on that server (flyteidl2)",
    ):
        assert status[label] in ("MET", "NOT MET"), (label, status)
    assert status["mixed traffic: unexpected status codes"] == "MET"
