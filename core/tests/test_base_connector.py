"""The contract flytekit connectors are ported onto: categories, metadata bytes, resources, phases."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pickle
from dataclasses import asdict, dataclass, field

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, types_pb2

import core_connectors
import core_connectors.base_connector
from core_connectors import (
    AsyncConnectorBase,
    Resource,
    ResourceMeta,
    ResourceMetaDecodeError,
    SyncConnectorBase,
    TaskCategory,
    convert_to_flyte_phase,
    is_terminal_phase,
)
from core_connectors.literals import literal_map_to_python

TE = execution_pb2.TaskExecution


class TestTaskCategory:
    def test_equal_and_hashable_by_name_and_version(self):
        assert TaskCategory("sleep") == TaskCategory("sleep", 0)
        assert TaskCategory("sleep", 1) != TaskCategory("sleep", 0)
        assert len({TaskCategory("a"), TaskCategory("a", 0), TaskCategory("a", 1)}) == 2

    def test_str_is_name_and_version(self):
        assert str(TaskCategory("bigquery_query_job_task", 2)) == "bigquery_query_job_task_v2"

    def test_comparing_with_another_type_does_not_raise(self):
        assert TaskCategory("sleep") != "sleep_v0"
        assert TaskCategory("sleep").__eq__(object()) is NotImplemented


@dataclass
class Inner:
    a: int
    b: str | None = None


@dataclass
class JobMeta(ResourceMeta):
    job_id: str
    attempts: int
    inner: Inner | None = None
    inners: list[Inner] = field(default_factory=list)
    ratio: float = 0.5
    tags: dict[str, str] = field(default_factory=dict)


class TestResourceMeta:
    @pytest.mark.parametrize(
        "meta",
        [
            JobMeta(job_id="j", attempts=2, inner=Inner(1, "x"), inners=[Inner(2)]),  # nested
            JobMeta(job_id='j\u00e9"', attempts=2),  # flat but for the default list and dict
            Inner(a=1, b=None),  # flat: the fast path
        ],
    )
    def test_encode_is_flytekit_bytes(self, meta):
        assert ResourceMeta.encode(meta) == json.dumps(asdict(meta)).encode("utf-8")

    def test_round_trip_rebuilds_nested_dataclasses_in_optional_and_list(self):
        meta = JobMeta(job_id="j", attempts=2, inner=Inner(1, "x"), inners=[Inner(2), Inner(3, "y")], tags={"k": "v"})
        decoded = JobMeta.decode(meta.encode())
        assert decoded == meta
        assert isinstance(decoded.inner, Inner) and isinstance(decoded.inners[1], Inner)

    def test_unknown_keys_are_ignored_and_defaults_fill_in(self):
        decoded = JobMeta.decode(b'{"job_id": "j", "attempts": 1, "added_in_v2": true}')
        assert decoded == JobMeta(job_id="j", attempts=1)

    def test_int_is_accepted_for_float(self):
        assert JobMeta.decode(b'{"job_id": "j", "attempts": 1, "ratio": 1}').ratio == 1.0

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b'{"attempts": 1}', "field 'job_id' is missing"),
            (b"\xff\xfe", "not JSON"),
            (b"not json", "not JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"job_id": "j", "attempts": "two"}', "JobMeta.attempts: expected int, got str"),
            (b'{"job_id": "j", "attempts": 1, "inner": {"b": "x"}}', "JobMeta.inner: field 'a' is missing"),
            (b'{"job_id": "j", "attempts": 1, "inners": {}}', "JobMeta.inners: expected a list"),
        ],
    )
    def test_bad_bytes_raise_one_named_value_error(self, data, expected):
        with pytest.raises(ResourceMetaDecodeError, match=expected) as info:
            JobMeta.decode(data)
        assert isinstance(info.value, ValueError)

    def test_a_pickle_is_refused_not_unpickled(self):
        class Boom:
            def __reduce__(self):
                return (pytest.fail, ("unpickled!",))

        with pytest.raises(ResourceMetaDecodeError, match="pickle"):
            JobMeta.decode(pickle.dumps(Boom()))


class TestResource:
    def test_to_flyte_idl_sets_phase_and_leaves_outputs_unset_when_none(self):
        pb = Resource(phase=TE.RUNNING, message="half way").to_flyte_idl_sync()
        assert pb.phase == TE.RUNNING and pb.message == "half way"
        assert not pb.HasField("outputs") and not pb.HasField("custom_info")

    def test_to_flyte_idl_is_awaitable(self):
        pb = asyncio.run(Resource(phase=TE.SUCCEEDED, outputs={}).to_flyte_idl())
        assert pb.HasField("outputs") and len(pb.outputs.literals) == 0

    def test_plain_outputs_become_literals_guided_by_types(self):
        types = {"n": types_pb2.LiteralType(simple=types_pb2.FLOAT)}
        pb = Resource(phase=TE.SUCCEEDED, outputs={"n": 3, "s": "x"}).to_flyte_idl_sync(types)
        assert pb.outputs.literals["n"].scalar.primitive.float_value == 3.0
        assert literal_map_to_python(pb.outputs) == {"n": 3.0, "s": "x"}

    def test_custom_info_and_log_links(self):
        link = execution_pb2.TaskLog(name="Console", uri="https://example.test/job/1")
        info = {"rows": 3, "when": dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc), "nested": {"ok": True}}
        pb = Resource(phase=TE.RUNNING, log_links=[link], custom_info=info).to_flyte_idl_sync()
        assert pb.log_links[0].uri == "https://example.test/job/1"
        assert pb.custom_info["rows"] == 3 and pb.custom_info["when"] == "2024-01-02T00:00:00+00:00"

    def test_from_flyte_idl_is_the_inverse(self):
        outputs = literals_pb2.LiteralMap()
        outputs.literals["x"].scalar.primitive.integer = 7
        original = Resource(phase=TE.SUCCEEDED, message="ok", outputs=outputs, custom_info={"a": "b"})
        back = Resource.from_flyte_idl(original.to_flyte_idl_sync())
        assert back.phase == TE.SUCCEEDED and back.message == "ok" and back.custom_info == {"a": "b"}
        assert back.outputs == outputs
        assert Resource.from_flyte_idl(agent_pb2.Resource(phase=TE.RUNNING)).outputs is None

    @pytest.mark.parametrize("phase", [TE.UNDEFINED, 99, None])
    def test_undefined_or_unknown_phase_is_refused(self, phase):
        with pytest.raises(ValueError, match="phase"):
            Resource(phase=phase)

    def test_unconvertible_output_is_a_type_error_naming_the_type(self):
        with pytest.raises(TypeError, match="'bad'.*object"):
            Resource(phase=TE.SUCCEEDED, outputs={"bad": object()}).to_flyte_idl_sync()


class TestPhases:
    @pytest.mark.parametrize(
        ("state", "phase"),
        [
            ("FAILED", TE.FAILED),
            ("timedout", TE.FAILED),
            ("cancelled", TE.FAILED),
            ("skipped", TE.FAILED),
            ("internal_error", TE.RETRYABLE_FAILED),
            ("DONE", TE.SUCCEEDED),
            ("completed", TE.SUCCEEDED),
            ("running", TE.RUNNING),
            ("terminating", TE.RUNNING),
            ("pending", TE.INITIALIZING),
        ],
    )
    def test_convert_to_flyte_phase_matches_flytekit(self, state, phase):
        assert convert_to_flyte_phase(state) == phase

    def test_unknown_state_is_an_error(self):
        with pytest.raises(ValueError, match="Unrecognized state: bogus"):
            convert_to_flyte_phase("bogus")

    def test_terminal_phases(self):
        terminal = {p for p in TE.Phase.values() if is_terminal_phase(p)}
        assert terminal == {TE.SUCCEEDED, TE.ABORTED, TE.FAILED, TE.RETRYABLE_FAILED}


class TestBases:
    def test_async_connector_must_implement_create_get_delete(self):
        class Half(AsyncConnectorBase):
            def create(self, task_template, output_prefix, inputs, task_execution_metadata, **kwargs): ...

        with pytest.raises(TypeError):
            Half(task_type_name="half", metadata_type=JobMeta)

    def test_optional_methods_raise_not_implemented(self):
        class Job(AsyncConnectorBase):
            def create(self, *a, **k): ...
            def get(self, *a, **k): ...
            def delete(self, *a, **k): ...

        job = Job(task_type_name="job", task_type_version=3, metadata_type=JobMeta)
        assert job.task_category == TaskCategory("job", 3) and job.metadata_type is JobMeta
        with pytest.raises(NotImplementedError):
            job.get_metrics(JobMeta("j", 1))
        with pytest.raises(NotImplementedError):
            job.get_logs(JobMeta("j", 1))

    def test_sync_connector_keywords(self):
        class Echo(SyncConnectorBase):
            name = "Echo"

            async def do(self, task_template, output_prefix, inputs=None, **kwargs):
                return Resource(phase=TE.SUCCEEDED, outputs={"o0": output_prefix})

        echo = Echo(task_type_name="echo")
        resource = asyncio.run(echo.do(task_template=None, output_prefix="s3://x", inputs=None))
        assert resource.outputs == {"o0": "s3://x"}


def test_the_package_re_exports_the_flytekit_names():
    for name in (
        "TaskCategory ResourceMeta Resource ConnectorBase SyncConnectorBase AsyncConnectorBase ConnectorRegistry "
        "SyncConnectorExecutorMixin AsyncConnectorExecutorMixin convert_to_flyte_phase is_terminal_phase "
        "get_connector_secret get_agent_secret ConnectorNotFound"
    ).split():
        assert hasattr(core_connectors.base_connector, name), name
        assert name in core_connectors.__all__, name
