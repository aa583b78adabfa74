"""Tasks to call from Python without flytekit: the same templates as flytekitplugins-openai, run locally.

``ChatGPTTask`` and ``BatchEndpointTask`` render the TaskTemplates that flytekitplugins-openai's tasks of the
same names render (task type, ``custom``, input and output names), and calling one runs it through this
package's connector in-process. ``UploadJSONLFileTask`` and ``DownloadBatchResultsTask`` wrap the file
helpers with the same calling convention; they run in this process only (no connector serves them).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from typing import Any

from flyteidl.core import literals_pb2

from core_connectors.literals import python_to_literal_map
from core_connectors.local import AsyncConnectorExecutorMixin, ConnectorTask, SyncConnectorExecutorMixin

from . import files
from .batch import TASK_TYPE as BATCH_TASK_TYPE
from .chatgpt import TASK_TYPE as CHATGPT_TASK_TYPE

__all__ = ["BatchEndpointTask", "ChatGPTTask", "DownloadBatchResultsTask", "UploadJSONLFileTask"]


class ChatGPTTask(SyncConnectorExecutorMixin, ConnectorTask):
    """``ChatGPTTask(name, chatgpt_config={"model": ...})(message="...")`` returns the reply text."""

    def __init__(
        self, name: str, chatgpt_config: Mapping[str, Any], openai_organization: str | None = None, **kwargs: Any
    ):
        if "model" not in chatgpt_config:
            raise ValueError("The 'model' configuration variable is required in chatgpt_config")
        custom = {"openai_organization": openai_organization, "chatgpt_config": dict(chatgpt_config)}
        super().__init__(name, CHATGPT_TASK_TYPE, custom=custom, inputs={"message": str}, outputs={"o0": str}, **kwargs)


class BatchEndpointTask(AsyncConnectorExecutorMixin, ConnectorTask):
    """``BatchEndpointTask(name, config={})(input_file_id="file-...")`` waits for the batch and returns it as
    a dict (``output_file_id``, ``error_file_id``, ``request_counts``, ...)."""

    def __init__(
        self, name: str, config: Mapping[str, Any] | None = None, openai_organization: str | None = None, **kwargs: Any
    ):
        custom = {"openai_organization": openai_organization, "config": dict(config or {})}
        super().__init__(
            name, BATCH_TASK_TYPE, custom=custom, inputs={"input_file_id": str}, outputs={"result": dict}, **kwargs
        )


class _InProcessTask(ConnectorTask):
    """A ConnectorTask whose work is a plain function of this package, not a connector: ``execute`` calls it
    directly (in a thread when awaited), so nothing is registered and no service ever sees these tasks."""

    def _run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, **kwargs: Any) -> literals_pb2.LiteralMap:
        self.local_run(**kwargs)  # checks the inputs against the interface, as for any task
        return python_to_literal_map(self._run(**kwargs), self.task_template().interface.outputs)

    async def aexecute(self, **kwargs: Any) -> literals_pb2.LiteralMap:
        return await asyncio.to_thread(self.execute, **kwargs)


class UploadJSONLFileTask(_InProcessTask):
    """``UploadJSONLFileTask(name)(jsonl_in="requests.jsonl")`` uploads the file and returns its file id."""

    def __init__(self, name: str, openai_organization: str | None = None, **kwargs: Any):
        super().__init__(
            name,
            "openai-file-upload-local",
            custom={"openai_organization": openai_organization},
            inputs={"jsonl_in": str},
            outputs={"result": str},
            **kwargs,
        )
        self.openai_organization = openai_organization

    def _run(self, jsonl_in: str) -> dict[str, Any]:
        return {"result": files.upload_jsonl(jsonl_in, organization=self.openai_organization)}


class DownloadBatchResultsTask(_InProcessTask):
    """``DownloadBatchResultsTask(name)(batch_endpoint_result=batch)`` downloads the output and error files
    of a finished batch (the ``result`` of BatchEndpointTask) and returns their paths (None when absent)."""

    def __init__(self, name: str, openai_organization: str | None = None, directory: str | None = None, **kwargs: Any):
        super().__init__(
            name,
            "openai-batch-download-local",
            custom={"openai_organization": openai_organization},
            inputs={"batch_endpoint_result": dict},
            outputs={"output_file": str | None, "error_file": str | None},
            **kwargs,
        )
        self.openai_organization = openai_organization
        self.directory = directory

    def _run(self, batch_endpoint_result: dict[str, Any]) -> dict[str, Any]:
        directory = self.directory or tempfile.mkdtemp(prefix="openai-batch-")
        paths = files.download_batch_results(batch_endpoint_result, directory, organization=self.openai_organization)
        return {"output_file": _str(paths.get("output")), "error_file": _str(paths.get("error"))}


def _str(path: Any) -> str | None:
    return None if path is None else str(path)
