"""`core-connectors run` as a user runs it: a real process, the installed sleep connector, and signals.

The interrupt tests start a 30 s task through a connector that records create and delete to a file, wait
until it has been created, send the signal, and check the exit code and that exactly one delete happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RECORDING_CONNECTOR = '''
"""Test connectors that take custom["duration"] seconds and record create/delete to $RECORD_FILE."""
import asyncio
import os
import time
from dataclasses import dataclass

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, hookimpl


def record(word):
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(word + "\\n")


@dataclass
class Job(ResourceMeta):
    deadline: float


def _get(meta):
    if time.time() < meta.deadline:
        return Resource(phase=TaskExecution.RUNNING, message="working")
    return Resource(phase=TaskExecution.SUCCEEDED)


class AsyncSlow(AsyncConnectorBase):
    name = "Async Slow"

    def __init__(self):
        super().__init__(task_type_name="slow-async", metadata_type=Job)

    async def create(self, task_template, output_prefix, inputs=None, **kwargs):
        record("create")
        return Job(deadline=time.time() + task_template.custom["duration"])

    async def get(self, resource_meta, **kwargs):
        return _get(resource_meta)

    async def delete(self, resource_meta, **kwargs):
        await asyncio.sleep(0.05)
        record("delete")


class DefSlow(AsyncConnectorBase):
    name = "Def Slow"

    def __init__(self):
        super().__init__(task_type_name="slow-def", metadata_type=Job)

    def create(self, task_template, output_prefix, inputs=None, **kwargs):
        record("create")
        return Job(deadline=time.time() + task_template.custom["duration"])

    def get(self, resource_meta, **kwargs):
        return _get(resource_meta)

    def delete(self, resource_meta, **kwargs):
        time.sleep(0.05)
        record("delete")


@hookimpl
def provide_connectors():
    return [AsyncSlow(), DefSlow()]
'''

SCRIPT = """
from core_connectors import ConnectorRegistry
from core_connectors.local import ConnectorTask
import slowjob

ConnectorRegistry.register(slowjob.AsyncSlow())
ConnectorTask("nap", task_type="slow-async", custom={"duration": 30})()
"""


@pytest.fixture
def env(tmp_path):
    (tmp_path / "slowjob.py").write_text(RECORDING_CONNECTOR)
    (tmp_path / "script.py").write_text(SCRIPT)
    record = tmp_path / "record.txt"
    pythonpath = os.pathsep.join(p for p in [str(tmp_path), os.environ.get("PYTHONPATH", "")] if p)
    return {**os.environ, "PYTHONPATH": pythonpath, "RECORD_FILE": str(record)}


def run_cli(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "core_connectors", "run", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _records(env) -> list[str]:
    path = Path(env["RECORD_FILE"])
    return path.read_text().split() if path.exists() else []


def _start_and_interrupt(command: list[str], env, signum: int) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "create" not in _records(env):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task was never created"
        time.sleep(0.02)
    time.sleep(0.1)  # into the polling loop
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return proc, out, err


def test_sleep_from_the_command_line():
    result = run_cli("--task-type", "sleep", "--custom", '{"duration": 0.1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    assert result.stderr == ""  # not a terminal: no progress display


def test_sleep_template_file_with_a_duration_input(tmp_path):
    from google.protobuf import json_format

    from core_connectors_sleep import SleepTask

    path = tmp_path / "nap.json"
    path.write_text(json_format.MessageToJson(SleepTask(name="nap").task_template()))
    result = run_cli(str(path), "--input", "duration=100ms")
    assert result.returncode == 0, result.stderr


def test_failure_exits_1_with_the_message_on_stderr():
    result = run_cli("--task-type", "sleep", "--custom", '{"duration": -1}')
    assert result.returncode == 1
    assert "Failed to run the task sleep with error: duration must be" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("task_type", ["slow-async", "slow-def"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_deletes_the_job_once(env, task_type, signum, code):
    command = [sys.executable, "-m", "core_connectors", "run", "--modules", "slowjob"]
    command += ["--task-type", task_type, "--custom", '{"duration": 30}']
    proc, out, err = _start_and_interrupt(command, env, signum)
    assert proc.returncode == code, err
    assert _records(env) == ["create", "delete"]
    assert f"Interrupted by {signal.Signals(signum).name}: deleted the job of task {task_type}" in err
    assert out == ""


def test_ctrl_c_in_a_script_deletes_the_job_and_raises_keyboard_interrupt(env):
    script = Path(env["RECORD_FILE"]).parent / "script.py"
    proc, out, err = _start_and_interrupt([sys.executable, str(script)], env, signal.SIGINT)
    assert proc.returncode != 0
    assert "TaskInterrupted: Interrupted by SIGINT: deleted the job of task nap" in err
    assert _records(env) == ["create", "delete"]


def test_modules_option_reports_an_import_error(env):
    result = run_cli("--modules", "no_such_module_here", "--task-type", "sleep", env=env)
    assert result.returncode == 2
    assert "cannot import module 'no_such_module_here': ModuleNotFoundError" in result.stderr


def test_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "core_connectors", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for option in ("--input", "--inputs-json", "--output-prefix", "--task-type", "--custom", "--modules"):
        assert option in result.stdout
