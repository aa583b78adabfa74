"""``core-connectors run``: run one task through its connector from the command line.

TEMPLATE is a TaskTemplate as JSON or YAML (protobuf JSON mapping), or a binary TaskTemplate or TaskSpec
protobuf as flytekit's serialize/package commands write them. Inputs given on the command line are parsed by
the template's interface. The outputs go to stdout as JSON; progress and errors go to stderr.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import click
from flyteidl.admin import task_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError

from .._errors import ConnectorNotFound
from ..literals import literal_map_to_python, python_to_literal_map
from ._runner import LocalRun, LocalRunError, TaskInterrupted

__all__ = ["load_template", "parse_value", "run"]

_Simple = types_pb2.SimpleType


@click.command("run")
@click.argument("template", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-i", "--input", "input_pairs", multiple=True, metavar="NAME=VALUE", help="An input, parsed by its type.")
@click.option("--inputs-json", type=click.File("r"), help="A JSON object of inputs ('-' reads stdin).")
@click.option("--output-prefix", help="Where the connector may write outputs (default: a fresh temporary directory).")
@click.option("--task-type", help="Build a template of this task type instead of reading TEMPLATE.")
@click.option("--task-type-version", type=int, default=0, show_default=True, help="With --task-type.")
@click.option("--custom", help="The template's custom field as a JSON object, with --task-type.")
@click.option("--name", help="The task's name (default: the template's).")
@click.option(
    "-m",
    "--modules",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first: it may register or provide connectors.",
)
@click.option("--progress/--no-progress", default=None, help="Show progress (default: when stderr is a terminal).")
def run(
    template: Path | None,
    input_pairs: tuple[str, ...],
    inputs_json: IO[str] | None,
    output_prefix: str | None,
    task_type: str | None,
    task_type_version: int,
    custom: str | None,
    name: str | None,
    modules: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Run a task through its connector here and print its outputs as JSON; Ctrl-C deletes the job first.

    TEMPLATE is a TaskTemplate as JSON or YAML, or a binary TaskTemplate or TaskSpec (.pb). Exit codes: 0 on
    SUCCEEDED, 1 on failure, 2 on bad usage, 130/143 after Ctrl-C/SIGTERM.
    """
    if (template is None) == (task_type is None):
        raise click.UsageError("give either TEMPLATE or --task-type")
    if custom is not None and task_type is None:
        raise click.UsageError("--custom goes with --task-type (a TEMPLATE file has its own custom)")
    task_template = (
        load_template(template) if template is not None else _quick_template(task_type or "", task_type_version, custom)
    )
    _import_modules(modules)
    values = _read_inputs(task_template.interface.inputs, input_pairs, inputs_json)
    task_name = name or task_template.id.name or task_template.type
    try:
        inputs = python_to_literal_map(values, task_template.interface.inputs)
    except TypeError as e:
        raise click.BadParameter(str(e), param_hint="inputs") from None
    local_run = LocalRun(task_template, inputs, name=task_name, output_prefix=output_prefix, progress=progress)
    try:
        outputs = local_run.run()
    except TaskInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(e.exit_code)
    except ConnectorNotFound as e:
        _fail(f"{e} `core-connectors list` shows the installed connectors; --modules imports more.")
    except LocalRunError as e:
        _fail(str(e))
    except Exception as e:  # the connector's own error: the message, not a traceback
        _fail(f"Failed to run the task {task_name} with error: {type(e).__name__}: {e}")
    click.echo(json.dumps(literal_map_to_python(outputs), indent=2, default=_json_default))


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


# ------------------------------------------------------------------------------------------------ templates
def load_template(path: Path) -> tasks_pb2.TaskTemplate:
    """Read a TaskTemplate from JSON/YAML (a TaskSpec's ``{"template": ...}`` too) or binary protobuf."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    errors = []
    if suffix != ".pb":
        try:
            return _template_from_text(data, suffix)
        except ValueError as e:
            if suffix in (".json", ".yaml", ".yml"):
                raise click.BadParameter(f"{path}: {e}", param_hint="TEMPLATE") from None
            errors.append(str(e))
    template = _template_from_binary(data)
    if template is None:
        errors.append("not a binary TaskTemplate or TaskSpec either")
        raise click.BadParameter(f"{path}: {'; '.join(errors)}", param_hint="TEMPLATE")
    return template


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ValueError(
            "YAML needs PyYAML: pip install 'core-connectors[cli]' (or give the template as JSON)"
        ) from None
    return yaml


def _template_from_text(data: bytes, suffix: str) -> tasks_pb2.TaskTemplate:
    parse = json.loads if suffix == ".json" else _yaml().safe_load
    try:
        document = parse(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"not JSON or YAML ({e})") from None
    except Exception as e:  # yaml's errors
        raise ValueError(f"not YAML ({e})") from None
    if not isinstance(document, dict):
        raise ValueError(f"expected a TaskTemplate object, got {type(document).__name__}")
    if "template" in document and "type" not in document:  # a TaskSpec
        document = document["template"]
    try:
        template = json_format.ParseDict(document, tasks_pb2.TaskTemplate())
    except json_format.ParseError as e:
        raise ValueError(f"not a TaskTemplate: {e}") from None
    if not template.type:
        raise ValueError("the TaskTemplate has no type")
    return template


def _template_from_binary(data: bytes) -> tasks_pb2.TaskTemplate | None:
    # The two messages parse each other's bytes leniently: a template from a TaskSpec has an id of kind TASK.
    spec_template = _parse(task_pb2.TaskSpec, data)
    template = _parse(tasks_pb2.TaskTemplate, data)
    if spec_template is not None:
        spec_template = spec_template.template
        if spec_template.type and spec_template.id.resource_type == identifier_pb2.TASK:
            return spec_template
    if template is not None and template.type:
        return template
    if spec_template is not None and spec_template.type:
        return spec_template
    return None


def _parse(message_type: Any, data: bytes) -> Any:
    try:
        return message_type.FromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return None


def _quick_template(task_type: str, version: int, custom: str | None) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, name=task_type),
        type=task_type,
        task_type_version=version,
        interface=interface_pb2.TypedInterface(),
    )
    if custom:
        try:
            template.custom.CopyFrom(json_format.ParseDict(json.loads(custom), struct_pb2.Struct()))
        except (ValueError, json_format.ParseError) as e:
            raise click.BadParameter(f"not a JSON object: {e}", param_hint="--custom") from None
    return template


def _import_modules(modules: tuple[str, ...]) -> None:
    """Import each module; connectors it provides (``provide_connectors``) override installed ones."""
    from .._registry import ConnectorRegistry

    try:
        ConnectorRegistry.current().import_modules(modules)
    except ImportError as e:
        raise click.BadParameter(str(e), param_hint="--modules") from None


# --------------------------------------------------------------------------------------------------- inputs
def _read_inputs(
    declared: interface_pb2.VariableMap, pairs: tuple[str, ...], inputs_json: IO[str] | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if inputs_json is not None:
        try:
            document = json.load(inputs_json)
        except ValueError as e:
            raise click.BadParameter(f"not JSON: {e}", param_hint="--inputs-json") from None
        if not isinstance(document, dict):
            raise click.BadParameter("expected a JSON object of inputs", param_hint="--inputs-json")
        for key, value in document.items():
            values[key] = _from_json(value, _type_of(declared, key, "--inputs-json"))
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--input")
        try:
            values[key] = parse_value(text, _type_of(declared, key, "--input"))
        except ValueError as e:
            raise click.BadParameter(f"{key}: {e}", param_hint="--input") from None
    return values


def _type_of(declared: interface_pb2.VariableMap, name: str, hint: str) -> types_pb2.LiteralType | None:
    if not declared.variables:
        return None  # a template without an interface takes inputs as they come
    if name not in declared.variables:
        raise click.BadParameter(
            f"unknown input {name!r}; the task takes {sorted(declared.variables)}", param_hint=hint
        )
    return declared.variables[name].type


def parse_value(text: str, literal_type: types_pb2.LiteralType | None) -> Any:
    """Parse a command-line value by its declared type; untyped values are JSON if they parse, else text."""
    kind = literal_type.WhichOneof("type") if literal_type is not None else None
    if literal_type is None or kind is None:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if kind == "union_type":
        errors = []
        for variant in literal_type.union_type.variants:
            try:
                return parse_value(text, variant)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"{text!r} fits no variant ({'; '.join(errors)})")
    if kind == "simple":
        return _parse_simple(text, literal_type.simple)
    if kind in ("collection_type", "map_value_type"):
        try:
            return _from_json(json.loads(text), literal_type)
        except json.JSONDecodeError as e:
            raise ValueError(f"expected JSON, got {text!r} ({e})") from None
    return text  # blobs and datasets (a URI), enums (a name)


def _parse_simple(text: str, simple: int) -> Any:
    if simple == _Simple.STRING:
        return text
    if simple == _Simple.INTEGER:
        return int(text)
    if simple == _Simple.FLOAT:
        return float(text)
    if simple == _Simple.BOOLEAN:
        word = text.strip().lower()
        if word in ("true", "1", "yes", "y", "on"):
            return True
        if word in ("false", "0", "no", "n", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if simple == _Simple.DURATION:
        return parse_duration(text)
    if simple == _Simple.DATETIME:
        return parse_datetime(text)
    if simple == _Simple.NONE:
        if text.strip().lower() in ("", "null", "none"):
            return None
        raise ValueError(f"expected null, got {text!r}")
    if simple == _Simple.BINARY:
        return text.encode("utf-8")
    try:
        return json.loads(text)  # STRUCT and anything else
    except ValueError as e:
        raise ValueError(f"expected JSON, got {text!r} ({e})") from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|us|µs|s|m|h|d)")
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> dt.timedelta:
    """Seconds (``1.5``) or units (``2s``, ``150ms``, ``1h30m``)."""
    text = text.strip()
    try:
        return dt.timedelta(seconds=float(text))
    except ValueError:
        pass
    parts = list(_DURATION_PART.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text.replace(" ", ""):
        raise ValueError(f"expected a duration such as 2.5, 2s, 150ms or 1h30m, got {text!r}")
    return dt.timedelta(seconds=sum(float(p.group(1)) * _DURATION_UNITS[p.group(2)] for p in parts))


def parse_datetime(text: str) -> dt.datetime:
    """ISO 8601; a trailing ``Z`` means UTC (which ``fromisoformat`` before Python 3.11 rejects)."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 datetime such as 2024-05-01T12:00:00Z, got {text!r}") from None


def _from_json(value: Any, literal_type: types_pb2.LiteralType | None) -> Any:
    """JSON values are already typed; only datetimes and durations (given as text) need parsing."""
    if literal_type is None or value is None:
        return value
    kind = literal_type.WhichOneof("type")
    if kind == "simple" and isinstance(value, str) and literal_type.simple in (_Simple.DURATION, _Simple.DATETIME):
        return parse_value(value, literal_type)
    if kind == "collection_type" and isinstance(value, list):
        return [_from_json(v, literal_type.collection_type) for v in value]
    if kind == "map_value_type" and isinstance(value, Mapping):
        return {k: _from_json(v, literal_type.map_value_type) for k, v in value.items()}
    if kind == "union_type":
        for variant in literal_type.union_type.variants:
            try:
                converted = _from_json(value, variant)
                python_to_literal_map({"v": converted}, {"v": variant})
                return converted
            except (TypeError, ValueError):
                continue
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, literals_pb2.Literal):
        return json_format.MessageToDict(value)
    raise TypeError(f"cannot print a value of type {type(value).__name__} as JSON")
