"""What users do around a batch: upload its JSONL input, and download its output and error files.

flytekitplugins-openai does these in container tasks with their own secret plumbing; here they are plain
functions using the same secret as the connectors (``FLYTE_OPENAI_API_KEY``), so they work from a script, a
notebook or any task. They use the SDK's synchronous client: uploads and downloads may take minutes.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _client

__all__ = ["FINISHED_STATUSES", "download_batch_results", "upload_jsonl"]

FINISHED_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


def upload_jsonl(
    path: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    organization: str | None = None,
    base_url: str | None = None,
    purpose: str = "batch",
    validate: bool = True,
) -> str:
    """Upload a JSONL file of batch requests and return its file id.

    With ``validate`` every line is checked to be a JSON object first, so a typo fails here with its line
    number instead of hours later as a failed batch.
    """
    path = Path(path)
    if validate:
        _check_jsonl(path)
    key = _client.api_key(api_key)
    try:
        with _client.sync_client(key, organization, base_url) as client, path.open("rb") as f:
            # The SDK's Literal of purposes lags the API: pass the string on as given.
            return str(client.files.create(file=f, purpose=typing.cast(Any, purpose)).id)
    except Exception as e:
        raise _client.OpenAIConnectorError(f"cannot upload {path}: {_client.describe_error(e, key).message}") from None


def download_batch_results(
    batch: str | Mapping[str, Any],
    directory: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    organization: str | None = None,
    base_url: str | None = None,
) -> dict[str, Path]:
    """Download the output and error files of a finished batch into ``directory``.

    ``batch`` is a batch id or the batch object (the ``result`` output of the batch task). Returns the paths
    written, keyed ``"output"`` and ``"error"`` (a batch without errors has no error file). A batch that
    expired or was cancelled may still have partial output, which is downloaded too.
    """
    batch_id = batch if isinstance(batch, str) else str(batch["id"])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = _client.api_key(api_key)
    paths: dict[str, Path] = {}
    try:
        with _client.sync_client(key, organization, base_url) as client:
            found = client.batches.retrieve(batch_id)
            if found.status not in FINISHED_STATUSES:
                raise ValueError(f"batch {batch_id} is {found.status}; its results are not ready yet")
            for kind, file_id in (("output", found.output_file_id), ("error", found.error_file_id)):
                if file_id:
                    path = directory / f"{batch_id}_{kind}.jsonl"
                    with client.files.with_streaming_response.content(file_id) as response:
                        response.stream_to_file(path)
                    paths[kind] = path
    except ValueError:
        raise
    except Exception as e:
        message = _client.describe_error(e, key).message
        raise _client.OpenAIConnectorError(f"cannot download the results of batch {batch_id}: {message}") from None
    return paths


def _check_jsonl(path: Path) -> None:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path} line {number} is not JSON: {e}") from None
            if not isinstance(value, dict):
                raise ValueError(f"{path} line {number} is not a JSON object")
