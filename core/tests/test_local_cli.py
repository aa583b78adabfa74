"""`core-connectors run` in-process: template formats, input parsing, outputs as JSON, exit codes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flyteidl.admin import task_pb2
from flyteidl.core import execution_pb2
from google.protobuf import json_format

from core_connectors import Resource, SyncConnectorBase
from core_connectors._cli import main
from core_connectors.local import ConnectorTask
from core_connectors.local._cli import parse_datetime, parse_duration

TE = execution_pb2.TaskExecution


class Echo(SyncConnectorBase):
    """Returns its inputs as outputs, or fails with custom["fail"]."""

    name = "Echo"

    def __init__(self) -> None:
        super().__init__(task_type_name="echo")

    def do(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Resource:
        if "fail" in task_template.custom.fields:
            return Resource(phase=TE.FAILED, message=task_template.custom["fail"])
        if "raise" in task_template.custom.fields:
            raise ValueError(task_template.custom["raise"])
        return Resource(phase=TE.SUCCEEDED, outputs=inputs)


TYPES = {
    "n": int,
    "x": float,
    "flag": bool,
    "s": str,
    "d": dt.timedelta,
    "when": dt.datetime,
    "items": list[int],
    "m": dict[str, int],
    "maybe": int | None,
}


@pytest.fixture
def echo(connector_registry):
    connector_registry.register(Echo())


def _template(**kwargs: Any):
    return ConnectorTask("echo-task", task_type="echo", inputs=TYPES, outputs=TYPES, **kwargs).task_template()


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, ["run", *args], input=input, catch_exceptions=False)


ARGS = [
    "-i", "n=3", "-i", "x=1.5", "-i", "flag=yes", "-i", "s=hello world", "-i", "d=1m30s",
    "-i", "when=2024-05-01T12:00:00Z", "-i", "items=[1, 2]", "-i", 'm={"a": 1}', "-i", "maybe=null",
]  # fmt: skip
EXPECTED = {
    "n": 3,
    "x": 1.5,
    "flag": True,
    "s": "hello world",
    "d": 90.0,
    "when": "2024-05-01T12:00:00+00:00",
    "items": [1, 2],
    "m": {"a": 1},
    "maybe": None,
}


def test_json_template_typed_inputs_and_json_outputs(echo, tmp_path):
    path = tmp_path / "task.json"
    path.write_text(json_format.MessageToJson(_template()))
    result = invoke(str(path), *ARGS)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


def test_yaml_template(echo, tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(json_format.MessageToDict(_template())))
    result = invoke(str(path), *ARGS)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


@pytest.mark.parametrize("suffix", [".pb", ""])
@pytest.mark.parametrize("as_spec", [False, True])
def test_binary_task_template_or_task_spec(echo, tmp_path, suffix, as_spec):
    template = _template()
    message = task_pb2.TaskSpec(template=template) if as_spec else template
    path = tmp_path / f"task{suffix}"
    path.write_bytes(message.SerializeToString())
    result = invoke(str(path), "-i", "n=5", *ARGS[2:])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 5


def test_task_spec_as_json(echo, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json_format.MessageToJson(task_pb2.TaskSpec(template=_template())))
    assert invoke(str(path), *ARGS).exit_code == 0


def test_inputs_json_file_and_stdin(echo, tmp_path):
    path = tmp_path / "task.json"
    path.write_text(json_format.MessageToJson(_template()))
    inputs = {k: v for k, v in EXPECTED.items()}
    inputs["d"] = "90s"
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    result = invoke(str(path), "--inputs-json", str(tmp_path / "inputs.json"), "-i", "n=4")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**EXPECTED, "n": 4}  # --input wins over the file
    result = invoke(str(path), "--inputs-json", "-", input=json.dumps(inputs))
    assert json.loads(result.stdout) == EXPECTED


def test_quick_template_from_task_type(echo):
    result = invoke("--task-type", "echo", "--custom", '{"anything": 1}', "-i", "a=1", "-i", "b=text")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"a": 1, "b": "text"}  # no interface: JSON if it parses, else text


def test_failure_exits_1_with_the_message(echo):
    result = invoke("--task-type", "echo", "--custom", '{"fail": "quota exceeded"}')
    assert result.exit_code == 1
    assert "Failed to run the task echo with error: quota exceeded" in result.stderr
    assert result.stdout == ""


def test_a_connector_exception_exits_1_without_a_traceback(echo):
    result = invoke("--task-type", "echo", "--custom", '{"raise": "boom"}', "--name", "mine")
    assert result.exit_code == 1
    assert "Failed to run the task mine with error: ValueError: boom" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_task_type_exits_1(connector_registry):
    result = invoke("--task-type", "nope")
    assert result.exit_code == 1 and "Cannot find connector for task category: nope_v0" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either TEMPLATE or --task-type"),
        (["--custom", "{}"], "give either TEMPLATE or --task-type"),
        (["-i", "zz=1"], "unknown input 'zz'"),
        (["-i", "n=three"], "n: invalid literal for int()"),
        (["-i", "d=soon"], "expected a duration"),
        (["-i", "when=yesterday"], "expected an ISO 8601 datetime"),
        (["-i", "flag=maybe"], "expected true or false"),
        (["-i", "novalue"], "expected NAME=VALUE"),
    ],
)
def test_usage_errors_exit_2(echo, tmp_path, args, message):
    path = tmp_path / "task.json"
    path.write_text(json_format.MessageToJson(_template()))
    full = args if args[:1] == ["--custom"] or not args else [str(path), *args]
    result = invoke(*full)
    assert result.exit_code == 2
    assert message in result.stderr


def test_bad_template_file(echo, tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{"type": 5, "nonsense": true}')
    result = invoke(str(path))
    assert result.exit_code == 2 and "not a TaskTemplate" in result.stderr
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    result = invoke(str(junk))
    assert result.exit_code == 2 and "not a binary TaskTemplate or TaskSpec" in result.stderr


def test_output_prefix_reaches_the_connector(connector_registry, tmp_path):
    seen = []

    class Prefix(Echo):
        def do(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Resource:
            seen.append(output_prefix)
            return Resource(phase=TE.SUCCEEDED)

    connector_registry.register(Prefix())
    assert invoke("--task-type", "echo", "--output-prefix", str(tmp_path)).exit_code == 0
    assert seen == [str(tmp_path)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2), ("2.5", 2.5), ("2s", 2), ("150ms", 0.15), ("1h30m", 5400), ("1m 30s", 90), ("1d", 86400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


def test_parse_datetime():
    assert parse_datetime("2024-05-01T12:00:00Z") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    assert parse_datetime("2024-05-01") == dt.datetime(2024, 5, 1)
