"""ResourceMeta's JSON is json's own, byte for byte and error for error, on the fast paths GetTask and
CreateTask take (json's C scanner on UTF-8 text, its C encoder made once) as on the others."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import pytest

from core_connectors import ResourceMeta
from core_connectors._errors import ResourceMetaDecodeError


@dataclass
class Flat(ResourceMeta):
    text: str
    number: float = 0.0
    count: int = 0
    flag: bool = False
    note: str | None = None


@pytest.mark.parametrize(
    "meta",
    [
        Flat("job-1"),
        Flat("é ü 中文 \U0001f600", 1.5, -(2**70), True, None),
        Flat('quotes " and \\ backslash\n and \t tabs', 1e300, 2**63, False, "x"),
        Flat("", -0.0, 0, True, ""),
        Flat("nan", float("nan"), 1),
        Flat("inf", float("inf"), 1),
        Flat("lone surrogate \udcff", 3.0),
    ],
)
def test_encode_writes_what_json_dumps_writes(meta):
    assert meta.encode() == json.dumps(dataclasses.asdict(meta)).encode("utf-8")


@pytest.mark.parametrize(
    "data",
    [
        b'{"text": "a", "number": 2.5}',
        b'{"text": "\\u00e9\\ud83d\\ude00", "count": 3}',
        '{"text": "é", "flag": true}'.encode(),
        b'{"text": "trailing space"}   \n',  # json.loads accepts trailing whitespace
        b'  {"text": "leading space"}',
        '{"text": "utf-16"}'.encode("utf-16"),  # with a BOM: json detects it
        '{"text": "utf-16-le"}'.encode("utf-16-le"),
        '{"text": "utf-32"}'.encode("utf-32"),
        b'\xef\xbb\xbf{"text": "utf-8 with a BOM"}',
        b'{"text": "x", "unknown": [1, {"deep": null}]}',
        b'{"text": "x", "note": null}',
    ],
)
def test_decode_reads_what_json_loads_reads(data):
    expected = json.loads(data)
    decoded = Flat.decode(data)
    assert {k: v for k, v in dataclasses.asdict(decoded).items() if k in expected} == {
        k: v for k, v in expected.items() if k in dataclasses.asdict(decoded)
    }


@pytest.mark.parametrize(
    "data",
    [
        b'{"text": "a"} extra',
        b'{"text": "a"',
        b'{"text": "\xff"}',  # not UTF-8
        b'{"text": "a",}',
        b"{",
        b"",
        b"not json",
    ],
)
def test_decode_errors_carry_json_s_own_words(data):
    try:
        json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        words = str(e)
    with pytest.raises(ResourceMetaDecodeError) as info:
        Flat.decode(data)
    assert str(info.value) == f"cannot decode Flat: the metadata is not JSON ({words})"


def test_nan_round_trips_as_json_writes_it():
    decoded = Flat.decode(Flat("n", float("nan")).encode())
    assert math.isnan(decoded.number)
