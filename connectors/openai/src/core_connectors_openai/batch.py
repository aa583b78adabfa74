"""The OpenAI Batch connector: ``create`` starts a batch, propeller polls ``get``, ``delete`` cancels it.

Reads the templates flytekitplugins-openai's ``BatchEndpointTask`` writes (task type ``openai-batch``, custom
``openai_organization`` and ``config``, input ``input_file_id``, output ``result``: the batch object as a
dict). The handle is JSON, never a pickle; flytekit's pickled handles are refused with a reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from flyteidl.core import literals_pb2
from flyteidl.core.execution_pb2 import TaskExecution, TaskLog

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, ResourceMetaDecodeError, failed_resource
from core_connectors.literals import literal_type_for, python_to_literal
from core_connectors.templates import custom_dict

from . import _client
from ._util import input_value

TASK_TYPE = "openai-batch"
LOG_LINK = "https://platform.openai.com/batches/{batch_id}"
MAX_ERROR_LINES = 100

logger = logging.getLogger("core_connectors_openai.batch")

_PHASES = {
    "validating": TaskExecution.INITIALIZING,
    "in_progress": TaskExecution.RUNNING,
    "finalizing": TaskExecution.RUNNING,
    "cancelling": TaskExecution.RUNNING,
    "completed": TaskExecution.SUCCEEDED,
    "cancelled": TaskExecution.ABORTED,
    "expired": TaskExecution.FAILED,
    "failed": TaskExecution.FAILED,
}


EXECUTION_KEY = "flyte_task_execution"
"""The batch metadata key naming the task execution (and attempt) that created the batch."""
ADOPT_WINDOW = 100  # the most recent batches searched for one a retried CreateTask already started
_ENDED = frozenset({"failed", "expired", "cancelling", "cancelled"})


def _execution_key(task_execution_metadata: Any) -> str | None:
    """project/domain/execution/node/attempt: the same for propeller's retries of one CreateTask, new for the
    next attempt of the task (which must start a batch of its own)."""
    if task_execution_metadata is None:
        return None
    task_execution = task_execution_metadata.task_execution_id
    node = task_execution.node_execution_id
    execution = node.execution_id
    if not execution.name:
        return None
    key = f"{execution.project}/{execution.domain}/{execution.name}/{node.node_id}/{task_execution.retry_attempt}"
    return key[:512]  # OpenAI's limit for a metadata value


@dataclass
class BatchEndpointMetadata(ResourceMeta):
    """The batch to poll. ``error`` is set instead when the batch could not be created, so that ``get``
    fails the task with the reason rather than CreateTask failing with a server error."""

    batch_id: str
    openai_org: str | None = None
    error: str | None = None
    retryable: bool = False

    @classmethod
    def decode(cls, data: bytes) -> BatchEndpointMetadata:
        try:
            return super().decode(data)
        except ResourceMetaDecodeError as e:
            if data[:1] != b"\x80":
                raise
            # A pickle, as flytekitplugins-openai's connector wrote it: say whose, and which batch it names.
            batch_id = _pickled_batch_id(data)
            which = f"batch {batch_id}" if batch_id else "its batch"
            raise ResourceMetaDecodeError(
                f"{e}. The handle was written by flytekitplugins-openai's connector; {which} may still run on "
                "OpenAI (cancel it there if the task is not run again)."
            ) from None


def _pickled_batch_id(data: bytes) -> str | None:
    """The batch id in a pickled handle, read without unpickling: pickletools only parses the opcodes."""
    import pickletools

    try:
        strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
        return strings[strings.index("batch_id") + 1]
    except Exception:
        return None


class BatchEndpointConnector(AsyncConnectorBase[BatchEndpointMetadata]):
    name = "OpenAI Batch Endpoint Connector"

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = _client.DEFAULT_TIMEOUT,
        max_retries: int = _client.DEFAULT_MAX_RETRIES,
        log_link: str = LOG_LINK,
    ) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=BatchEndpointMetadata)
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.log_link = log_link

    async def _call(self, organization: str | None, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.batches.<method>(...)`` within the timeout, retries and their waits included."""
        key = _client.api_key()
        batches = _client.async_client(key, organization, self.base_url, self.timeout, self.max_retries).batches
        return await asyncio.wait_for(getattr(batches, method)(*args, **kwargs), self.timeout)

    async def create(
        self,
        task_template: Any,
        output_prefix: str = "",
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> BatchEndpointMetadata:
        custom = custom_dict(task_template)
        org = custom.get("openai_organization")
        config = custom.get("config") or {}
        if not isinstance(config, dict):
            return BatchEndpointMetadata(batch_id="", openai_org=org, error="config must be a dict")
        config = {"completion_window": "24h", "endpoint": "/v1/chat/completions", **config}
        try:
            input_file_id = input_value(inputs, "input_file_id")
        except (TypeError, ValueError) as e:  # an input that is not a value here (offloaded)
            return BatchEndpointMetadata(batch_id="", openai_org=org, error=f"the input 'input_file_id': {e}")
        if not isinstance(input_file_id, str) or not input_file_id:
            return BatchEndpointMetadata(batch_id="", openai_org=org, error="the input 'input_file_id' is missing")

        execution = _execution_key(task_execution_metadata)
        try:
            if execution:
                adopted = await self._created_for(org, execution, input_file_id)
                if adopted:
                    return BatchEndpointMetadata(batch_id=adopted, openai_org=org)
                config["metadata"] = {**(config.get("metadata") or {}), EXECUTION_KEY: execution}
            batch = await self._call(org, "create", **config, input_file_id=input_file_id)
        except TypeError as e:  # an unknown key in config
            return BatchEndpointMetadata(batch_id="", openai_org=org, error=f"config is not accepted by the SDK: {e}")
        except Exception as e:
            failure = _client.describe_error(e, timeout=self.timeout)
            told = failed_resource(
                e, "OpenAI batches.create", logger=logger, message=f"cannot create the batch: {failure.message}"
            )
            return BatchEndpointMetadata(batch_id="", openai_org=org, error=told.message, retryable=failure.retryable)
        return BatchEndpointMetadata(batch_id=batch.id, openai_org=org)

    async def _created_for(self, organization: str | None, execution: str, input_file_id: str) -> str | None:
        """The live batch an earlier CreateTask of this task execution started, if any: propeller retries a
        CreateTask whose reply it did not get, and a second batch would run (and bill) with nobody polling it."""
        page = await self._call(organization, "list", limit=ADOPT_WINDOW)
        for batch in page.data:
            if (
                (batch.metadata or {}).get(EXECUTION_KEY) == execution
                and batch.input_file_id == input_file_id
                and batch.status not in _ENDED
            ):
                return str(batch.id)
        return None

    async def get(self, resource_meta: BatchEndpointMetadata, **kwargs: Any) -> Resource:
        if resource_meta.error:
            phase = TaskExecution.RETRYABLE_FAILED if resource_meta.retryable else TaskExecution.FAILED
            return Resource(phase=phase, message=resource_meta.error)
        link = [TaskLog(name="OpenAI batch", uri=self.log_link.format(batch_id=resource_meta.batch_id))]
        try:
            batch = await self._call(resource_meta.openai_org, "retrieve", resource_meta.batch_id)
        except Exception as e:
            failure = _client.describe_error(e, timeout=self.timeout)
            told = failed_resource(e, "OpenAI batches.retrieve", logger=logger, message=failure.message)
            if failure.retryable:  # the batch runs on regardless: say so and ask again at the next poll
                message = f"status unknown, will ask again: {told.message}"
                return Resource(phase=TaskExecution.RUNNING, message=message, log_links=link)
            return Resource(phase=TaskExecution.FAILED, message=told.message, log_links=link)
        return batch_resource(batch, link)

    async def delete(self, resource_meta: BatchEndpointMetadata, **kwargs: Any) -> None:
        """Cancel the batch; one that is already finished, cancelled or unknown is fine."""
        if resource_meta.error or not resource_meta.batch_id:
            return
        try:
            await self._call(resource_meta.openai_org, "cancel", resource_meta.batch_id)
        except Exception as e:
            failure = _client.describe_error(e, timeout=self.timeout)
            if failure.status_code in (400, 404, 409):
                logger.info("batch %s needs no cancelling: %s", resource_meta.batch_id, failure.message)
                return
            raise _client.OpenAIConnectorError(
                f"cannot cancel batch {resource_meta.batch_id}: {failure.message}"
            ) from None


def batch_resource(batch: Any, log_links: list[TaskLog] | None = None) -> Resource:
    """The Resource for a batch object: its phase, a message, request counts, and outputs when completed."""
    status = batch.status
    phase = _PHASES.get(status)
    counts = batch.request_counts.to_dict(mode="json") if batch.request_counts is not None else None
    info: dict[str, Any] = {"batch_id": batch.id, "status": status}
    if counts is not None:
        info["request_counts"] = counts
    if phase is None:
        return Resource(
            phase=TaskExecution.RUNNING,
            message=f"unknown batch status {status!r}; still polling",
            log_links=log_links,
            custom_info=info,
        )
    message = _progress(counts) if counts else None
    if status in ("failed", "expired"):
        errors = _errors(batch)
        message = f"batch {status}" + (f" ({message})" if message else "") + (f":\n{errors}" if errors else "")
    outputs = None
    if phase == TaskExecution.SUCCEEDED:
        if counts and counts.get("failed"):
            message = f"completed with failures: {message} (error file {batch.error_file_id})"
        result = python_to_literal(batch.to_dict(mode="json"), literal_type_for(dict))
        outputs = literals_pb2.LiteralMap(literals={"result": result})
    return Resource(phase=phase, message=message, log_links=log_links, outputs=outputs, custom_info=info)


def _progress(counts: dict[str, Any]) -> str:
    return f"{counts.get('completed', 0)} of {counts.get('total', 0)} requests done, {counts.get('failed', 0)} failed"


def _errors(batch: Any) -> str | None:
    """Every error line as ``line N: code: message`` (capped, so the message stays a readable size)."""
    data = (batch.errors.data if batch.errors is not None else None) or []
    lines = []
    for err in data[:MAX_ERROR_LINES]:
        where = f"line {err.line}: " if err.line is not None else ""
        lines.append(f"{where}{err.code or 'error'}" + (f": {err.message}" if err.message else ""))
    if len(data) > MAX_ERROR_LINES:
        lines.append(f"... and {len(data) - MAX_ERROR_LINES} more errors")
    return "\n".join(lines) or None
