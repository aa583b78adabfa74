"""core-connectors-webhook: flytekit's ``webhook`` task type, served natively. The plugin module is this
package (see pyproject); it loads neither httpx nor the local runner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core_connectors import ServeOption, hookimpl

from .connector import MAX_RESPONSE_BYTES_ENV, SECRETS_ENV, WebhookConnector
from .destinations import ALLOW_ENV, DENY_ENV, DestinationDenied, DestinationPolicy

if TYPE_CHECKING:
    from .task import WebhookTask

__version__ = "0.1.0"

__all__ = [
    "DestinationDenied",
    "DestinationPolicy",
    "WebhookConnector",
    "WebhookTask",
    "provide_connectors",
    "serve_options",
]


@hookimpl
def provide_connectors() -> list[WebhookConnector]:
    return [WebhookConnector()]


@hookimpl
def serve_options() -> list[ServeOption]:
    """``core-connectors serve --webhook-allow/--webhook-deny/--webhook-secret/--webhook-max-response-bytes``."""
    rule = "a host name, .domain, address or network (repeatable; commas also separate rules)"
    return [
        ServeOption(
            "--webhook-allow", ALLOW_ENV, f"Where webhooks may go, if set: {rule}.", multiple=True, metavar="RULE"
        ),
        ServeOption("--webhook-deny", DENY_ENV, f"Where webhooks may not go: {rule}.", multiple=True, metavar="RULE"),
        ServeOption(
            "--webhook-secret",
            SECRETS_ENV,
            "A connector secret that {secrets.NAME} in a webhook's url or headers may fill (repeatable; none if"
            " unset).",
            multiple=True,
            metavar="NAME",
        ),
        ServeOption(
            "--webhook-max-response-bytes",
            MAX_RESPONSE_BYTES_ENV,
            "Bytes of a webhook's response body kept; the rest is not read (default 1 MiB).",
            metavar="N",
        ),
    ]


def __getattr__(name: str) -> Any:
    # WebhookTask pulls in the local runner (asyncio); loading the plugin for `list` or the service must not.
    if name == "WebhookTask":
        from .task import WebhookTask

        return WebhookTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
