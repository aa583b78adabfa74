"""The ChatGPT connector against the stand-in, through the real openai client."""

from __future__ import annotations

import asyncio
import logging

import pytest
from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors.literals import python_to_literal_map
from core_connectors_openai import ChatGPTConnector, _client
from core_connectors_openai.testing import chatgpt_template

API_KEY = "sk-proj-DISTINCTIVEsecret0123456789abcdef"  # as in conftest


def chat_template(config, org="org-test"):
    return chatgpt_template(config, org)


def inputs(**values):
    return python_to_literal_map(values)


pytestmark = pytest.mark.network

CHAT = "/v1/chat/completions"


async def test_reply_becomes_o0_and_the_request_is_what_the_api_expects(fake):
    template = chat_template({"model": "gpt-4o-mini", "max_tokens": 100, "n": 1, "seed": 7, "temperature": 0.5})
    before = template.SerializeToString()

    resource = await ChatGPTConnector().do(template, "", inputs(message="hello"))

    assert resource.phase == TaskExecution.SUCCEEDED
    assert resource.outputs == {"o0": "echo: hello"}
    assert resource.custom_info["usage"]["total_tokens"] == 5
    idl = resource.to_flyte_idl_sync({"o0": template.interface.outputs.variables["o0"].type})
    assert idl.outputs.literals["o0"].scalar.primitive.string_value == "echo: hello"
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["openai-organization"] == "org-test"
    body = request.body
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 100 and type(body["max_tokens"]) is int  # not 100.0 from the Struct
    assert type(body["n"]) is int and type(body["seed"]) is int and body["temperature"] == 0.5
    assert template.SerializeToString() == before  # the template is never mutated


async def test_system_prompt_and_messages_come_before_the_input(fake):
    config = {
        "model": "m",
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    }
    resource = await ChatGPTConnector().do(chat_template(config), "", inputs(message="and now?"))
    assert resource.phase == TaskExecution.SUCCEEDED
    assert fake.requests[0].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and now?"},
    ]
    assert "system" not in fake.requests[0].body


@pytest.mark.parametrize(
    "config, message, why",
    [
        ({"temperature": 1}, "x", "'model'"),
        ({"model": "m"}, "", "nothing to send"),
        ({"model": "m", "messages": 5}, "x", "not iterable"),  # a TypeError, once an INTERNAL of the service
    ],
)
async def test_a_bad_config_fails_without_calling_the_api(fake, config, message, why):
    resource = await ChatGPTConnector().do(chat_template(config), "", inputs(message=message))
    assert resource.phase == TaskExecution.FAILED
    assert why in resource.message
    assert fake.requests == []


async def test_an_unknown_config_key_fails_the_task(fake):
    resource = await ChatGPTConnector().do(chat_template({"model": "m", "no_such_option": 1}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.FAILED
    assert "no_such_option" in resource.message


async def test_one_client_per_key_org_and_base_url_is_reused(fake):
    connector = ChatGPTConnector()
    for _ in range(3):
        await connector.do(chat_template({"model": "m"}), "", inputs(message="x"))
    await connector.do(chat_template({"model": "m"}, org="org-other"), "", inputs(message="x"))
    clients = _client._clients[asyncio.get_running_loop()]
    assert len(clients) == 2
    assert all(API_KEY not in repr(key) for key in clients)
    first = next(iter(clients.values()))
    assert first.max_retries == _client.DEFAULT_MAX_RETRIES and first.timeout == _client.DEFAULT_TIMEOUT


@pytest.mark.parametrize(
    "status, phase",
    [
        (400, TaskExecution.FAILED),
        (403, TaskExecution.FAILED),
        (404, TaskExecution.FAILED),
        (429, TaskExecution.RETRYABLE_FAILED),
        (500, TaskExecution.RETRYABLE_FAILED),
        (503, TaskExecution.RETRYABLE_FAILED),
    ],
)
async def test_api_errors_become_phases_with_the_api_message(fake, status, phase):
    fake.respond("POST", CHAT, status, headers={"retry-after": "0"}, times=5)
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == phase
    assert f"OpenAI API error {status}" in resource.message and f"scripted error {status}" in resource.message
    expected_calls = 2 if phase == TaskExecution.RETRYABLE_FAILED else 1  # one quick retry, no more
    assert len(fake.requests) == expected_calls


async def test_a_storm_of_failures_gets_a_few_log_lines_and_every_reply_its_error_id(fake, caplog):
    fake.respond("POST", CHAT, 429, headers={"retry-after": "0"}, times=100)
    connector = ChatGPTConnector(max_retries=0)
    replies = [await connector.do(chat_template({"model": "m"}), "", inputs(message="x")) for _ in range(20)]
    assert all(r.phase == TaskExecution.RETRYABLE_FAILED and "OpenAI API error 429" in r.message for r in replies)
    assert len({r.message for r in replies}) == 20  # each with its own error id, as its log line if it has one
    lines = [r for r in caplog.records if r.name == "core_connectors_openai.chatgpt"]
    assert 1 <= len(lines) <= 5 and all("Traceback" in r.getMessage() for r in lines)


async def test_a_429_with_retry_after_is_retried_once_and_then_succeeds(fake):
    fake.respond("POST", CHAT, 429, headers={"retry-after": "0.2"})
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.SUCCEEDED
    assert fake.paths() == [CHAT, CHAT]


async def test_a_429_asking_for_longer_than_the_budget_is_retryable_within_the_budget(fake):
    fake.respond("POST", CHAT, 429, headers={"retry-after": "30"}, times=2)
    connector = ChatGPTConnector(timeout=0.5)
    resource = await connector.do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert "did not answer within 0.5 s" in resource.message


async def test_a_slow_answer_times_out_as_retryable(fake):
    fake.respond("POST", CHAT, 200, None, delay=3, times=2)
    resource = await ChatGPTConnector(timeout=0.5).do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert "did not answer" in resource.message


async def test_an_unreachable_api_is_retryable(fake):
    connector = ChatGPTConnector(base_url="http://127.0.0.1:9/v1", max_retries=0)  # the constructor wins
    resource = await connector.do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert "cannot reach the OpenAI API" in resource.message
    assert fake.requests == []


async def test_the_api_key_never_shows_in_messages_or_logs(fake, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    fake.api_key = "sk-the-only-valid-key"  # so ours is refused, and the stand-in echoes it back
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.FAILED
    assert "401" in resource.message and "invalid_api_key" in resource.message
    assert API_KEY not in resource.message
    assert API_KEY not in caplog.text
    assert API_KEY[:12] not in resource.message + caplog.text  # not even most of it


async def test_a_missing_secret_fails_with_where_to_put_it(fake, monkeypatch):
    monkeypatch.delenv("_FSEC_FLYTE_OPENAI_API_KEY")
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", "/nonexistent")
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.FAILED
    assert "_FSEC_FLYTE_OPENAI_API_KEY" in resource.message and "OPENAI_API_KEY" in resource.message


async def test_openai_api_key_is_the_fallback_for_local_runs(fake, monkeypatch):
    monkeypatch.delenv("_FSEC_FLYTE_OPENAI_API_KEY")
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", "/nonexistent")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.SUCCEEDED


TOOL = {"name": "f", "arguments": "{}"}


def _reply(message: dict, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
    }


@pytest.mark.parametrize(
    "message, finish_reason, why",
    [
        ({"content": None, "refusal": "I cannot help with that"}, "stop", "the model refused: I cannot help"),
        (
            {
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            "tool_calls",
            "tool calls",
        ),
        ({"content": None}, "content_filter", "content_filter"),
    ],
)
async def test_a_reply_without_text_fails_and_says_why(fake, message, finish_reason, why):
    fake.respond("POST", CHAT, 200, _reply(message, finish_reason))
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.FAILED
    assert why in resource.message


async def test_a_truncated_reply_succeeds_and_says_so(fake):
    fake.respond("POST", CHAT, 200, _reply({"content": "partial"}, "length"))
    resource = await ChatGPTConnector().do(chat_template({"model": "m"}), "", inputs(message="x"))
    assert resource.phase == TaskExecution.SUCCEEDED and resource.outputs == {"o0": "partial"}
    assert "max_tokens" in resource.message
