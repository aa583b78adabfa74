"""The batch helpers: upload a JSONL file, download a finished batch's files; plain and as local tasks."""

from __future__ import annotations

import openai
import pytest

from core_connectors_openai import OpenAIConnectorError, download_batch_results, upload_jsonl

pytestmark = pytest.mark.network

API_KEY = "sk-proj-DISTINCTIVEsecret0123456789abcdef"  # as in conftest


def test_upload_returns_the_file_id_and_sends_the_file(fake, jsonl_file):
    file_id = upload_jsonl(jsonl_file)
    assert fake.files[file_id] == jsonl_file.read_bytes()
    (request,) = fake.requests
    assert request.path == "/v1/files" and request.body["purpose"] == b"batch"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"  # the connectors' secret


def test_a_line_that_is_not_json_fails_before_uploading(fake, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"custom_id": "a"}\n\n{"custom_id": \n')
    with pytest.raises(ValueError, match="line 3 is not JSON"):
        upload_jsonl(path)
    assert fake.requests == []


def _batch(fake, jsonl_file):
    """A batch created through the API, as the batch connector would create it."""
    client = openai.OpenAI(api_key=API_KEY, base_url=fake.base_url)
    file_id = upload_jsonl(jsonl_file)
    created = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    return client.batches.retrieve(created.id)


def test_download_writes_the_output_and_error_files(fake, jsonl_file, tmp_path):
    fake.script_batches([{"status": "completed", "request_counts": {"total": 2, "completed": 1, "failed": 1}}])
    batch = _batch(fake, jsonl_file)
    for given in (batch.id, batch.to_dict()):  # an id, or the batch task's result
        paths = download_batch_results(given, tmp_path / "out")
        assert sorted(paths) == ["error", "output"]
        output = paths["output"].read_text()
        assert output.count("\n") == 2 and '"custom_id": "r1"' in output
        assert paths["error"].read_bytes() == fake.files[batch.error_file_id]


def test_download_of_an_unfinished_batch_says_so(fake, jsonl_file, tmp_path):
    fake.script_batches(["in_progress"])
    batch = _batch(fake, jsonl_file)
    with pytest.raises(ValueError, match=f"batch {batch.id} is in_progress"):
        download_batch_results(batch.id, tmp_path)


def test_helper_errors_never_show_the_key(fake, jsonl_file, tmp_path):
    fake.api_key = "sk-some-other-valid-key"
    with pytest.raises(OpenAIConnectorError) as info:
        upload_jsonl(jsonl_file)
    assert "401" in str(info.value) and API_KEY not in str(info.value)
    with pytest.raises(OpenAIConnectorError, match="404|401") as info:
        download_batch_results("batch-1", tmp_path)
    assert API_KEY not in str(info.value) and info.value.__cause__ is None
