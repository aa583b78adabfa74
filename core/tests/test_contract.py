"""The contract suite catches each mistake propeller punishes, and says what propeller would do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

CONNECTORS = textwrap.dedent(
    """
    import time, uuid
    from dataclasses import dataclass, field

    import pytest
    from flyteidl.admin import agent_pb2
    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, SyncConnectorBase, get_connector_secret
    from core_connectors.testing import AsyncConnectorContract, SyncConnectorContract


    @dataclass
    class Meta(ResourceMeta):
        job_id: str
        blob: str = ""


    class Good(AsyncConnectorBase[Meta]):
        name = "Good"

        def __init__(self):
            super().__init__(task_type_name="good", metadata_type=Meta)
            self.finished = set()

        def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            return Meta(job_id=task_execution_metadata.task_execution_id.node_execution_id.execution_id.name)

        async def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, message="done")

        async def delete(self, resource_meta, **kwargs):
            return None


    class RandomIds(Good):
        def create(self, *args, **kwargs):
            return Meta(job_id=uuid.uuid4().hex)


    class Forgetful(Good):
        async def get(self, resource_meta, **kwargs):
            if resource_meta.job_id in self.finished:
                return Resource(phase=TaskExecution.RUNNING)
            self.finished.add(resource_meta.job_id)
            return Resource(phase=TaskExecution.SUCCEEDED)


    class Undefined(Good):
        async def get(self, resource_meta, **kwargs):
            resource = Resource(phase=TaskExecution.SUCCEEDED)
            resource.phase = TaskExecution.UNDEFINED
            return resource


    class EarlyOutputs(Good):
        async def get(self, resource_meta, **kwargs):
            if resource_meta.job_id in self.finished:
                return Resource(phase=TaskExecution.SUCCEEDED, outputs={"o0": 1})
            self.finished.add(resource_meta.job_id)
            return Resource(phase=TaskExecution.RUNNING, outputs={"o0": 1})


    class StrictDelete(Good):
        def delete(self, resource_meta, **kwargs):
            if resource_meta.job_id in self.finished:
                raise RuntimeError("job not found")
            self.finished.add(resource_meta.job_id)


    class Blocking(Good):
        async def get(self, resource_meta, **kwargs):
            time.sleep(0.25)
            return Resource(phase=TaskExecution.SUCCEEDED)


    class Leaky(Good):
        async def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.FAILED, message=f"401 for key {get_connector_secret('acme_token')}")


    class RawIdl(Good):  # flyteidl's Resource, which the service also answers with: checked all the same
        async def get(self, resource_meta, **kwargs):
            message = f"401 for {get_connector_secret('acme_token')}"
            return agent_pb2.Resource(phase=TaskExecution.FAILED, message=message)


    class Huge(Good):
        def create(self, *args, **kwargs):
            return Meta(job_id="j", blob="x" * 5000)


    @dataclass
    class IntKeys(ResourceMeta):
        counts: dict = field(default_factory=lambda: {1: "one"})


    class Lossy(Good):
        def __init__(self):
            AsyncConnectorBase.__init__(self, task_type_name="lossy", metadata_type=IntKeys)

        def create(self, *args, **kwargs):
            return IntKeys()


    class Wrong(Good):
        def create(self, *args, **kwargs):
            return IntKeys()


    class Never(SyncConnectorBase):
        name = "Never"

        def __init__(self):
            super().__init__(task_type_name="never")

        async def do(self, task_template, output_prefix, inputs=None, **kwargs):
            return Resource(phase=TaskExecution.RUNNING)


    def contract(kind, **attributes):
        base = SyncConnectorContract if kind is Never else AsyncConnectorContract

        class Contract(base):
            finish_timeout = 1.0

            @pytest.fixture
            def connector(self):
                return kind()

        for name, value in attributes.items():
            setattr(Contract, name, value)
        return Contract


    TestGood = contract(Good, idempotent_create=True)
    TestRandomIds = contract(RandomIds, idempotent_create=True)
    TestForgetful = contract(Forgetful)
    TestUndefined = contract(Undefined)
    TestEarlyOutputs = contract(EarlyOutputs)
    TestStrictDelete = contract(StrictDelete)
    TestBlocking = contract(Blocking)
    TestLeaky = contract(Leaky)
    TestRawIdl = contract(RawIdl)
    TestHuge = contract(Huge)
    TestLossy = contract(Lossy)
    TestWrong = contract(Wrong)
    TestNever = contract(Never)
    TestUndeclared = contract(Good, entry_point="no-such-plugin")
    """
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Run the suite over every connector above in a pytest of its own, as an author would; map each test
    id to (outcome, message). ContractWarning is made an error so that the warning shows as a failure."""
    directory = tmp_path_factory.mktemp("contract")
    (directory / "test_connectors.py").write_text(CONNECTORS)
    secrets = directory / "secrets"
    secrets.mkdir()
    (secrets / "acme_token").write_text("tok-5ecret-acme-0123\n")
    report = directory / "report.xml"
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"),
            *("-W", "error::core_connectors.testing.ContractWarning", str(directory)),
        ],
        cwd=directory,
        capture_output=True,
        env={**os.environ, "FLYTE_SECRETS_DEFAULT_DIR": str(secrets)},
        timeout=300,
    )
    results = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        for state in ("failure", "error", "skipped"):
            element = case.find(state)
            if element is not None:
                results[test_id] = (state, element.get("message", "") + (element.text or ""))
                break
        else:
            results[test_id] = ("passed", "")
    return results


def failed(outcome, test_id: str, *phrases: str) -> None:
    state, text = outcome[test_id]
    assert state == "failure", (test_id, state, text[:500])
    for phrase in phrases:
        assert phrase in text, (test_id, phrase, text[:800])


def test_a_good_connector_passes_everything_but_its_missing_entry_point(outcome):
    good = {k: v for k, v in outcome.items() if k.startswith("TestGood::")}
    assert len(good) == 12
    failed(outcome, "TestGood::test_entry_point_is_declared_loads_and_keeps_the_vendor_sdk_out", "set `entry_point")
    rest = {k: s for k, (s, _) in good.items() if "entry_point" not in k}
    assert rest == {k: ("skipped" if "failing_case" in k else "passed") for k in rest}


def test_an_entry_point_nobody_declares(outcome):
    failed(
        outcome,
        "TestUndeclared::test_entry_point_is_declared_loads_and_keeps_the_vendor_sdk_out",
        "no installed distribution declares the entry point 'no-such-plugin'",
        "pip install -e .",
    )


def test_create_with_a_fresh_job_id_each_time(outcome):
    failed(
        outcome,
        "TestRandomIds::test_create_is_idempotent_when_declared",
        "propeller retries CreateTask",
        "task_execution_id",
    )
    assert outcome["TestForgetful::test_create_is_idempotent_when_declared"][0] == "skipped"


def test_get_that_forgets_a_finished_job(outcome):
    failed(outcome, "TestForgetful::test_get_of_a_finished_job_is_terminal", "answered RUNNING", "wait forever")


def test_undefined_phase(outcome):
    failed(outcome, "TestUndefined::test_every_phase_is_real", "phase UNDEFINED", "retryable failure")


def test_outputs_before_success(outcome):
    failed(
        outcome, "TestEarlyOutputs::test_outputs_only_on_succeeded_and_convertible", "outputs came with phase RUNNING"
    )


def test_delete_that_fails_the_second_time(outcome):
    failed(outcome, "TestStrictDelete::test_delete_is_idempotent", "the same job again", "RuntimeError: job not found")


def test_async_method_that_blocks(outcome):
    failed(outcome, "TestBlocking::test_no_async_method_blocks_the_event_loop", "`async def Blocking.get`", "to_thread")
    assert outcome["TestGood::test_no_async_method_blocks_the_event_loop"][0] == "passed"


def test_secret_in_a_message(outcome):
    failed(outcome, "TestLeaky::test_no_secret_in_messages", "401 for key [redacted]", "leave the secret out")
    assert "tok-5ecret" not in outcome["TestLeaky::test_no_secret_in_messages"][1]


def test_flyteidls_own_resource_is_checked_like_the_cores(outcome):
    failed(outcome, "TestRawIdl::test_no_secret_in_messages", "401 for [redacted]")
    assert outcome["TestRawIdl::test_every_phase_is_real"][0] == "passed"
    assert outcome["TestRawIdl::test_get_of_a_finished_job_is_terminal"][0] == "passed"


def test_large_metadata_warns(outcome):
    failed(outcome, "TestHuge::test_metadata_json_round_trip", "ContractWarning", "bytes (over 4096)", "etcd")
    assert outcome["TestGood::test_metadata_json_round_trip"][0] == "passed"


def test_metadata_that_does_not_round_trip(outcome):
    failed(outcome, "TestLossy::test_metadata_json_round_trip", "does not survive encode/decode")


def test_create_returning_another_type(outcome):
    failed(outcome, "TestWrong::test_create_returns_its_metadata_type", "not the connector's metadata_type Meta")


def test_sync_do_that_is_not_terminal(outcome):
    failed(outcome, "TestNever::test_do_returns_a_terminal_phase", "do returned RUNNING", "ExecuteTaskSync")
