"""SleepTask: the sleep connector as a task a user calls, run locally."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from flyteidl.core import types_pb2

import core_connectors_sleep
from core_connectors.local import TaskFailed
from core_connectors_sleep import SleepConnector, SleepTask


@pytest.fixture
def sleep_registry(connector_registry):
    connector_registry.register(SleepConnector())
    return connector_registry


def test_nap_with_a_duration_input(sleep_registry):
    assert SleepTask(name="nap")(duration=dt.timedelta(seconds=0.05)) is None


def test_the_installed_plugin_runs_it_without_registering_anything():
    assert SleepTask(name="nap")(duration=dt.timedelta(0)) is None


def test_template_declares_the_duration_input():
    template = SleepTask(name="nap").task_template()
    assert (template.type, template.task_type_version, template.id.name) == ("sleep", 0, "nap")
    assert template.interface.inputs.variables["duration"].type.simple == types_pb2.DURATION
    assert not template.interface.outputs.variables


@pytest.mark.parametrize("duration", [dt.timedelta(milliseconds=20), 0.02])
def test_a_fixed_duration_goes_into_custom(sleep_registry, duration):
    task = SleepTask(name="fixed", duration=duration)
    template = task.task_template()
    assert template.custom["duration"] == 0.02 and not template.interface.inputs.variables
    assert task() is None


def test_a_negative_duration_fails_with_the_connectors_message(sleep_registry):
    with pytest.raises(TaskFailed, match="^Failed to run the task nap with error: duration must be a finite"):
        SleepTask(name="nap")(duration=dt.timedelta(seconds=-1))


async def test_inside_a_running_loop(sleep_registry):
    assert SleepTask(name="nap")(duration=dt.timedelta(0)) is None
    assert await SleepTask(name="nap").acall(duration=dt.timedelta(0)) is None


def test_the_plugin_module_does_not_load_the_local_runner():
    """SleepTask is exported lazily: `core-connectors list` and the service never import the runner."""
    assert "SleepTask" in core_connectors_sleep.__all__
    assert core_connectors_sleep.SleepTask is SleepTask
    with pytest.raises(AttributeError):
        core_connectors_sleep.NoSuchThing  # noqa: B018
    code = "import sys, core_connectors_sleep; sys.exit('core_connectors.local' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
