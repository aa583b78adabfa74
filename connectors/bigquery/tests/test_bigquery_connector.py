"""The connector against a local stand-in of BigQuery's REST API, through the real google-cloud-bigquery client."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time

import pytest
from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import ConnectorRegistry, RetryableFailure
from core_connectors.literals import literal_map_to_python
from core_connectors.testing import modules_after_discovery
from core_connectors_bigquery import BigQueryConnector, BigQueryMetadata, _gcp
from core_connectors_bigquery.connector import job_id_for
from core_connectors_bigquery.testing import make_inputs, make_metadata, make_template

pytestmark = pytest.mark.network

connector = BigQueryConnector()


def run_to_end(meta: BigQueryMetadata, polls: int = 10) -> list:
    """Poll get until a terminal phase; return every Resource seen."""
    seen = []
    for _ in range(polls):
        seen.append(connector.get(meta))
        if seen[-1].phase not in (TaskExecution.INITIALIZING, TaskExecution.RUNNING):
            break
    return seen


def inserted_body(fake) -> dict:
    (request,) = fake.requests_to("POST", "insert")
    return request.body


# --------------------------------------------------------------------------------------------- plugin
def test_discovering_the_plugin_does_not_import_the_vendor_sdk() -> None:
    loaded = modules_after_discovery()
    assert "core_connectors_bigquery" in loaded
    assert not {m for m in loaded if m.startswith(("google.cloud.bigquery", "google.auth", "google.api_core"))}


def test_discovered_through_the_entry_point() -> None:
    with ConnectorRegistry.isolated(discover=True):
        found = ConnectorRegistry.get_connector("bigquery_query_job_task", 0)
        assert isinstance(found, BigQueryConnector)
        assert found.name == "Bigquery Connector"


# -------------------------------------------------------------------------------------------- matching
def test_job_runs_through_pending_running_done_and_returns_its_table(fake_bq) -> None:
    fake_bq.plan(states=["PENDING", "PENDING", "RUNNING", "DONE"])
    template = make_template(sql="SELECT * FROM t WHERE n = @n", inputs={"n": int})
    meta = connector.create(template, "", make_inputs(template, n=3), make_metadata())

    seen = run_to_end(meta)
    assert [r.phase for r in seen] == [TaskExecution.INITIALIZING, TaskExecution.RUNNING, TaskExecution.SUCCEEDED]
    done = seen[-1]
    assert literal_map_to_python(done.outputs) == {"results": f"bq://proj:_anon.anon_{meta.job_id}"}
    assert done.outputs.literals["results"].scalar.HasField("structured_dataset")
    (link,) = done.log_links
    assert link.name == "BigQuery Console"
    assert link.uri == (
        f"https://console.cloud.google.com/bigquery?project=proj&j=bq:US:{meta.job_id}&page=queryresults"
    )
    assert done.custom_info["total_bytes_billed"] == 10485760
    body = inserted_body(fake_bq)
    assert body["configuration"]["query"]["query"] == "SELECT * FROM t WHERE n = @n"
    assert (meta.project, meta.location) == ("proj", "US")


def test_metadata_json_is_compatible_with_flytekits() -> None:
    old = BigQueryMetadata.decode(b'{"job_id": "abc", "project": "p", "location": null}')
    assert (old.job_id, old.project, old.location, old.has_results, old.error) == ("abc", "p", None, True, None)
    new = json.loads(BigQueryMetadata(job_id="j", project="p", location="EU").encode())
    assert {"job_id": "j", "project": "p", "location": "EU"}.items() <= new.items()


def test_a_job_started_by_flytekits_connector_is_polled_and_cancelled(fake_bq) -> None:
    fake_bq.add_job("other-proj", "flytekit_job", location="EU", states=["RUNNING"])
    meta = BigQueryMetadata.decode(b'{"job_id": "flytekit_job", "project": "other-proj", "location": "EU"}')
    assert connector.get(meta).phase == TaskExecution.RUNNING
    connector.delete(meta)
    assert connector.get(meta).phase == TaskExecution.ABORTED
    paths = {(r.method, r.path, r.query.get("location")) for r in fake_bq.requests}
    assert ("GET", "/bigquery/v2/projects/other-proj/jobs/flytekit_job", "EU") in paths
    assert ("POST", "/bigquery/v2/projects/other-proj/jobs/flytekit_job/cancel", "EU") in paths


def test_location_comes_from_bigquery_when_the_template_has_none(fake_bq) -> None:
    template = make_template(custom={"Location": None})
    meta = connector.create(template, "", None, None)
    assert meta.location == "US"
    assert "location" not in inserted_body(fake_bq)["jobReference"]


# ----------------------------------------------------------------------------------- query settings
def test_query_job_settings_from_the_template_are_honoured(fake_bq) -> None:
    custom = {
        "useQueryCache": False,
        "maximumBytesBilled": "1000",
        "priority": "BATCH",
        "writeDisposition": "WRITE_TRUNCATE",
        "maximumBillingTier": 2,  # a float once it went through the protobuf Struct
        "destinationTable": {"projectId": "dst", "datasetId": "ds", "tableId": "tbl"},
    }
    template = make_template(custom=custom)
    assert template.custom["maximumBillingTier"] == 2.0
    meta = connector.create(template, "", None, make_metadata())
    query = inserted_body(fake_bq)["configuration"]["query"]
    assert {k: query[k] for k in custom} == custom
    assert type(query["maximumBillingTier"]) is int
    assert not {"ProjectID", "Location", "Domain"} & set(query)
    assert literal_map_to_python(connector.get(meta).outputs) == {"results": "bq://dst:ds.tbl"}


def test_parameters_have_bigquery_types(fake_bq) -> None:
    types = {
        "i": int,
        "f": float,
        "s": str,
        "b": bool,
        "t": dt.datetime,
        "raw": bytes,
        "xs": list[int],
        "names": list[str],
        "empty": list[float],
        "d": dict,
        "m": dict[str, int],
        "maybe": int | None,
    }
    template = make_template(inputs=types)
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    values = {
        "i": 7,
        "f": 2.0,
        "s": "x",
        "b": True,
        "t": when,
        "raw": b"\x00\x01",
        "xs": [1, 2],
        "names": ["a"],
        "empty": [],
        "d": {"k": [1, "v"]},
        "m": {"a": 1},
        "maybe": None,
    }
    connector.create(template, "", make_inputs(template, **values), make_metadata())

    query = inserted_body(fake_bq)["configuration"]["query"]
    assert query["parameterMode"] == "NAMED"
    params = {p["name"]: p for p in query["queryParameters"]}
    scalar = {
        n: (p["parameterType"]["type"], p["parameterValue"].get("value"))
        for n, p in params.items()
        if "arrayType" not in p["parameterType"]
    }
    assert scalar == {
        "i": ("INT64", "7"),
        "f": ("FLOAT64", 2.0),
        "s": ("STRING", "x"),
        "b": ("BOOL", "true"),
        "t": ("TIMESTAMP", "2024-05-01 10:30:00+00:00"),
        "raw": ("BYTES", "AAE="),
        "d": ("JSON", '{"k": [1, "v"]}'),  # JSON text, encoded once
        "m": ("JSON", '{"a": 1}'),
        "maybe": ("INT64", None),
    }
    arrays = {
        n: (p["parameterType"]["arrayType"]["type"], [v["value"] for v in p["parameterValue"]["arrayValues"]])
        for n, p in params.items()
        if "arrayType" in p["parameterType"]
    }
    assert arrays == {"xs": ("INT64", ["1", "2"]), "names": ("STRING", ["a"]), "empty": ("FLOAT64", [])}


def test_date_and_decimal_values_become_date_and_numeric() -> None:
    """Flyte literals carry neither, but Python callers of ``parameter`` can."""
    import decimal

    assert _gcp.parameter("d", dt.date(2024, 1, 2)).to_api_repr()["parameterType"]["type"] == "DATE"
    numeric = _gcp.parameter("n", decimal.Decimal("1.25")).to_api_repr()
    assert (numeric["parameterType"]["type"], numeric["parameterValue"]["value"]) == ("NUMERIC", "1.25")
    naive = _gcp.parameter("t", dt.datetime(2024, 1, 2, 3, 4)).to_api_repr()["parameterValue"]["value"]
    assert naive == "2024-01-02 03:04:00+00:00"


@pytest.mark.parametrize(
    ("types", "values", "words"),
    [
        ({"wait": dt.timedelta}, {"wait": dt.timedelta(seconds=3)}, "no parameter type for timedelta"),
        ({"grid": list[list[int]]}, {"grid": [[1]]}, "arrays of arrays"),
    ],
)
def test_an_input_bigquery_cannot_take_fails_the_task_naming_it(fake_bq, types, values, words) -> None:
    template = make_template(inputs=types)
    meta = connector.create(template, "", make_inputs(template, **values), make_metadata())
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert repr(next(iter(types))) in resource.message and words in resource.message
    connector.delete(meta)
    assert fake_bq.requests == []


def test_inputs_replace_a_same_named_parameter_from_the_settings(fake_bq) -> None:
    preset = [
        {"name": "n", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "old"}},
        {"name": "keep", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "k"}},
    ]
    template = make_template(custom={"queryParameters": preset}, inputs={"n": int})
    connector.create(template, "", make_inputs(template, n=1), make_metadata())
    params = {
        p["name"]: p["parameterValue"]["value"]
        for p in inserted_body(fake_bq)["configuration"]["query"]["queryParameters"]
    }
    assert params == {"n": "1", "keep": "k"}


# ------------------------------------------------------------------------------------------ failures
@pytest.mark.parametrize(
    ("reason", "phase"),
    [
        ("invalidQuery", TaskExecution.FAILED),
        ("accessDenied", TaskExecution.FAILED),
        ("backendError", TaskExecution.RETRYABLE_FAILED),
        ("internalError", TaskExecution.RETRYABLE_FAILED),
        ("rateLimitExceeded", TaskExecution.RETRYABLE_FAILED),
        ("badGateway", TaskExecution.RETRYABLE_FAILED),
        ("jobRateLimitExceeded", TaskExecution.RETRYABLE_FAILED),
        ("stopped", TaskExecution.ABORTED),
    ],
)
def test_failure_is_read_from_error_result(fake_bq, reason, phase) -> None:
    error = {"reason": reason, "location": "query", "message": "Syntax error at [1:8]"}
    fake_bq.plan(states=["RUNNING", "DONE"], error_result=error)
    meta = connector.create(make_template(), "", None, make_metadata())
    done = run_to_end(meta)[-1]
    assert done.phase == phase
    assert done.message == f"{reason} at query: Syntax error at [1:8]"
    assert done.outputs is None
    assert done.log_links[0].name == "BigQuery Console"


def test_warnings_alone_do_not_fail_the_job(fake_bq) -> None:
    warning = {"reason": "invalid", "message": "a column was truncated"}
    fake_bq.plan(states=["DONE"], errors=[warning])
    meta = connector.create(make_template(), "", None, make_metadata())
    done = connector.get(meta)
    assert done.phase == TaskExecution.SUCCEEDED
    assert "1 warning(s): invalid: a column was truncated" in done.message
    assert done.outputs is not None


def test_a_refused_job_fails_the_task_with_bigquerys_message(fake_bq) -> None:
    fake_bq.fail(400, "invalid", method="POST")
    meta = connector.create(make_template(), "", None, make_metadata())
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("BigQuery jobs.insert failed: BadRequest: 400 ")
    assert "scripted invalid" in resource.message


def test_a_job_that_cannot_be_adopted_fails_the_task(fake_bq) -> None:
    """The insert meets the job of an earlier CreateTask (409), and reading it is refused (403)."""
    fake_bq.add_job("proj", job_id_for(make_metadata()), states=["RUNNING"])
    fake_bq.fail(403, "accessDenied", method="GET")
    meta = connector.create(make_template(), "", None, make_metadata())
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("BigQuery jobs.insert failed: Forbidden: 403 ")
    assert [r.status for r in fake_bq.requests if r.method == "POST"] == [409]


def test_a_transient_error_while_adopting_a_job_is_a_retryable_failure(fake_bq) -> None:
    fake_bq.add_job("proj", job_id_for(make_metadata()), states=["RUNNING"])
    fake_bq.fail(503, "serviceUnavailable", method="GET")
    with pytest.raises(RetryableFailure, match="ServiceUnavailable: 503"):
        connector.create(make_template(), "", None, make_metadata())
    assert connector.create(make_template(), "", None, make_metadata()).error is None  # propeller's next try


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (403, "accessDenied", "Forbidden"),  # the service account lost bigquery.jobs.get
        (400, "invalid", "BadRequest"),  # a location BigQuery does not have
    ],
)
def test_a_refused_poll_fails_the_task(fake_bq, caplog, status, reason, error) -> None:
    meta = connector.create(make_template(), "", None, make_metadata())
    fake_bq.fail(status, reason, method="GET")
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith(f"BigQuery jobs.get failed: {error}: {status} ")
    assert f"scripted {reason}" in resource.message
    assert resource.log_links[0].name == "BigQuery Console"
    (error_id,) = re.findall(r"\(error id ([0-9a-f]{8})\)", resource.message)
    assert f"error id {error_id}" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [(503, "serviceUnavailable", "ServiceUnavailable"), (429, "tooManyRequests", "TooManyRequests")],
)
def test_a_transient_poll_error_leaves_the_task_running_and_asks_again(fake_bq, status, reason, error) -> None:
    """The job runs on in BigQuery: failing the attempt would start the query again, or fail the task."""
    meta = connector.create(make_template(), "", None, make_metadata())
    fake_bq.fail(status, reason, method="GET")
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.RUNNING
    assert resource.message.startswith(f"status unknown, will ask again: BigQuery jobs.get failed: {error}: {status} ")
    assert resource.log_links[0].name == "BigQuery Console"
    assert connector.get(meta).phase == TaskExecution.SUCCEEDED


def test_a_poll_that_spent_its_retries_leaves_the_task_running(fake_bq, monkeypatch) -> None:
    meta = connector.create(make_template(), "", None, make_metadata())
    monkeypatch.setattr(_gcp, "RETRY", _gcp.RETRY.with_timeout(0.5))
    fake_bq.fail(500, "backendError", method="GET", count=1000)
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.RUNNING
    assert "BigQuery jobs.get failed: RetryError: Timeout of 0.5s exceeded" in resource.message
    assert len(fake_bq.requests_to("GET")) > 1


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ({"type": "external_account"}, "holds credentials of type 'external_account'"),
        ({"type": "service_account", "project_id": "proj"}, "MalformedError"),  # a DefaultCredentialsError
        ("/nowhere/key.json", "FileNotFoundError"),
        ("{not json", "JSONDecodeError"),
    ],
)
def test_credentials_that_cannot_be_used_fail_the_task(fake_bq, monkeypatch, secret, words) -> None:
    monkeypatch.setenv(
        "_FSEC_GOOGLE_APPLICATION_CREDENTIALS", secret if isinstance(secret, str) else json.dumps(secret)
    )
    meta = connector.create(make_template(), "", None, make_metadata())
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith(
        "BigQuery jobs.insert failed: CredentialsError: the secret google_application_credentials"
    )
    assert words in resource.message
    assert fake_bq.requests == []


def test_a_key_the_token_endpoint_refuses_fails_the_task(fake_bq, monkeypatch) -> None:
    monkeypatch.setenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", json.dumps(service_account_key(fake_bq)))
    fake_bq.fail(400, "invalid_grant", method="POST")
    meta = connector.create(make_template(), "", None, make_metadata())
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("BigQuery jobs.insert failed: RefreshError: ")
    assert fake_bq.requests_to("POST", "insert") == []


@pytest.mark.slow
def test_a_token_endpoint_that_is_down_is_a_retryable_failure(fake_bq, monkeypatch) -> None:
    """google-auth tries the token endpoint three times in about four seconds, then propeller tries again."""
    monkeypatch.setenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", json.dumps(service_account_key(fake_bq)))
    fake_bq.fail(503, "temporarily_unavailable", method="POST", count=100)
    with pytest.raises(RetryableFailure, match="BigQuery did not start the job, try again: RefreshError: "):
        connector.create(make_template(), "", None, make_metadata())
    assert fake_bq.requests_to("POST", "insert") == []


def test_credentials_that_break_while_the_job_runs_fail_the_poll(fake_bq, monkeypatch) -> None:
    fake_bq.plan(states=["RUNNING"])
    meta = connector.create(make_template(), "", None, make_metadata())
    monkeypatch.setenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", json.dumps({"type": "external_account"}))
    resource = connector.get(meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("BigQuery jobs.get failed: CredentialsError: ")
    assert resource.log_links[0].name == "BigQuery Console"


def test_an_unknown_job_fails_the_task(fake_bq) -> None:
    resource = connector.get(BigQueryMetadata(job_id="gone", project="proj", location="US"))
    assert resource.phase == TaskExecution.FAILED
    assert "gone not found" in resource.message


# -------------------------------------------------------------------------------------- idempotence
def test_a_retried_create_adopts_the_job_it_already_started(fake_bq) -> None:
    template = make_template()
    first = connector.create(template, "", None, make_metadata(attempt=0))
    again = connector.create(template, "", None, make_metadata(attempt=0))
    assert again == first
    assert len(fake_bq.jobs) == 1
    assert [r.status for r in fake_bq.requests_to("POST", "insert")] == [200, 409]

    next_attempt = connector.create(template, "", None, make_metadata(attempt=1))
    other_execution = connector.create(template, "", None, make_metadata(execution="exec2"))
    assert len({first.job_id, next_attempt.job_id, other_execution.job_id}) == 3
    assert len(fake_bq.jobs) == 3


def test_job_ids_fit_bigquerys_alphabet_and_length(fake_bq) -> None:
    meta = connector.create(make_template(), "", None, make_metadata(execution="ä b/c" * 400))
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", meta.job_id)
    no_metadata = {connector.create(make_template(), "", None, None).job_id for _ in range(2)}
    assert len(no_metadata) == 2 and all(re.fullmatch(r"flyte_[0-9a-f]{32}", j) for j in no_metadata)


def test_a_job_insert_that_timed_out_but_landed_is_adopted(fake_bq) -> None:
    """The insert answers after the client gave up; its retry gets 409 and the job is adopted."""
    fake_bq.delay(_gcp.REQUEST_TIMEOUT + 0.5, method="POST", count=1)
    meta = connector.create(make_template(), "", None, make_metadata())
    assert [r.status for r in fake_bq.requests_to("POST", "insert")] == [200, 409]
    assert len(fake_bq.jobs) == 1
    assert meta.job_id == next(iter(fake_bq.jobs.values())).job_id
    assert connector.get(meta).phase == TaskExecution.SUCCEEDED


# ----------------------------------------------------------------------------- results and labels
def test_results_only_when_the_task_declares_them(fake_bq) -> None:
    meta = connector.create(make_template(results=False), "", None, make_metadata())
    assert meta.has_results is False
    done = connector.get(BigQueryMetadata.decode(meta.encode()))
    assert done.phase == TaskExecution.SUCCEEDED and done.outputs is None


def test_labels_trace_the_job_to_its_execution(fake_bq) -> None:
    connector.create(make_template(), "", None, make_metadata(project="Big Project", workflow="wf.Daily-Report" * 9))
    labels = inserted_body(fake_bq)["configuration"]["labels"]
    assert labels == {
        "flyte-project": "big-project",
        "flyte-domain": "development",
        "flyte-execution": "exec1",
        "flyte-workflow": ("wf-daily-report" * 9)[:63],
        "flyte-task": "wf-query-task",
    }
    assert all(
        re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", k) and re.fullmatch(r"[a-z0-9_-]{0,63}", v) for k, v in labels.items()
    )


# ------------------------------------------------------------------------------------------- delete
def test_delete_cancels_a_running_job_and_tolerates_finished_or_unknown_ones(fake_bq) -> None:
    fake_bq.plan(states=["RUNNING"])
    meta = connector.create(make_template(), "", None, make_metadata())
    connector.delete(meta)
    assert connector.get(meta).phase == TaskExecution.ABORTED
    connector.delete(meta)  # finished now
    connector.delete(BigQueryMetadata(job_id="unknown", project="proj", location="US"))
    assert len(fake_bq.requests_to("POST", "cancel")) == 3


# --------------------------------------------------------------------------- deadlines and clients
def test_a_transient_error_is_retried_within_the_call(fake_bq) -> None:
    meta = connector.create(make_template(), "", None, make_metadata())
    fake_bq.fail(503, "backendError", method="GET")
    assert connector.get(meta).phase == TaskExecution.SUCCEEDED
    assert len(fake_bq.requests_to("GET")) == 2


@pytest.mark.slow
def test_a_slow_bigquery_gives_up_inside_propellers_ten_seconds(fake_bq) -> None:
    meta = connector.create(make_template(), "", None, make_metadata())
    fake_bq.delay(30, method="GET")
    start = time.monotonic()
    resource = connector.get(meta)
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    assert resource.phase == TaskExecution.RUNNING  # asked again at the next poll
    assert "Timeout" in resource.message


def test_clients_are_reused_per_project_location_and_credentials(fake_bq) -> None:
    a = _gcp.client("proj", "US")
    assert _gcp.client("proj", "US") is a
    assert _gcp.client("proj", "EU") is not a
    assert _gcp.client("other", "US") is not a


def test_at_most_32_clients_are_kept(fake_bq) -> None:
    """Project and location come from requests: random ones must not grow the cache without end."""
    first = _gcp.client("proj", "loc-0")
    for i in range(1, 33):
        _gcp.client("proj", f"loc-{i}")
    assert _gcp.client("proj", "loc-32") is _gcp.client("proj", "loc-32")
    assert _gcp.client("proj", "loc-0") is not first  # the least recently used went first


def service_account_key(fake_bq, email: str = "connector@proj.iam.gserviceaccount.com") -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": email,
        "token_uri": f"{fake_bq.url}/token",
    }


def token_requested_by(fake_bq) -> str:
    """The service account whose signed assertion asked the stand-in's token endpoint for a token."""
    (token_request,) = [r for r in fake_bq.requests if r.path == "/token"]
    payload = token_request.body["assertion"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"]


def test_credentials_come_from_the_connector_secret(fake_bq, monkeypatch) -> None:
    secret = service_account_key(fake_bq)
    monkeypatch.setenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", json.dumps(secret))
    connector.create(make_template(), "", None, make_metadata())
    (insert,) = fake_bq.requests_to("POST", "insert")
    assert insert.headers.get("authorization") == "Bearer fake-token"
    token_request = fake_bq.requests[0]
    assert token_request.path == "/token"
    assert token_request.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_google_application_credentials_win_over_anonymous_even_with_an_emulator(fake_bq, monkeypatch, tmp_path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(service_account_key(fake_bq, "from-file@proj.iam.gserviceaccount.com")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    connector.create(make_template(), "", None, make_metadata())
    (insert,) = fake_bq.requests_to("POST", "insert")
    assert insert.headers.get("authorization") == "Bearer fake-token"
    assert token_requested_by(fake_bq) == "from-file@proj.iam.gserviceaccount.com"


def test_the_connector_secret_wins_over_google_application_credentials(fake_bq, monkeypatch, tmp_path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(service_account_key(fake_bq, "from-file@proj.iam.gserviceaccount.com")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    secret = service_account_key(fake_bq, "from-secret@proj.iam.gserviceaccount.com")
    monkeypatch.setenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", json.dumps(secret))
    connector.create(make_template(), "", None, make_metadata())
    assert token_requested_by(fake_bq) == "from-secret@proj.iam.gserviceaccount.com"


def test_a_rate_limited_insert_is_a_retryable_failure(fake_bq) -> None:
    fake_bq.fail(429, "jobRateLimitExceeded", method="POST")
    with pytest.raises(RetryableFailure, match="BigQuery did not start the job, try again: TooManyRequests: 429"):
        connector.create(make_template(), "", None, make_metadata())


def test_without_a_secret_the_emulator_gets_anonymous_requests(fake_bq) -> None:
    connector.create(make_template(), "", None, make_metadata())
    (insert,) = fake_bq.requests_to("POST", "insert")
    assert "authorization" not in insert.headers
