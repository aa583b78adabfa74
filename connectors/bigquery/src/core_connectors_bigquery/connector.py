"""The BigQuery connector: runs a task's SQL as a BigQuery query job, wire-compatible with flytekit's.

This module does not import google-cloud-bigquery: ``_gcp`` does, and the methods load it when first
called, so listing connectors and starting the service stay fast.

The methods are plain ``def``: every BigQuery call blocks (requests under the hood), and the service runs
plain methods in its own bounded thread pool, sized by its configuration. ``asyncio.to_thread`` would
instead use the event loop's default executor, which the service does not size or account for.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from flyteidl.core import literals_pb2
from flyteidl.core.execution_pb2 import TaskExecution, TaskLog

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, RetryableFailure, failed_resource
from core_connectors.literals import structured_dataset_literal
from core_connectors.templates import custom_dict

TASK_TYPE = "bigquery_query_job_task"
RESULTS = "results"
"""The output a BigQueryTask declares when the query produces a table."""

RETRYABLE_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "badGateway", "jobRateLimitExceeded"}
)
"""errorResult reasons that say "try again" (https://cloud.google.com/bigquery/docs/error-messages)."""

_TEMPLATE_KEYS = ("ProjectID", "Location", "Domain")
_JOB_ID_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]+")


@dataclass
class BigQueryMetadata(ResourceMeta):
    """The job's handle. ``job_id``, ``project`` and ``location`` are the keys flytekit's connector writes, so
    its running jobs can be polled and cancelled here; the others have defaults so its metadata decodes."""

    job_id: str
    project: str
    location: str | None = None
    has_results: bool = True
    """Whether the task declares the ``results`` output (GetTask carries no template to tell)."""
    error: str | None = None
    """Why no job was started (a bad input or a rejected job); ``get`` then reports FAILED with it."""


class BigQueryConnector(AsyncConnectorBase[BigQueryMetadata]):
    name = "Bigquery Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=BigQueryMetadata)

    def create(
        self,
        task_template: Any,
        output_prefix: str = "",
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> BigQueryMetadata:
        from . import _gcp

        custom = custom_dict(task_template)
        project = custom.get("ProjectID")
        location = custom.get("Location") or None
        has_results = RESULTS in task_template.interface.outputs.variables
        job_id = job_id_for(task_execution_metadata)
        if not project:
            return BigQueryMetadata(
                job_id="", project="", has_results=has_results, error='custom["ProjectID"] is empty'
            )
        query_config = {k: v for k, v in custom.items() if k not in _TEMPLATE_KEYS}
        try:
            job_config = _gcp.job_config(
                query_config, inputs, task_template.interface.inputs, labels_for(task_execution_metadata)
            )
        except ValueError as e:  # an input BigQuery cannot take fails the task; it is not the service's error
            return BigQueryMetadata(
                job_id="", project=project, location=location, has_results=has_results, error=str(e)
            )
        try:
            job = _gcp.start_query(project, location, task_template.sql.statement, job_config, job_id)
        except Exception as e:  # whatever the client raised: the task fails, or propeller asks again
            if _gcp.is_transient(e):  # the same job id then adopts a job that did start
                raise RetryableFailure(f"BigQuery did not start the job, try again: {type(e).__name__}: {e}") from None
            error = failed_resource(e, "BigQuery jobs.insert").message  # logged once, told at every poll
            return BigQueryMetadata(
                job_id=job_id, project=project, location=location, has_results=has_results, error=error
            )
        return BigQueryMetadata(job_id=job.job_id, project=job.project, location=job.location, has_results=has_results)

    def get(self, resource_meta: BigQueryMetadata, **kwargs: Any) -> Resource:
        from . import _gcp

        meta = resource_meta
        if meta.error:
            return Resource(phase=TaskExecution.FAILED, message=meta.error)
        log_links = [console_link(meta)]
        try:
            job = _gcp.get_job(meta.project, meta.location, meta.job_id)
        except Exception as e:
            return poll_failure(e, log_links)
        if job is None:
            message = f"BigQuery job {meta.job_id} not found in project {meta.project}, location {meta.location}"
            return Resource(phase=TaskExecution.FAILED, message=message, log_links=log_links)
        if job.state != "DONE":
            phase = TaskExecution.RUNNING if job.state == "RUNNING" else TaskExecution.INITIALIZING
            return Resource(phase=phase, message=job.state, log_links=log_links)
        info = {k: v for k, v in _gcp.statistics(job).items() if v is not None}
        if job.error_result:
            phase, message = failure(job.error_result)
            return Resource(phase=phase, message=message, log_links=log_links, custom_info=info or None)
        warnings = job.errors or []
        message = "DONE" + (f" with {len(warnings)} warning(s): {describe(warnings[0])}" if warnings else "")
        outputs = None
        dst = job.destination
        if meta.has_results and dst is not None:
            uri = f"bq://{dst.project}:{dst.dataset_id}.{dst.table_id}"
            outputs = literals_pb2.LiteralMap(literals={RESULTS: structured_dataset_literal(uri)})
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=message,
            log_links=log_links,
            outputs=outputs,
            custom_info=info or None,
        )

    def delete(self, resource_meta: BigQueryMetadata, **kwargs: Any) -> None:
        """Cancel the job; a job that finished, never started or is unknown needs nothing."""
        from . import _gcp

        if resource_meta.job_id and not resource_meta.error:
            _gcp.cancel_job(resource_meta.project, resource_meta.location, resource_meta.job_id)


# ------------------------------------------------------------------------------------------------ helpers
def console_link(meta: BigQueryMetadata) -> TaskLog:
    """The link flytekit's connector shows, byte for byte."""
    uri = (
        f"https://console.cloud.google.com/bigquery?project={meta.project}"
        f"&j=bq:{meta.location}:{meta.job_id}&page=queryresults"
    )
    return TaskLog(uri=uri, name="BigQuery Console")


def poll_failure(error: Exception, log_links: list[TaskLog]) -> Resource:
    """A jobs.get that failed. A permanent error (403, 400, credentials) fails the task. A transient one (429,
    5xx, a timeout) leaves it RUNNING, asked again at the next poll: the job runs on in BigQuery, while a
    failed attempt would start the query a second time (and, without retries left, fail the task)."""
    from . import _gcp

    if _gcp.is_transient(error):
        told = failed_resource(error, "BigQuery jobs.get", retryable=True)
        message = f"status unknown, will ask again: {told.message}"
        return Resource(phase=TaskExecution.RUNNING, message=message, log_links=log_links)
    told = failed_resource(error, "BigQuery jobs.get")
    return Resource(phase=told.phase, message=told.message, log_links=log_links)


def failure(error_result: dict[str, Any]) -> tuple[int, str]:
    """The phase and message for a job that ended with ``errorResult``."""
    reason = error_result.get("reason", "")
    if reason == "stopped":
        phase = TaskExecution.ABORTED
    elif reason in RETRYABLE_REASONS:
        phase = TaskExecution.RETRYABLE_FAILED
    else:
        phase = TaskExecution.FAILED
    return phase, describe(error_result)


def describe(error: dict[str, Any]) -> str:
    """``reason at location: message``, the three things a user needs to find the fault."""
    where = f" at {error['location']}" if error.get("location") else ""
    return f"{error.get('reason', 'error')}{where}: {error.get('message', '')}"


def job_id_for(task_execution_metadata: Any) -> str:
    """A job id that is the same for the same task execution and attempt, so a retried CreateTask finds the
    job it already started; random without an execution id (local runs). BigQuery allows letters, digits,
    ``_`` and ``-``, up to 1024 characters."""
    tid = task_execution_metadata.task_execution_id if task_execution_metadata is not None else None
    if tid is None or not tid.node_execution_id.execution_id.name:
        return f"flyte_{uuid.uuid4().hex}"
    execution = tid.node_execution_id.execution_id
    identity = (
        execution.project,
        execution.domain,
        execution.name,
        tid.node_execution_id.node_id,
        tid.task_id.project,
        tid.task_id.domain,
        tid.task_id.name,
        tid.task_id.version,
        str(tid.retry_attempt),
    )
    digest = hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:16]
    readable = _JOB_ID_INVALID.sub("_", f"{execution.name}_{tid.node_execution_id.node_id}")[:200]
    return f"flyte_{readable}_{tid.retry_attempt}_{digest}"


def labels_for(task_execution_metadata: Any) -> dict[str, str]:
    """Labels that trace a job's cost back to its Flyte execution, within BigQuery's label rules."""
    if task_execution_metadata is None:
        return {}
    tid = task_execution_metadata.task_execution_id
    execution = tid.node_execution_id.execution_id
    raw = {
        "flyte-project": execution.project,
        "flyte-domain": execution.domain,
        "flyte-execution": execution.name,
        "flyte-workflow": task_execution_metadata.labels.get("workflow-name", ""),
        "flyte-task": tid.task_id.name,
    }
    return {k: label_value(v) for k, v in raw.items() if v}


def label_value(text: str) -> str:
    """Lower-case letters, digits, ``_`` and ``-``, at most 63 characters."""
    return _LABEL_INVALID.sub("-", text.lower())[:63]
