"""Byte-for-byte agreement with flytekit 1.16, checked against the real flytekit installed beside us.

A propeller that holds metadata written by flytekit's connector service must be able to keep polling ours,
and the literals we write must read back in flytekit tasks exactly as flytekit's own do.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass, field

import pytest

flytekit = pytest.importorskip("flytekit", reason="the cross session installs flytekit 1.16")
from flytekit.core.context_manager import FlyteContextManager  # noqa: E402
from flytekit.core.type_engine import TypeEngine  # noqa: E402
from flytekit.extend.backend import base_connector as fk  # noqa: E402

from core_connectors import base_connector as ours  # noqa: E402
from core_connectors.literals import literal_to_python, literal_type_for, python_to_literal  # noqa: E402

UTC = dt.timezone.utc


@dataclass
class Step:
    name: str
    seconds: float = 0.0


@dataclass
class FlytekitMeta(fk.ResourceMeta):
    job_id: str
    attempt: int
    steps: typing.List[Step] = field(default_factory=list)  # noqa: UP006
    parent: typing.Optional[Step] = None  # noqa: UP045


@dataclass
class OurMeta(ours.ResourceMeta):
    job_id: str
    attempt: int
    steps: list[Step] = field(default_factory=list)
    parent: Step | None = None


def test_resource_meta_bytes_are_identical_both_ways():
    theirs = FlytekitMeta(job_id="bq-1", attempt=2, steps=[Step("a", 1.5)], parent=Step("root"))
    mine = OurMeta(job_id="bq-1", attempt=2, steps=[Step("a", 1.5)], parent=Step("root"))
    assert mine.encode() == theirs.encode()
    assert OurMeta.decode(theirs.encode()) == mine
    assert FlytekitMeta.decode(mine.encode()).encode() == theirs.encode()  # flytekit keeps nested values as dicts


VALUES = [
    (int, 7),
    (float, 2.5),
    (str, "text"),
    (bool, True),
    (dt.datetime, dt.datetime(2024, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)),
    (dt.timedelta, dt.timedelta(seconds=61, microseconds=5)),
    (list[int], [1, 2, 3]),
    (dict[str, float], {"a": 1.0}),
    (typing.Optional[int], 5),  # noqa: UP045
    (typing.Optional[int], None),  # noqa: UP045
    (dict, {"nested": {"list": [1, "x", None]}, "n": 3}),
]


@pytest.mark.parametrize(("py_type", "value"), VALUES, ids=[f"{t}-{v}" for t, v in VALUES])
def test_literals_and_types_match_flytekit(py_type, value):
    ctx = FlyteContextManager.current_context()
    their_type = TypeEngine.to_literal_type(py_type)
    assert literal_type_for(py_type) == their_type.to_flyte_idl()
    their_literal = TypeEngine.to_literal(ctx, value, py_type, their_type).to_flyte_idl()
    our_literal = python_to_literal(value, literal_type_for(py_type))
    if py_type is dict:  # msgpack bytes may order keys differently: compare what both read back
        assert our_literal.scalar.binary.tag == their_literal.scalar.binary.tag == "msgpack"
        assert TypeEngine.to_python_value(ctx, _model(our_literal), dict) == value
    else:
        assert our_literal == their_literal
    assert literal_to_python(their_literal) == value


def _model(literal_pb):
    from flytekit.models.literals import Literal

    return Literal.from_flyte_idl(literal_pb)


def test_resource_to_flyte_idl_matches():
    import asyncio

    from flyteidl.core.execution_pb2 import TaskExecution, TaskLog

    link = TaskLog(name="Console", uri="https://console.example/j/1")
    kwargs = dict(phase=TaskExecution.RUNNING, message="m", log_links=[link], custom_info={"a": 1, "b": ["x"]})
    theirs = asyncio.run(fk.Resource(**kwargs).to_flyte_idl())
    assert ours.Resource(**kwargs).to_flyte_idl_sync() == theirs


def test_convert_to_flyte_phase_matches():
    from flytekit.extend.backend.utils import convert_to_flyte_phase

    for state in ["failed", "timeout", "timedout", "canceled", "cancelled", "skipped", "internal_error", "done"]:
        assert ours.convert_to_flyte_phase(state) == convert_to_flyte_phase(state)
    for state in ["succeeded", "success", "completed", "running", "terminating", "pending"]:
        assert ours.convert_to_flyte_phase(state) == convert_to_flyte_phase(state)
