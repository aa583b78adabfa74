"""From a webhook TaskTemplate and its inputs to the request to send, as flytekit's WebhookTask means it.

``custom`` holds ``url``, ``method``, ``headers``, ``data``, ``show_data``, ``show_url`` and ``timeout_sec``
(flytekit 1.16's keys), plus ``follow_redirects`` (ours). Placeholders are filled as flytekit fills them:
``{inputs.NAME}`` (or ``{inputs.NAME.KEY}`` into a dict input) in any string of url, headers and data; a
string that is exactly one placeholder takes the input's value with its type, an embedded one its text. On
top, ``{secrets.NAME}`` in url and headers is replaced by the connector secret NAME; the URL shown in the
outputs keeps the placeholder, never the value. Filling is one pass: text that an input brings in is never
read for placeholders again, so an input cannot pull a secret into a request.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flyteidl.core import literals_pb2, tasks_pb2

from core_connectors import get_connector_secret
from core_connectors.literals import MSGPACK_TAG, literal_to_python
from core_connectors.templates import custom_dict

__all__ = ["DEFAULT_TIMEOUT", "TemplateError", "WebhookRequest", "input_values", "webhook_request"]

DEFAULT_TIMEOUT = 10.0
"""Seconds, when ``custom`` has no ``timeout_sec`` (flytekit's default)."""

_PLACEHOLDER = re.compile(r"\{([^}]+)\}")  # flytekit's pattern: a name with a dot inside braces


class TemplateError(ValueError):
    """The template or its inputs do not make a request; the task fails with this message."""


@dataclass(frozen=True)
class _Unusable:
    reason: str


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    url: str
    headers: dict[str, str]
    data: Any
    timeout: float
    show_data: bool
    show_url: bool
    follow_redirects: bool
    shown_url: str
    """The URL with ``{secrets.NAME}`` placeholders left as written: what outputs and messages show."""
    secret_headers: frozenset[str] = field(default_factory=frozenset)
    """Lower-cased names of the headers that carry a secret (dropped when a redirect leaves the origin)."""


def webhook_request(
    template: tasks_pb2.TaskTemplate,
    inputs: literals_pb2.LiteralMap | None,
    secret: Callable[[str], str] = get_connector_secret,
) -> WebhookRequest:
    """The request the template describes; TemplateError (or SecretNotFound) says what is wrong."""
    custom = custom_dict(template)
    values = input_values(inputs)
    url = custom.get("url")
    if not isinstance(url, str) or not url:
        raise TemplateError('the task has no "url" (custom["url"] must be a string)')
    method = str(custom.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TemplateError(f"method must be GET or POST, got {custom.get('method')!r}")
    headers = custom.get("headers") or {}
    data = custom.get("data") or {}
    if not isinstance(headers, dict):
        raise TemplateError(f"headers must be a dict, got {type(headers).__name__}")
    timeout = custom.get("timeout_sec", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise TemplateError(f"timeout_sec must be a positive number of seconds, got {timeout!r}")

    def keep(name: str) -> str:
        return "{secrets." + name + "}"

    if any(str(name).strip().lower() == "host" for name in headers):
        raise TemplateError("headers may not set Host: the outbound rules judge the url's host, which Host names")
    secret_headers = set()
    filled_headers = {}
    for name, value in headers.items():
        filled = _text(_fill(value, values, secret))
        if filled != _text(_fill(value, values, keep)):
            secret_headers.add(str(name).lower())
        filled_headers[str(name)] = filled
    return WebhookRequest(
        method=method,
        url=_text(_fill(url, values, secret)),
        headers=filled_headers,
        data=_fill(data, values, None),
        timeout=float(timeout),
        show_data=bool(custom.get("show_data", False)),
        show_url=bool(custom.get("show_url", False)),
        follow_redirects=bool(custom.get("follow_redirects", False)),
        shown_url=_text(_fill(url, values, keep)),
        secret_headers=frozenset(secret_headers),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _fill(value: Any, inputs: dict[str, Any], secret: Callable[[str], str] | None) -> Any:
    """Fill placeholders in every string of ``value`` (dict values and list items; keys stay as written)."""
    if isinstance(value, dict):
        return {k: _fill(v, inputs, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, inputs, secret) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole is not None and "." in whole.group(1):
        return _resolve(whole.group(1), inputs, secret)

    def embedded(match: re.Match[str]) -> str:
        name = match.group(1)
        return _text(_resolve(name, inputs, secret)) if "." in name else match.group(0)

    return _PLACEHOLDER.sub(embedded, value)


def _resolve(placeholder: str, inputs: dict[str, Any], secret: Callable[[str], str] | None) -> Any:
    kind, _, path = placeholder.partition(".")
    if kind == "inputs":
        value: Any = inputs
        keys = path.split(".")
        for depth, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                if depth == 0:
                    raise TemplateError(
                        f"the placeholder {{{placeholder}}} names the input {key!r}, which the task was not given "
                        f"(its inputs: {', '.join(sorted(inputs)) or 'none'})"
                    )
                raise TemplateError(f"the placeholder {{{placeholder}}}: the input has no key {key!r}")
            value = value[key]
        if isinstance(value, _Unusable):
            raise TemplateError(f"the placeholder {{{placeholder}}}: {value.reason}")
        return value
    if kind == "secrets":
        if secret is None:
            raise TemplateError(
                f"{{{placeholder}}}: secrets are filled in url and headers only, not in data (show_data would echo it)"
            )
        if not path or "." in path:
            raise TemplateError(f"{{{placeholder}}} is not a secret placeholder: write {{secrets.NAME}}")
        return secret(path)
    raise TemplateError(f"unknown placeholder {{{placeholder}}}: write {{inputs.NAME}} or {{secrets.NAME}}")


def input_values(inputs: literals_pb2.LiteralMap | None) -> dict[str, Any]:
    """The inputs as flytekit's ``literal_map_string_repr`` shows them to placeholders: numbers, strings and
    booleans as they are, datetimes as ISO text, durations as seconds, files and tables as their URI, msgpack
    dicts and dataclasses as JSON text, lists and maps item by item."""
    if inputs is None:
        return {}
    return {name: _shown(literal) for name, literal in inputs.literals.items()}


def _shown(literal: literals_pb2.Literal) -> Any:
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return [_shown(item) for item in literal.collection.literals]
    if kind == "map":
        return {k: _shown(v) for k, v in literal.map.literals.items()}
    if kind == "scalar":
        scalar = literal.scalar
        scalar_kind = scalar.WhichOneof("value")
        if scalar_kind == "union":
            return _shown(scalar.union.value)
        if scalar_kind == "error":
            return scalar.error.message
        if scalar_kind == "binary":
            if scalar.binary.tag == MSGPACK_TAG:
                try:
                    return json.dumps(literal_to_python(literal))
                except (TypeError, ValueError) as e:  # bytes inside: an error only if a placeholder uses it
                    return _Unusable(f"the input does not convert to JSON text: {e}")
            return base64.b64encode(scalar.binary.value).decode("ascii")
    try:
        value = literal_to_python(literal)
    except (TypeError, ValueError) as e:  # an offloaded literal: an error only if a placeholder uses it
        return _Unusable(str(e))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value
