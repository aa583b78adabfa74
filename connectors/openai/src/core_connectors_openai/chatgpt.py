"""The ChatGPT connector: one chat completion per task, answered in a single ExecuteTaskSync call.

Reads the templates flytekitplugins-openai's ``ChatGPTTask`` writes (task type ``chatgpt``, custom
``openai_organization`` and ``chatgpt_config``). Every failure becomes a phase with a message, never a server
error: FAILED when asking again cannot help, RETRYABLE_FAILED when it may.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import Resource, SyncConnectorBase, failed_resource
from core_connectors.templates import custom_dict

from . import _client
from ._util import input_value

TASK_TYPE = "chatgpt"

logger = logging.getLogger("core_connectors_openai.chatgpt")


class ChatGPTConnector(SyncConnectorBase):
    """``chatgpt_config`` is passed to ``chat.completions.create``; it must hold ``model``.

    Beyond flytekit's connector: ``system`` (a system prompt) and ``messages`` (a conversation to put before
    the ``message`` input) may be given in the config.
    """

    name = "ChatGPT Connector"

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = _client.DEFAULT_TIMEOUT,
        max_retries: int = _client.DEFAULT_MAX_RETRIES,
    ) -> None:
        super().__init__(task_type_name=TASK_TYPE)
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries

    async def do(self, task_template: Any, output_prefix: str = "", inputs: Any = None, **kwargs: Any) -> Resource:
        custom = custom_dict(task_template)
        try:
            request = _request(custom.get("chatgpt_config"), input_value(inputs, "message"))
        except (TypeError, ValueError) as e:  # a config or an input that makes no request (an offloaded message)
            return Resource(phase=TaskExecution.FAILED, message=str(e))

        try:
            key = _client.api_key()
            org = custom.get("openai_organization")
            client = _client.async_client(key, org, self.base_url, self.timeout, self.max_retries)
            completion = await asyncio.wait_for(client.chat.completions.create(**request), self.timeout)
        except TypeError as e:  # an unknown key in chatgpt_config
            return Resource(phase=TaskExecution.FAILED, message=f"chatgpt_config is not accepted by the SDK: {e}")
        except Exception as e:
            failure = _client.describe_error(e, timeout=self.timeout)
            return failed_resource(
                e, "OpenAI chat completion", retryable=failure.retryable, logger=logger, message=failure.message
            )
        return _resource(completion)


def _request(config: Any, message: Any) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create``: the config, with the messages built."""
    if not isinstance(config, dict) or not config.get("model"):
        raise ValueError("chatgpt_config must be a dict that holds 'model'")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"the input 'message' must be a str, got {type(message).__name__}")
    request = dict(config)
    request.pop("stream", None)  # one reply is returned, so the answer is never streamed
    system = request.pop("system", None)
    messages = list(request.pop("messages", None) or [])
    if system:
        messages.insert(0, {"role": "system", "content": system})
    if message:
        messages.append({"role": "user", "content": message})
    if not messages:
        raise ValueError("nothing to send: the input 'message' is empty and chatgpt_config has no 'messages'")
    request["messages"] = messages
    return request


def _resource(completion: Any) -> Resource:
    """SUCCEEDED with the reply text as ``o0``, or FAILED when the reply holds no text."""
    info: dict[str, Any] = {"id": completion.id, "model": completion.model}
    if completion.usage is not None:
        info["usage"] = completion.usage.to_dict(mode="json")
    if not completion.choices:
        return Resource(phase=TaskExecution.FAILED, message="OpenAI returned no choices", custom_info=info)
    choice = completion.choices[0]
    reply = choice.message
    if reply.content is None:
        if getattr(reply, "refusal", None):
            why = f"the model refused: {reply.refusal}"
        elif getattr(reply, "tool_calls", None):
            why = "the model answered with tool calls, which this task cannot return as text"
        else:
            why = f"the reply holds no text (finish_reason {choice.finish_reason!r})"
        return Resource(phase=TaskExecution.FAILED, message=why, custom_info=info)
    message = "the reply was cut short at max_tokens" if choice.finish_reason == "length" else None
    return Resource(phase=TaskExecution.SUCCEEDED, message=message, outputs={"o0": reply.content}, custom_info=info)
