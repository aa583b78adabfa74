"""core-connectors-openai: ChatGPT (sync) and OpenAI Batch (async) connectors, plus the batch file helpers.

This module is the plugin the ``flytekit.connectors`` entry point names. Importing it does not import the
openai SDK: the connectors import it on first use.
"""

from __future__ import annotations

from typing import Any

from core_connectors import hookimpl

from ._client import OpenAIConnectorError
from .batch import BatchEndpointConnector, BatchEndpointMetadata
from .chatgpt import ChatGPTConnector
from .files import download_batch_results, upload_jsonl

__version__ = "0.1.0"

__all__ = [
    "BatchEndpointConnector",
    "BatchEndpointMetadata",
    "BatchEndpointTask",
    "ChatGPTConnector",
    "ChatGPTTask",
    "DownloadBatchResultsTask",
    "OpenAIConnectorError",
    "UploadJSONLFileTask",
    "download_batch_results",
    "provide_connectors",
    "upload_jsonl",
]

_TASKS = ("BatchEndpointTask", "ChatGPTTask", "DownloadBatchResultsTask", "UploadJSONLFileTask")


@hookimpl
def provide_connectors() -> list[Any]:
    return [ChatGPTConnector(), BatchEndpointConnector()]


def __getattr__(name: str) -> Any:
    # The task classes need the core's local runner; load them only when asked for.
    if name in _TASKS:
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
