"""The one place that touches the openai SDK's client: the API key, cached clients, errors made safe to show.

The SDK is imported inside these functions, never when the package is imported, so listing connectors and
starting the service stay fast and a broken openai install hurts only these connectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core_connectors import SecretNotFound, get_connector_secret

if TYPE_CHECKING:
    import openai

API_KEY_SECRET = "FLYTE_OPENAI_API_KEY"
"""The connector secret holding the API key, the same name flytekitplugins-openai reads."""

DEFAULT_TIMEOUT = float(os.environ.get("CORE_CONNECTORS_OPENAI_TIMEOUT", "8"))
"""Seconds for a whole call, retries included: propeller gives each connector call 10 s by default. Raise
it (``CORE_CONNECTORS_OPENAI_TIMEOUT``) together with propeller's timeouts for slow models."""

DEFAULT_MAX_RETRIES = 1
"""One quick retry for a blip; propeller retries the rest (a failed poll is simply asked again)."""

_MAX_CLIENTS_PER_LOOP = 32


@dataclass(frozen=True)
class ClientKey:
    """What makes two clients different. Holds a hash of the API key, never the key (it shows in reprs)."""

    key_hash: str
    organization: str | None
    base_url: str | None
    timeout: float
    max_retries: int


# An AsyncOpenAI client's connection pool belongs to the event loop it first ran on, so clients are kept per
# loop: the service has one loop for its lifetime; scripts and tests that make new loops get new clients.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientKey, Any]] = weakref.WeakKeyDictionary()


def api_key(explicit: str | None = None) -> str:
    """The API key: ``explicit`` when given, else the connector secret ``FLYTE_OPENAI_API_KEY``, else (handy for
    local runs) the SDK's own ``OPENAI_API_KEY`` variable."""
    if explicit:
        return explicit
    try:
        return get_connector_secret(API_KEY_SECRET)
    except SecretNotFound as e:
        if os.environ.get("OPENAI_API_KEY"):
            return os.environ["OPENAI_API_KEY"]
        raise SecretNotFound(f"{e} (or, for local runs, set OPENAI_API_KEY)") from None


def client_key(key: str, organization: str | None, base_url: str | None, timeout: float, max_retries: int) -> ClientKey:
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    key_hash = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return ClientKey(key_hash, organization or None, base_url, timeout, max_retries)


def async_client(
    key: str,
    organization: str | None = None,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> openai.AsyncOpenAI:
    """A cached AsyncOpenAI client for this event loop and (key, organization, base URL, timeout, retries)."""
    import openai

    ck = client_key(key, organization, base_url, timeout, max_retries)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(ck)
    if client is None:
        if len(per_loop) >= _MAX_CLIENTS_PER_LOOP:  # keys rotate rarely; drop the oldest when they do
            per_loop.pop(next(iter(per_loop)))
        client = openai.AsyncOpenAI(
            api_key=key, organization=ck.organization, base_url=ck.base_url, timeout=timeout, max_retries=max_retries
        )
        per_loop[ck] = client
    return client


def sync_client(
    key: str,
    organization: str | None = None,
    base_url: str | None = None,
    timeout: float = 600.0,
    max_retries: int = 2,
) -> openai.OpenAI:
    """A new synchronous client for the helpers (uploads and downloads may take minutes)."""
    import openai

    ck = client_key(key, organization, base_url, timeout, max_retries)
    return openai.OpenAI(
        api_key=key, organization=ck.organization, base_url=ck.base_url, timeout=timeout, max_retries=max_retries
    )


# ------------------------------------------------------------------------------------------------ errors
@dataclass(frozen=True)
class Failure:
    """An error as the user should see it: whether trying again may help, and a message without secrets."""

    retryable: bool
    message: str
    status_code: int | None = None


class OpenAIConnectorError(RuntimeError):
    """Raised where a connector must fail a call; its message is already free of secrets."""


_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_-]{3})[A-Za-z0-9_*-]{8,}")


def redact(text: str, key: str | None = None) -> str:
    """Remove the API key (``key``, else the configured one), and anything that looks like an OpenAI key."""
    if key is None:
        with contextlib.suppress(Exception):
            key = api_key()
    if key:
        text = text.replace(key, "***")
    return _KEY_LIKE.sub(r"\1***", text)


def describe_error(exc: BaseException, key: str | None = None, timeout: float | None = None) -> Failure:
    """Classify an error from a call to OpenAI.

    400/401/403/404/422 and bad requests are permanent; 408, 409, 429, 5xx, timeouts and connection errors
    may pass if tried again. Anything unexpected is reported as permanent with its type, so it is seen.
    """
    import openai

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, openai.APITimeoutError)):
        within = f" within {timeout:g} s" if timeout else ""
        return Failure(True, f"OpenAI did not answer{within}")
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        return Failure(True, redact(f"cannot reach the OpenAI API{cause}", key))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") or (exc.body if isinstance(exc.body, str) else "") or exc.message
        code = body.get("code") or body.get("type")
        text = f"OpenAI API error {status}" + (f" ({code})" if code else "") + f": {detail}"
        retry_after = exc.response.headers.get("retry-after")
        if status == 429 and retry_after:
            text += f" (retry after {retry_after} s)"
        request_id = getattr(exc, "request_id", None)
        if request_id:
            text += f" [request id {request_id}]"
        retryable = status in (408, 409, 429) or status >= 500
        return Failure(retryable, redact(text, key), status)
    if isinstance(exc, SecretNotFound):
        return Failure(False, str(exc))
    return Failure(False, redact(f"{type(exc).__name__}: {exc}", key))
