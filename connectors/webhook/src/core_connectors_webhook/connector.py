"""The webhook connector: flytekit's ``webhook`` task type, answered in one call (ExecuteTaskSync).

It sends the request a WebhookTask describes and returns the output ``info`` that flytekit's connector
returns (``status_code``, ``response_data``, and ``input_data`` / ``url`` when asked), as the msgpack dict that
flytekit's ``dict`` type reads. Unlike flytekit's: every 2xx succeeds; 429, 5xx, timeouts and connection
errors are retryable; secrets come from ``{secrets.NAME}`` and never come back; the body read is bounded;
and the operator's outbound rules are checked on the resolved addresses before any connection is opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import Resource, SecretNotFound, SyncConnectorBase, get_connector_secret
from core_connectors.literals import literal_type_for, python_to_literal_map
from core_connectors.secrets import scrub

from .destinations import DestinationDenied, DestinationPolicy
from .request import TemplateError, WebhookRequest, webhook_request

if TYPE_CHECKING:
    import httpcore

    from ._http import Clients

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_BYTES_ENV",
    "SECRETS_ENV",
    "SUCCESS_MESSAGE",
    "TASK_TYPE",
    "WebhookConnector",
]

TASK_TYPE = "webhook"
SUCCESS_MESSAGE = "Webhook was successfully invoked!"  # flytekit's words
MAX_RESPONSE_BYTES_ENV = "CORE_CONNECTORS_WEBHOOK_MAX_RESPONSE_BYTES"
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
"""Bytes of a response body kept in ``info``; the rest is not read (the reply must fit a gRPC message)."""
SECRETS_ENV = "CORE_CONNECTORS_WEBHOOK_SECRETS"
"""Comma- or space-separated names of the connector secrets a webhook's ``{secrets.NAME}`` may fill; unset or
empty: none. Whoever registers a task chooses where it goes, so the operator chooses which secrets may go."""
EXCERPT_CHARS = 500
"""Characters of a failed response's body quoted in the task's message."""

_INFO_TYPES = {"info": literal_type_for(dict)}  # what flytekit's WebhookTask declares: outputs={"info": dict}


class WebhookConnector(SyncConnectorBase):
    """``allow``/``deny`` (rules as in ``destinations``), ``secrets`` (the names ``{secrets.NAME}`` may fill)
    and ``max_response_bytes`` each default to the environment (``CORE_CONNECTORS_WEBHOOK_ALLOW``, ``_DENY``,
    ``_SECRETS``, ``_MAX_RESPONSE_BYTES``); ``network_backend`` (an httpcore backend) opens the sockets once the
    destination passed the checks."""

    name = "Webhook Connector"

    def __init__(
        self,
        *,
        allow: str | Iterable[str] | None = None,
        deny: str | Iterable[str] | None = None,
        secrets: str | Iterable[str] | None = None,
        max_response_bytes: int | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(task_type_name=TASK_TYPE)
        self.policy = DestinationPolicy.from_env(allow, deny)
        if secrets is None:
            secrets = os.environ.get(SECRETS_ENV, "")
        names = secrets.replace(",", " ").split() if isinstance(secrets, str) else list(secrets)
        self.secrets = frozenset(name.strip().lower() for name in names if name.strip())
        self.max_response_bytes = max_response_bytes if max_response_bytes is not None else _max_bytes_from_env()
        if self.max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be at least 1, got {self.max_response_bytes}")
        self._network_backend = network_backend
        self._clients: Clients | None = None

    @property
    def clients(self) -> Clients:
        """The pooled HTTP clients (one per event loop), made on first use so that loading stays light."""
        if self._clients is None:
            from ._http import Clients

            self._clients = Clients(self.policy, self._network_backend)
        return self._clients

    async def do(self, task_template: Any, output_prefix: str = "", inputs: Any = None, **kwargs: Any) -> Resource:
        try:
            request = webhook_request(task_template, inputs, self._secret)
        except (TemplateError, SecretNotFound) as e:
            return _failed(TaskExecution.FAILED, f"Webhook task is not valid: {e}")
        return await self._send(request)

    def _secret(self, name: str) -> str:
        if name.lower() not in self.secrets:
            raise TemplateError(
                f"{{secrets.{name}}}: the secret {name!r} is not one that webhooks may send "
                f"(the operator lists those in {SECRETS_ENV} or with --webhook-secret)"
            )
        return get_connector_secret(name)

    async def _send(self, request: WebhookRequest) -> Resource:
        import asyncio  # here, like httpx: `core-connectors list` loads the plugin and needs neither

        import httpx

        from ._http import exchange

        where = request.shown_url
        try:
            reply = await asyncio.wait_for(
                exchange(
                    self.clients.current(),
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=request.data,
                    timeout=request.timeout,
                    max_bytes=self.max_response_bytes,
                    follow_redirects=request.follow_redirects,
                    secret_headers=request.secret_headers,
                ),
                request.timeout,
            )
        except DestinationDenied as e:
            return _failed(TaskExecution.FAILED, f"Webhook destination denied: {e}")
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return _failed(TaskExecution.RETRYABLE_FAILED, f"Webhook timed out after {request.timeout:g} s: {where}")
        except httpx.TooManyRedirects as e:
            return _failed(TaskExecution.FAILED, f"Webhook to {where} failed: {e}")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            return _failed(TaskExecution.FAILED, f"Webhook URL {where} is not valid: {e}")
        except httpx.LocalProtocolError as e:  # our request is malformed (a header with a line break): no retry
            return _failed(TaskExecution.FAILED, f"Webhook request to {where} cannot be sent: {e}")
        except httpx.TransportError as e:  # connection refused or reset, a broken answer: worth another try
            return _failed(TaskExecution.RETRYABLE_FAILED, f"Webhook could not reach {where}: {type(e).__name__}: {e}")
        except httpx.RequestError as e:  # e.g. a body that does not decode
            return _failed(TaskExecution.FAILED, f"Webhook to {where} failed: {type(e).__name__}: {e}")
        except (TypeError, ValueError) as e:  # data that JSON cannot carry (an infinite float)
            return _failed(TaskExecution.FAILED, f"Webhook request cannot be built: {e}")

        status = reply.status_code
        if not 200 <= status < 300:
            excerpt = reply.text[:EXCERPT_CHARS] + (
                " [...]" if len(reply.text) > EXCERPT_CHARS or reply.truncated else ""
            )
            message = f"Webhook failed with status code {status}, response: {excerpt}"
            if reply.location is not None:
                message += f" (redirect to {reply.location} not followed: set follow_redirects to follow it)"
            retryable = status == 429 or status >= 500
            return _failed(TaskExecution.RETRYABLE_FAILED if retryable else TaskExecution.FAILED, message)

        info: dict[str, Any] = {"status_code": status, "response_data": scrub(reply.text)}
        if request.show_data:
            info["input_data"] = request.data
        if request.show_url:
            info["url"] = request.shown_url
        if reply.truncated:
            info["response_truncated"] = True
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=SUCCESS_MESSAGE,
            outputs=python_to_literal_map({"info": info}, _INFO_TYPES),
        )


def _failed(phase: int, message: str) -> Resource:
    return Resource(phase=phase, message=scrub(message))


def _max_bytes_from_env() -> int:
    raw = os.environ.get(MAX_RESPONSE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_RESPONSE_BYTES
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{MAX_RESPONSE_BYTES_ENV} must be a whole number of bytes, got {raw!r}") from None
