"""Everything that touches google-cloud-bigquery: clients, credentials, deadlines, job configs, parameters.

Only the connector's methods import this module, so importing the plugin never loads the vendor SDK.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import json
import os
import threading
import time
import typing
from typing import Any

import requests
from flyteidl.core import types_pb2
from google.api_core import exceptions
from google.api_core.client_info import ClientInfo
from google.auth import exceptions as auth_exceptions
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from core_connectors import SecretNotFound, get_connector_secret
from core_connectors.literals import literal_to_python

from . import __version__

REQUEST_TIMEOUT = 3.0
"""Seconds one HTTP request may take."""
RETRY_DEADLINE = 6.0
"""Seconds all attempts of one call may take; with a last request's timeout, 9 s: inside propeller's 10 s
RPC deadline (the library's default retry runs for 600 s)."""
RETRY = DEFAULT_RETRY.with_timeout(RETRY_DEADLINE).with_delay(initial=0.25, maximum=2.0)

CREDENTIALS_SECRET = "google_application_credentials"
CREDENTIALS_FILE_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"

MAX_CLIENTS = 32
"""Clients kept (the least recently used goes first): project and location come from requests, so their
number has no bound of its own."""

_clients_lock = threading.Lock()
_default_credentials: Any = None


class CredentialsError(Exception):
    """The configured credentials (the connector secret or GOOGLE_APPLICATION_CREDENTIALS) cannot be used."""


# ---------------------------------------------------------------------------------------------- clients
def client(project: str, location: str | None) -> bigquery.Client:
    """One client per (project, location, credentials, endpoint), built on first use and then reused; at most
    ``MAX_CLIENTS`` of them."""
    creds_key, secret = _credentials_source()
    with _clients_lock:  # one client per key even when several threads ask for it at once
        return _client(project, location, creds_key, secret, os.environ.get(EMULATOR_HOST))


@functools.lru_cache(maxsize=MAX_CLIENTS)
def _client(project: str, location: str | None, creds_key: str, secret: str, endpoint: str | None) -> bigquery.Client:
    """``endpoint`` is only part of the key: the client reads BIGQUERY_EMULATOR_HOST itself. A failure (bad
    credentials) is not cached."""
    return bigquery.Client(
        project=project,
        location=location,
        credentials=_credentials(creds_key, secret),
        client_info=ClientInfo(user_agent=f"core-connectors-bigquery/{__version__}"),
    )


def _credentials_source() -> tuple[str, str]:
    """Which credentials to use. Explicit ones always win: the connector secret (keyed by its hash, so a
    rotated secret gets a new client), then the key file named by GOOGLE_APPLICATION_CREDENTIALS. Only when
    nothing is configured: anonymous against an emulator, else application default credentials."""
    try:
        secret = get_connector_secret(CREDENTIALS_SECRET)
    except SecretNotFound:
        secret = ""
    if not secret:
        secret = os.environ.get(CREDENTIALS_FILE_ENV, "").strip()
    if secret:
        return "secret:" + hashlib.sha256(secret.encode()).hexdigest(), secret
    if os.environ.get(EMULATOR_HOST):
        return "anonymous", ""
    return "default", ""


def _credentials(creds_key: str, secret: str) -> Any:
    """The secret (or GOOGLE_APPLICATION_CREDENTIALS) holds a service-account key (or an authorized-user JSON),
    or the path of one."""
    if creds_key == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    if creds_key == "default":
        global _default_credentials
        if _default_credentials is None:  # looked up once (it may ask the metadata server), then shared
            import google.auth

            _default_credentials, _ = google.auth.default(scopes=bigquery.Client.SCOPE)
        return _default_credentials
    where = f"the secret {CREDENTIALS_SECRET} (or {CREDENTIALS_FILE_ENV})"
    try:
        if secret.lstrip().startswith("{"):
            info = json.loads(secret)
        else:
            with open(secret) as f:
                info = json.load(f)
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "service_account":
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_info(info, scopes=bigquery.Client.SCOPE)
        if kind == "authorized_user":
            from google.oauth2 import credentials

            return credentials.Credentials.from_authorized_user_info(info, scopes=bigquery.Client.SCOPE)
    except (OSError, ValueError, auth_exceptions.DefaultCredentialsError) as e:  # unreadable, not JSON, malformed
        raise CredentialsError(f"{where} cannot be used: {type(e).__name__}: {e}") from e
    raise CredentialsError(f"{where} holds credentials of type {kind!r}: give a service account key")


# ---------------------------------------------------------------------------------------------- errors
def is_transient(error: BaseException) -> bool:
    """Whether a failed call may pass when made again: 429, 5xx, the retry budget spent on such errors,
    timeouts and dropped connections, a token endpoint that was down. Everything else (4xx, credentials
    that do not work, a TLS error) stays failed whatever the number of tries."""
    if isinstance(error, (exceptions.TooManyRequests, exceptions.ServerError, exceptions.RetryError)):
        return True
    if isinstance(error, exceptions.GoogleAPICallError):
        return error.code == 408
    if isinstance(error, auth_exceptions.GoogleAuthError):
        return isinstance(error, (auth_exceptions.TransportError, auth_exceptions.TimeoutError)) or bool(
            getattr(error, "retryable", False)
        )
    if isinstance(error, requests.exceptions.SSLError):
        return False
    return isinstance(
        error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)
    )


# ---------------------------------------------------------------------------------------------- calls
def start_query(
    project: str, location: str | None, sql: str, job_config: bigquery.QueryJobConfig, job_id: str
) -> bigquery.QueryJob:
    """Insert the job, or adopt the job with the same id that an earlier CreateTask already inserted.

    Raises what the client raises (``is_transient`` tells which errors may pass), or ``CredentialsError``."""
    deadline = time.monotonic() + RETRY_DEADLINE
    bq = client(project, location)
    try:
        return bq.query(
            sql,
            job_config=job_config,
            job_id=job_id,
            project=project,
            location=location,
            retry=RETRY,
            timeout=REQUEST_TIMEOUT,
            job_retry=None,
        )
    except exceptions.Conflict:
        pass
    left = max(deadline - time.monotonic(), 1.0)  # the whole create stays inside one budget
    retry = RETRY.with_timeout(left)
    job = bq.get_job(job_id, project=project, location=location, retry=retry, timeout=min(REQUEST_TIMEOUT, left))
    return typing.cast(bigquery.QueryJob, job)  # the job with our query's id is a query job


def get_job(project: str, location: str | None, job_id: str) -> Any:
    """The job, or None when BigQuery does not know it; other errors are raised (see ``is_transient``)."""
    try:
        return client(project, location).get_job(
            job_id, project=project, location=location, retry=RETRY, timeout=REQUEST_TIMEOUT
        )
    except exceptions.NotFound:
        return None


def cancel_job(project: str, location: str | None, job_id: str) -> None:
    """Ask BigQuery to cancel; a finished job stays as it was, an unknown one needs nothing."""
    try:
        client(project, location).cancel_job(
            job_id, project=project, location=location, retry=RETRY, timeout=REQUEST_TIMEOUT
        )
    except exceptions.NotFound:
        pass


def statistics(job: Any) -> dict[str, Any]:
    """What a finished job cost, for the task's custom info."""
    return {
        "statement_type": getattr(job, "statement_type", None),
        "total_bytes_processed": getattr(job, "total_bytes_processed", None),
        "total_bytes_billed": getattr(job, "total_bytes_billed", None),
        "slot_millis": getattr(job, "slot_millis", None),
        "cache_hit": getattr(job, "cache_hit", None),
    }


# --------------------------------------------------------------------------------- job config and inputs
def job_config(
    query_config: dict[str, Any], inputs: Any, declared: Any, labels: dict[str, str]
) -> bigquery.QueryJobConfig:
    """The template's QueryJobConfig settings (REST camelCase), the inputs as named parameters (replacing
    any parameter of the same name from the settings) and the execution's labels."""
    config = typing.cast(bigquery.QueryJobConfig, bigquery.QueryJobConfig.from_api_repr({"query": dict(query_config)}))
    params = query_parameters(inputs, declared)
    if params:
        names = {p.name for p in params}
        config.query_parameters = [p for p in config.query_parameters if p.name not in names] + params
    if labels:
        config.labels = labels
    return config


_SIMPLE_TO_BQ = {
    types_pb2.SimpleType.INTEGER: "INT64",
    types_pb2.SimpleType.FLOAT: "FLOAT64",
    types_pb2.SimpleType.STRING: "STRING",
    types_pb2.SimpleType.BOOLEAN: "BOOL",
    types_pb2.SimpleType.DATETIME: "TIMESTAMP",
    types_pb2.SimpleType.BINARY: "BYTES",
    types_pb2.SimpleType.STRUCT: "JSON",
}
"""flyteidl SimpleType numbers to BigQuery types, for None values and empty lists."""


def query_parameters(inputs: Any, declared: Any) -> list[Any]:
    """Each input as a named parameter ``@name``; ValueError naming the input when BigQuery cannot take it."""
    if inputs is None:
        return []
    params: list[Any] = []
    for name, literal in sorted(inputs.literals.items()):
        literal_type = declared.variables[name].type if declared is not None and name in declared.variables else None
        try:
            params.append(_parameter(name, literal, literal_type))
        except (TypeError, ValueError) as e:
            raise ValueError(f"input {name!r} cannot be a BigQuery query parameter: {e}") from None
    return params


def _parameter(name: str, literal: Any, literal_type: Any) -> Any:
    kind = _literal_kind(literal)
    if kind in ("blob", "structured_dataset", "schema"):
        raise TypeError(f"a {kind.replace('_', ' ')} is a file or table, not a value (pass its URI as a str)")
    return parameter(name, literal_to_python(literal), literal_type)


def parameter(name: str, value: Any, literal_type: Any = None) -> Any:
    """A named query parameter for a Python value; ``literal_type`` (the declared Flyte type) gives the type
    of a None and of an empty list's elements."""
    if isinstance(value, (list, tuple)):
        element_type = _declared_bq_type(literal_type.collection_type) if literal_type is not None else None
        types = {_bq_type(v) for v in value}
        if types == {"INT64", "FLOAT64"}:
            types = {"FLOAT64"}
        if len(types) > 1:
            raise TypeError(f"a list mixes {', '.join(sorted(types))}; BigQuery arrays hold one type")
        element_type = next(iter(types), element_type)
        if element_type is None:
            raise TypeError("an empty list of unknown element type")
        return bigquery.ArrayQueryParameter(name, element_type, [_bq_value(v, element_type) for v in value])
    bq_type = _bq_type(value) if value is not None else _declared_bq_type(literal_type)
    if bq_type is None:
        raise TypeError("None of unknown type (declare the input's type)")
    return bigquery.ScalarQueryParameter(name, bq_type, _bq_value(value, bq_type))


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, (bytes, bytearray)):
        return "BYTES"
    if isinstance(value, dict):
        return "JSON"
    if isinstance(value, (list, tuple)):
        raise TypeError("a list inside a list (BigQuery has no arrays of arrays)")
    if value is None:
        raise TypeError("a None inside a list (BigQuery arrays cannot hold NULL)")
    raise TypeError(f"BigQuery has no parameter type for {type(value).__name__}")


def _bq_value(value: Any, bq_type: str) -> Any:
    if value is None:
        return None
    if bq_type == "JSON":
        json.dumps(value)  # fail here, naming the input, rather than when the request is encoded
    if bq_type == "FLOAT64":
        return float(value)
    if bq_type == "TIMESTAMP" and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)  # Flyte datetimes are UTC
    return value


def _declared_bq_type(literal_type: Any) -> str | None:
    """The BigQuery type of a declared Flyte type; a union's first non-None variant decides."""
    if literal_type is None:
        return None
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        return _SIMPLE_TO_BQ.get(literal_type.simple)
    if kind == "map_value_type":
        return "JSON"
    if kind == "enum_type":
        return "STRING"
    if kind == "union_type":
        for variant in literal_type.union_type.variants:
            found = _declared_bq_type(variant)
            if found is not None:
                return found
    return None


def _literal_kind(literal: Any) -> str | None:
    if literal.WhichOneof("value") != "scalar":
        return literal.WhichOneof("value")
    scalar = literal.scalar
    if scalar.WhichOneof("value") == "union":
        return _literal_kind(scalar.union.value)
    return scalar.WhichOneof("value")
