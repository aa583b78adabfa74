"""Plain values to literals and back, as flytekit 1.16 writes and reads them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass
from typing import Optional

import msgpack
import pytest
from flyteidl.core import literals_pb2, types_pb2

from core_connectors.literals import (
    blob_literal,
    literal_map_to_python,
    literal_to_python,
    literal_type_for,
    python_to_literal,
    python_to_literal_map,
    structured_dataset_literal,
    variable_map,
)

UTC = dt.timezone.utc


def simple(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -(2**62),
        1.5,
        "text",
        "",
        True,
        False,
        None,
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        dt.timedelta(seconds=90, microseconds=5),
        [1, 2, 3],
        [[1], [2, 3]],
        {"a": 1, "b": {"c": [True, None]}},
        b"\x00\x01",
    ],
)
def test_untyped_round_trip(value):
    assert literal_to_python(python_to_literal(value)) == value


def test_naive_datetime_is_utc():
    lit = python_to_literal(dt.datetime(2024, 1, 1, 12))
    assert literal_to_python(lit) == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_aware_datetime_is_converted_to_utc():
    plus2 = dt.timezone(dt.timedelta(hours=2))
    lit = python_to_literal(dt.datetime(2024, 1, 1, 12, tzinfo=plus2))
    assert literal_to_python(lit) == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)


class TestTyped:
    def test_int_for_float(self):
        assert python_to_literal(3, simple(types_pb2.FLOAT)).scalar.primitive.float_value == 3.0

    def test_integral_float_for_int(self):
        assert python_to_literal(3.0, simple(types_pb2.INTEGER)).scalar.primitive.integer == 3

    def test_seconds_for_duration(self):
        lit = python_to_literal(1.5, simple(types_pb2.DURATION))
        assert literal_to_python(lit) == dt.timedelta(seconds=1.5)

    @pytest.mark.parametrize(
        ("value", "kind"),
        [(1.5, types_pb2.INTEGER), ("1", types_pb2.INTEGER), (1, types_pb2.STRING), (1, types_pb2.BOOLEAN)],
    )
    def test_mismatch_is_a_type_error_naming_the_type(self, value, kind):
        with pytest.raises(TypeError, match=type(value).__name__):
            python_to_literal(value, simple(kind))

    def test_dict_for_struct_is_flytekit_msgpack_binary(self):
        lit = python_to_literal({"a": [1, 2], "b": "x"}, simple(types_pb2.STRUCT))
        assert lit.scalar.binary.tag == "msgpack"
        assert msgpack.unpackb(lit.scalar.binary.value) == {"a": [1, 2], "b": "x"}
        assert literal_to_python(lit) == {"a": [1, 2], "b": "x"}

    def test_dataclass_for_struct(self):
        @dataclass
        class Point:
            x: int
            y: int

        assert literal_to_python(python_to_literal(Point(1, 2), simple(types_pb2.STRUCT))) == {"x": 1, "y": 2}

    def test_typed_collections_and_maps(self):
        list_of_floats = literal_type_for(list[float])
        lit = python_to_literal([1, 2], list_of_floats)
        assert [i.scalar.primitive.float_value for i in lit.collection.literals] == [1.0, 2.0]
        map_of_ints = literal_type_for(dict[str, int])
        assert literal_to_python(python_to_literal({"a": 1}, map_of_ints)) == {"a": 1}

    def test_optional_is_a_union(self):
        lt = literal_type_for(Optional[int])  # noqa: UP045 - the spelling users write
        some = python_to_literal(5, lt)
        assert some.scalar.union.type.simple == types_pb2.INTEGER and literal_to_python(some) == 5
        none = python_to_literal(None, lt)
        assert none.scalar.union.value.scalar.HasField("none_type") and literal_to_python(none) is None

    def test_none_for_a_required_value_is_an_error(self):
        with pytest.raises(TypeError, match="None"):
            python_to_literal(None, simple(types_pb2.INTEGER))

    def test_blob_and_structured_dataset_from_uri(self):
        blob_type = types_pb2.LiteralType(blob=types_pb2.BlobType(format="csv"))
        lit = python_to_literal("s3://bucket/file.csv", blob_type)
        assert lit.scalar.blob.uri == "s3://bucket/file.csv" and lit.scalar.blob.metadata.type.format == "csv"
        sd_type = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
        lit = python_to_literal("bq://p:d.t", sd_type)
        assert lit.scalar.structured_dataset.uri == "bq://p:d.t"
        assert lit.scalar.structured_dataset.metadata.structured_dataset_type.format == "parquet"
        assert literal_to_python(lit) == "bq://p:d.t"

    def test_enum(self):
        class Color(enum.Enum):
            RED = "red"

        lt = literal_type_for(Color)
        assert literal_to_python(python_to_literal(Color.RED, lt)) == "red"
        with pytest.raises(TypeError):
            python_to_literal("blue", lt)


def test_blob_and_dataset_helpers():
    assert literal_to_python(blob_literal("/tmp/x", dimensionality=types_pb2.BlobType.MULTIPART)) == "/tmp/x"
    assert structured_dataset_literal("bq://p:d.t").scalar.structured_dataset.uri == "bq://p:d.t"


def test_unconvertible_values_name_their_type():
    with pytest.raises(TypeError, match="cannot convert 'x'.*type object"):
        python_to_literal_map({"x": object()})
    with pytest.raises(TypeError, match="keys must be str"):
        python_to_literal({1: "a"})


def test_literal_map_guided_by_a_variable_map():
    interface = variable_map({"n": float, "when": dt.datetime})
    lm = python_to_literal_map({"n": 1, "when": dt.datetime(2024, 1, 1, tzinfo=UTC), "extra": "x"}, interface)
    assert literal_map_to_python(lm) == {"n": 1.0, "when": dt.datetime(2024, 1, 1, tzinfo=UTC), "extra": "x"}
    assert literal_map_to_python(None) == {}


def test_old_flytekit_struct_and_new_msgpack_inputs_decode():
    generic = literals_pb2.Literal()
    generic.scalar.generic.update({"a": 1, "b": ["x"]})
    assert literal_to_python(generic) == {"a": 1.0, "b": ["x"]}
    binary = literals_pb2.Literal()
    binary.scalar.binary.value = msgpack.packb({"k": {"n": 1}})
    binary.scalar.binary.tag = "msgpack"
    assert literal_to_python(binary) == {"k": {"n": 1}}


def test_literal_type_for_unknown_python_type():
    with pytest.raises(TypeError, match="complex"):
        literal_type_for(complex)


# ------------------------------------------------------------------------ for connectors ported from flytekit
def _flytekit_like_dataset():
    @dataclasses.dataclass
    class StructuredDataset:  # what flytekit's is to us: a dataclass from a flytekit module
        uri: str
        file_format: str = "parquet"

    StructuredDataset.__module__ = "flytekit.types.structured.structured_dataset"
    return StructuredDataset(uri="bq://p:d.t")


def test_a_flytekit_object_is_a_clear_error_never_a_msgpack_dict():
    with pytest.raises(TypeError, match="cannot convert 'results': a flytekit StructuredDataset cannot be converted"):
        python_to_literal_map({"results": _flytekit_like_dataset()})
    struct = types_pb2.LiteralType(simple=types_pb2.STRUCT)
    with pytest.raises(TypeError, match="core_connectors.literals.StructuredDataset"):
        python_to_literal(_flytekit_like_dataset(), struct)


def test_typed_outputs_become_datasets_and_blobs_with_or_without_an_interface():
    from core_connectors.literals import FlyteDirectory, FlyteFile, StructuredDataset

    untyped = python_to_literal_map(
        {"t": StructuredDataset("bq://p:d.t"), "f": FlyteFile("s3://b/k.csv", "csv"), "d": FlyteDirectory("s3://b/dir")}
    )
    assert untyped.literals["t"].scalar.structured_dataset.uri == "bq://p:d.t"
    assert untyped.literals["f"].scalar.blob.uri == "s3://b/k.csv"
    assert untyped.literals["f"].scalar.blob.metadata.type.format == "csv"
    assert untyped.literals["d"].scalar.blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART
    sd_type = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
    typed = python_to_literal_map({"t": StructuredDataset("s3://b/t")}, {"t": sd_type})
    assert typed.literals["t"].scalar.structured_dataset.metadata.structured_dataset_type.format == "parquet"


def test_template_inputs_follow_the_interface():
    from flyteidl.core import tasks_pb2

    from core_connectors.literals import template_inputs, variable_map

    template = tasks_pb2.TaskTemplate()
    template.interface.inputs.CopyFrom(variable_map({"n": int, "name": str, "extra": dict}))
    inputs = python_to_literal_map({"name": "x", "n": 3, "extra": {"a": [1]}, "ignored": 1}, template.interface.inputs)
    assert template_inputs(template, inputs) == {"n": 3, "name": "x", "extra": {"a": [1]}}
    del inputs.literals["name"]
    with pytest.raises(ValueError, match="input 'name' declared by the task's interface is missing"):
        template_inputs(template, inputs)
    assert template_inputs(tasks_pb2.TaskTemplate(), None) == {}


def test_python_type_for_reads_back_literal_type_for():
    import typing

    from core_connectors.literals import python_type_for

    for py_type in (int, float, str, bool, dt.datetime, dt.timedelta, bytes, list[int], dict[str, float], dict):
        assert python_type_for(literal_type_for(py_type)) == py_type
    sd = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType())
    assert python_type_for(sd) is str
    with pytest.raises(TypeError, match="no Python type"):
        python_type_for(literal_type_for(typing.Optional[int]))  # noqa: UP045
