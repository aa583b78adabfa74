"""Fixtures: the OpenAI stand-in, with a distinctive API key in the connector secret."""

from __future__ import annotations

import sys

import pytest

from core_connectors_openai.testing import serving_fake_openai

API_KEY = "sk-proj-DISTINCTIVEsecret0123456789abcdef"
"""Distinctive enough that a test can search every message and log line for it."""

JSONL = (
    b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one"}]}}\n'
    b'{"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "two"}]}}\n'
)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    """The stand-in, with the secret and OPENAI_BASE_URL pointing the connectors at it."""
    with serving_fake_openai(monkeypatch, API_KEY) as server:
        yield server


@pytest.fixture
def jsonl_file(tmp_path):
    """Two chat requests, as a batch input file."""
    path = tmp_path / "requests.jsonl"
    path.write_bytes(JSONL)
    return path


@pytest.fixture
def flytekit_openai():
    """flytekitplugins.openai; a skip on Python 3.13 only, where 1.16 raises on import (it has no default
    image for it), so that a broken install fails the tests everywhere else."""
    if sys.version_info >= (3, 13):
        pytest.skip("flytekitplugins-openai 1.16 does not import on Python 3.13")
    import flytekitplugins.openai as module

    return module
