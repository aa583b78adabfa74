"""Plain Python values to and from flyteidl literals, without flytekit's type engine.

Connectors receive inputs and return outputs as ``flyteidl.core.literals_pb2`` messages. These helpers turn
them into the values an author works with every day (int, float, str, bool, None, datetime, timedelta, lists,
dicts with str keys, blob and structured-dataset URIs) and back. Where the template's interface gives a
``LiteralType`` it guides the conversion, so an ``int`` sent for a FLOAT input becomes a float and a dict for
a STRUCT input becomes the msgpack ``Binary`` that flytekit 1.16 writes. Anything else is a ``TypeError``
that names the value's type: never a pickle, and never a flytekit object quietly packed as a dict.

For connectors ported from flytekit: ``template_inputs`` reads a task's inputs by its interface (what
``TypeEngine.literal_map_to_kwargs`` did), and ``StructuredDataset``, ``FlyteFile`` and ``FlyteDirectory``
are outputs with flytekit's names that become typed literals with or without the template's interface.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import msgpack
from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import json_format

__all__ = [
    "MSGPACK_TAG",
    "FlyteDirectory",
    "FlyteFile",
    "StructuredDataset",
    "blob_literal",
    "literal_map_to_python",
    "literal_type_for",
    "python_to_literal",
    "python_to_literal_map",
    "python_type_for",
    "structured_dataset_literal",
    "literal_to_python",
    "template_inputs",
    "variable_map",
]

MSGPACK_TAG = "msgpack"
"""The ``Binary.tag`` flytekit 1.16 gives dicts and dataclasses it encodes with msgpack."""

_Simple = types_pb2.SimpleType
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# ------------------------------------------------------------------------------------- typed outputs
@dataclasses.dataclass(frozen=True)
class StructuredDataset:
    """A table output (parquet files, a ``bq://project:dataset.table``), as flytekit's ``StructuredDataset(uri=...)``
    is used in connectors: it becomes a structured-dataset literal, typed by the interface where there is one."""

    uri: str
    file_format: str = ""


@dataclasses.dataclass(frozen=True)
class FlyteFile:
    """A file output, as flytekit's ``FlyteFile(path)``: it becomes a single blob literal."""

    path: str
    format: str = ""


@dataclasses.dataclass(frozen=True)
class FlyteDirectory:
    """A directory output, as flytekit's ``FlyteDirectory(path)``: it becomes a multipart blob literal."""

    path: str
    format: str = ""


def template_inputs(task_template: tasks_pb2.TaskTemplate, inputs: literals_pb2.LiteralMap | None) -> dict[str, Any]:
    """The task's inputs as plain values, by the names its interface declares (what flytekit connectors got
    from ``TypeEngine.literal_map_to_kwargs`` with the interface's types). An input the interface declares but
    the map lacks is a ValueError naming it; values the interface does not declare are left out."""
    given = inputs.literals if inputs is not None else {}
    values = {}
    for name in task_template.interface.inputs.variables:
        if name not in given:
            raise ValueError(f"input {name!r} declared by the task's interface is missing from the inputs")
        try:
            values[name] = literal_to_python(given[name])
        except (TypeError, ValueError) as e:
            raise type(e)(f"input {name!r}: {e}") from None
    return values


# --------------------------------------------------------------------------------------------- to Python
def literal_map_to_python(literal_map: literals_pb2.LiteralMap | None) -> dict[str, Any]:
    """Turn a LiteralMap (inputs or outputs) into a dict of plain values; None gives an empty dict."""
    if literal_map is None:
        return {}
    return {name: literal_to_python(lit) for name, lit in literal_map.literals.items()}


def literal_to_python(literal: literals_pb2.Literal) -> Any:
    """Turn one literal into a plain value. Blobs and structured datasets become their URI."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return [literal_to_python(item) for item in literal.collection.literals]
    if kind == "map":
        return literal_map_to_python(literal.map)
    if kind == "offloaded_metadata":
        raise TypeError(f"offloaded literal at {literal.offloaded_metadata.uri!r} must be read from storage first")
    if kind != "scalar":
        raise TypeError(f"cannot convert an empty literal (kind {kind!r}) to a Python value")
    return _scalar_to_python(literal.scalar)


def _scalar_to_python(scalar: literals_pb2.Scalar) -> Any:
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        return _primitive_to_python(scalar.primitive)
    if kind == "none_type":
        return None
    if kind == "binary":
        if scalar.binary.tag == MSGPACK_TAG:
            return msgpack.unpackb(scalar.binary.value, raw=False, strict_map_key=False)
        return bytes(scalar.binary.value)
    if kind == "generic":  # how flytekit before 1.14 sent dicts and dataclasses
        return json_format.MessageToDict(scalar.generic)
    if kind == "blob":
        return scalar.blob.uri
    if kind == "structured_dataset":
        return scalar.structured_dataset.uri
    if kind == "schema":
        return scalar.schema.uri
    if kind == "union":
        return literal_to_python(scalar.union.value)
    if kind == "error":
        raise ValueError(f"literal holds an error from node {scalar.error.failed_node_id!r}: {scalar.error.message}")
    raise TypeError(f"cannot convert a scalar of kind {kind!r} to a Python value")


def _primitive_to_python(primitive: literals_pb2.Primitive) -> Any:
    kind = primitive.WhichOneof("value")
    if kind == "integer":
        return primitive.integer
    if kind == "float_value":
        return primitive.float_value
    if kind == "string_value":
        return primitive.string_value
    if kind == "boolean":
        return primitive.boolean
    if kind == "datetime":
        ts = primitive.datetime
        return _EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    if kind == "duration":
        return dt.timedelta(seconds=primitive.duration.seconds, microseconds=primitive.duration.nanos // 1000)
    raise TypeError("cannot convert an empty primitive to a Python value")


# ----------------------------------------------------------------------------------------- from Python
def python_to_literal_map(
    values: Mapping[str, Any],
    types_: Mapping[str, types_pb2.LiteralType] | interface_pb2.VariableMap | None = None,
) -> literals_pb2.LiteralMap:
    """Turn ``{name: value}`` into a LiteralMap, each value guided by its declared type when one is given.

    ``types_`` may be a mapping of LiteralTypes or a VariableMap from a template's interface.
    """
    declared = _types_by_name(types_)
    literal_map = literals_pb2.LiteralMap()
    for name, value in values.items():
        try:
            literal_map.literals[name].CopyFrom(python_to_literal(value, declared.get(name)))
        except TypeError as e:
            raise TypeError(f"cannot convert {name!r}: {e}") from None
    return literal_map


def python_to_literal(value: Any, literal_type: types_pb2.LiteralType | None = None) -> literals_pb2.Literal:
    """Turn one plain value into a literal; ``literal_type`` (when known) decides ambiguous cases."""
    if isinstance(value, literals_pb2.Literal):
        return value
    if literal_type is not None and literal_type.WhichOneof("type") is not None:
        return _typed_to_literal(value, literal_type)
    return _untyped_to_literal(value)


def _untyped_to_literal(value: Any) -> literals_pb2.Literal:
    if isinstance(value, (StructuredDataset, FlyteFile, FlyteDirectory)):
        return _typed_output(value)
    if value is None:
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
    if isinstance(value, (bool, int, float, str, dt.datetime, dt.timedelta)):
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=_to_primitive(value)))
    if isinstance(value, enum.Enum):
        return _untyped_to_literal(value.value)
    if isinstance(value, (bytes, bytearray)):
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=bytes(value))))
    if isinstance(value, (list, tuple)):
        items = [_untyped_to_literal(v) for v in value]
        return literals_pb2.Literal(collection=literals_pb2.LiteralCollection(literals=items))
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return literals_pb2.Literal(map=python_to_literal_map(value))
        raise TypeError(f"dict keys must be str, got {type(next(k for k in value if not isinstance(k, str))).__name__}")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _msgpack_literal(_dataclass_as_dict(value))
    raise TypeError(f"cannot convert a value of type {type(value).__name__} to a Flyte literal")


def _typed_output(value: StructuredDataset | FlyteFile | FlyteDirectory) -> literals_pb2.Literal:
    if isinstance(value, StructuredDataset):
        return structured_dataset_literal(value.uri, format=value.file_format)
    multipart = types_pb2.BlobType.MULTIPART if isinstance(value, FlyteDirectory) else types_pb2.BlobType.SINGLE
    return blob_literal(value.path, format=value.format, dimensionality=multipart)


def _dataclass_as_dict(value: Any) -> dict[str, Any]:
    """A plain dataclass as the dict msgpack encodes. flytekit's own types (a StructuredDataset, a FlyteFile) are
    dataclasses too, but packing them as a dict would send a literal that looks like success and reads as
    garbage: they are refused, naming the types of this module that take their place."""
    if type(value).__module__.split(".")[0] == "flytekit":
        raise TypeError(
            f"a flytekit {type(value).__name__} cannot be converted without flytekit's type engine: use "
            "core_connectors.literals.StructuredDataset, FlyteFile or FlyteDirectory "
            "(see docs/porting-from-flytekit.md)"
        )
    return dataclasses.asdict(value)


def _typed_to_literal(value: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    kind = lt.WhichOneof("type")
    if kind == "union_type":
        return _union_to_literal(value, lt)
    if value is None:
        if kind == "simple" and lt.simple == _Simple.NONE:
            return _untyped_to_literal(None)
        raise TypeError("None given where a value is required (declare the input Optional)")
    if kind == "simple":
        return _simple_to_literal(value, lt.simple)
    if kind == "collection_type":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        items = [_typed_to_literal(v, lt.collection_type) for v in value]
        return literals_pb2.Literal(collection=literals_pb2.LiteralCollection(literals=items))
    if kind == "map_value_type":
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a dict, got {type(value).__name__}")
        lm = literals_pb2.LiteralMap()
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be str, got {type(k).__name__}")
            lm.literals[k].CopyFrom(_typed_to_literal(v, lt.map_value_type))
        return literals_pb2.Literal(map=lm)
    if kind == "blob":
        return blob_literal(_uri_of(value), format=lt.blob.format, dimensionality=lt.blob.dimensionality)
    if kind == "structured_dataset_type":
        return structured_dataset_literal(_uri_of(value), format=lt.structured_dataset_type.format, literal_type=lt)
    if kind == "enum_type":
        text = value.value if isinstance(value, enum.Enum) else value
        if not isinstance(text, str) or (lt.enum_type.values and text not in lt.enum_type.values):
            raise TypeError(f"{value!r} is not one of {list(lt.enum_type.values)}")
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=text)))
    raise TypeError(f"cannot convert a value of type {type(value).__name__} to a literal of kind {kind!r}")


def _union_to_literal(value: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    errors = []
    for variant in lt.union_type.variants:
        try:
            inner = _typed_to_literal(value, variant)
        except TypeError as e:
            errors.append(str(e))
            continue
        union = literals_pb2.Union(value=inner, type=variant)
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(union=union))
    raise TypeError(f"{type(value).__name__} fits no variant of the union ({'; '.join(errors)})")


def _simple_to_literal(value: Any, simple: int) -> literals_pb2.Literal:
    def primitive(**kw: Any) -> literals_pb2.Literal:
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(**kw)))

    if isinstance(value, enum.Enum):
        value = value.value
    if simple == _Simple.INTEGER:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return primitive(integer=value)
    elif simple == _Simple.FLOAT:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return primitive(float_value=float(value))
    elif simple == _Simple.STRING:
        if isinstance(value, str):
            return primitive(string_value=value)
    elif simple == _Simple.BOOLEAN:
        if isinstance(value, bool):
            return primitive(boolean=value)
    elif simple == _Simple.DATETIME:
        if isinstance(value, dt.datetime):
            return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=_to_primitive(value)))
    elif simple == _Simple.DURATION:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = dt.timedelta(seconds=value)
        if isinstance(value, dt.timedelta):
            return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=_to_primitive(value)))
    elif simple == _Simple.STRUCT:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _dataclass_as_dict(value)
        if isinstance(value, Mapping):
            return _msgpack_literal(value)
    elif simple == _Simple.BINARY:
        if isinstance(value, (bytes, bytearray)):
            return literals_pb2.Literal(scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=bytes(value))))
    elif simple == _Simple.NONE:
        pass  # only None fits, handled by the caller
    else:
        return _untyped_to_literal(value)
    raise TypeError(f"cannot convert a value of type {type(value).__name__} to {_Simple.Name(simple)}")


def _to_primitive(value: bool | int | float | str | dt.datetime | dt.timedelta) -> literals_pb2.Primitive:
    if isinstance(value, bool):
        return literals_pb2.Primitive(boolean=value)
    if isinstance(value, int):
        return literals_pb2.Primitive(integer=value)
    if isinstance(value, float):
        return literals_pb2.Primitive(float_value=value)
    if isinstance(value, str):
        return literals_pb2.Primitive(string_value=value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        primitive = literals_pb2.Primitive()
        primitive.datetime.FromDatetime(aware.astimezone(dt.timezone.utc).replace(tzinfo=None))
        return primitive
    primitive = literals_pb2.Primitive()
    primitive.duration.FromTimedelta(value)
    return primitive


def _msgpack_literal(value: Mapping[str, Any]) -> literals_pb2.Literal:
    try:
        packed = msgpack.packb(value, default=_msgpack_default)
    except TypeError as e:
        raise TypeError(f"cannot encode the dict as msgpack: {e}") from None
    binary = literals_pb2.Binary(value=packed, tag=MSGPACK_TAG)
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(binary=binary))


def _msgpack_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_as_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot convert a value of type {type(value).__name__}")


def _uri_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    fspath = getattr(value, "__fspath__", None)
    if fspath is not None:
        return str(fspath())
    uri = getattr(value, "uri", None) or getattr(value, "path", None)
    if isinstance(uri, str):
        return uri
    raise TypeError(f"expected a URI (str or path), got {type(value).__name__}")


def blob_literal(
    uri: str,
    format: str = "",
    dimensionality: int = types_pb2.BlobType.SINGLE,
) -> literals_pb2.Literal:
    """A blob literal (a file, or a directory with ``dimensionality=MULTIPART``) that points at ``uri``."""
    blob = literals_pb2.Blob(
        uri=uri,
        metadata=literals_pb2.BlobMetadata(type=types_pb2.BlobType(format=format, dimensionality=dimensionality)),
    )
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(blob=blob))


def structured_dataset_literal(
    uri: str, format: str = "", literal_type: types_pb2.LiteralType | None = None
) -> literals_pb2.Literal:
    """A structured-dataset literal (a table: parquet files, a ``bq://`` table, ...) that points at ``uri``."""
    sd_type = (
        literal_type.structured_dataset_type
        if literal_type is not None and literal_type.HasField("structured_dataset_type")
        else types_pb2.StructuredDatasetType(format=format)
    )
    dataset = literals_pb2.StructuredDataset(
        uri=uri, metadata=literals_pb2.StructuredDatasetMetadata(structured_dataset_type=sd_type)
    )
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(structured_dataset=dataset))


def _types_by_name(
    types_: Mapping[str, types_pb2.LiteralType] | interface_pb2.VariableMap | None,
) -> Mapping[str, types_pb2.LiteralType]:
    if types_ is None:
        return {}
    if isinstance(types_, interface_pb2.VariableMap):
        return {name: var.type for name, var in types_.variables.items()}
    return types_


# -------------------------------------------------------------------------------- Python types to types
def literal_type_for(py_type: Any) -> types_pb2.LiteralType:
    """The LiteralType flytekit 1.16 gives a Python annotation: int, float, str, bool, datetime, timedelta,
    bytes, ``list[T]``, ``dict[str, T]``, untyped ``dict`` and dataclasses (STRUCT, msgpack), enums, and
    ``Optional``/unions (whose variants carry flytekit's structure tags, which propeller matches on)."""
    simple = _SIMPLE_TYPES.get(py_type)
    if simple is not None:
        return types_pb2.LiteralType(simple=simple)
    if py_type is None or py_type is type(None):
        return types_pb2.LiteralType(simple=_Simple.NONE)
    origin = typing.get_origin(py_type)
    args = typing.get_args(py_type)
    if origin in (list, typing.List) and len(args) == 1:  # noqa: UP006
        return types_pb2.LiteralType(collection_type=literal_type_for(args[0]))
    if origin in (dict, typing.Dict) and len(args) == 2 and args[0] is str:  # noqa: UP006
        return types_pb2.LiteralType(map_value_type=literal_type_for(args[1]))
    if origin in (typing.Union, types.UnionType):
        variants = []
        for arg in args:
            variant = literal_type_for(arg)
            variant.structure.tag = _union_tag(arg)
            variants.append(variant)
        return types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=variants))
    if py_type is dict or origin is dict:
        return _msgpack_struct_type()
    if isinstance(py_type, type) and dataclasses.is_dataclass(py_type):
        struct = _msgpack_struct_type()
        for name, hint in typing.get_type_hints(py_type).items():
            try:
                struct.structure.dataclass_type[name].CopyFrom(literal_type_for(hint))
            except TypeError:
                pass  # flytekit describes what it can; the value still travels as msgpack
        return struct
    if isinstance(py_type, type) and issubclass(py_type, enum.Enum):
        return types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=[str(m.value) for m in py_type]))
    raise TypeError(f"no Flyte literal type for the Python type {getattr(py_type, '__name__', py_type)!r}")


def python_type_for(literal_type: types_pb2.LiteralType) -> Any:
    """The Python type of the values ``literal_to_python`` gives for ``literal_type`` (what flytekit connectors
    asked ``TypeEngine.guess_python_type`` for): int, float, str, bool, datetime, timedelta, bytes, None,
    ``list[T]``, ``dict[str, T]``, dict for STRUCT, str (the URI) for blobs and structured datasets."""
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        found = _PYTHON_TYPES.get(literal_type.simple)
        if found is not None:
            return found
    elif kind == "collection_type":
        return list[python_type_for(literal_type.collection_type)]  # type: ignore[misc]
    elif kind == "map_value_type":
        return dict[str, python_type_for(literal_type.map_value_type)]  # type: ignore[misc]
    elif kind in ("blob", "structured_dataset_type", "schema", "enum_type"):
        return str
    raise TypeError(f"no Python type for the literal type {json_format.MessageToJson(literal_type, indent=None)}")


def _msgpack_struct_type() -> types_pb2.LiteralType:
    """STRUCT with the annotation flytekit 1.16 puts on msgpack-encoded dicts and dataclasses."""
    lt = types_pb2.LiteralType(simple=_Simple.STRUCT)
    lt.annotation.annotations.update({"cache-key-metadata": {"serialization-format": MSGPACK_TAG}})
    return lt


def _union_tag(py_type: Any) -> str:
    """The name of the flytekit transformer for a union variant; propeller matches variants by it."""
    if py_type is None or py_type is type(None):
        return "none"
    origin = typing.get_origin(py_type)
    if origin in (list, typing.List):  # noqa: UP006
        return "Typed List"
    if py_type is dict or origin in (dict, typing.Dict):  # noqa: UP006
        return "Typed Dict"
    if isinstance(py_type, type) and dataclasses.is_dataclass(py_type):
        return "Object-Dataclass-Transformer"
    return getattr(py_type, "__name__", str(py_type))


def variable_map(py_types: Mapping[str, Any]) -> interface_pb2.VariableMap:
    """A template interface's VariableMap for ``{name: python_type}``."""
    return interface_pb2.VariableMap(
        variables={
            name: interface_pb2.Variable(type=literal_type_for(t), description=name) for name, t in py_types.items()
        }
    )


_SIMPLE_TYPES: dict[Any, int] = {
    int: _Simple.INTEGER,
    float: _Simple.FLOAT,
    str: _Simple.STRING,
    bool: _Simple.BOOLEAN,
    dt.datetime: _Simple.DATETIME,
    dt.timedelta: _Simple.DURATION,
    bytes: _Simple.BINARY,
}

_PYTHON_TYPES: dict[int, Any] = {
    **{simple: py_type for py_type, simple in _SIMPLE_TYPES.items()},
    _Simple.STRUCT: dict,
    _Simple.NONE: type(None),
}
