"""core-connectors-webhook: flytekit's ``webhook`` task type, served natively. The plugin module is this
package (see pyproject); it loads neither httpx nor the local runner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core_connectors import hookimpl

from .connector import WebhookConnector
from .destinations import DestinationDenied, DestinationPolicy

if TYPE_CHECKING:
    from .task import WebhookTask

__version__ = "0.1.0"

__all__ = ["DestinationDenied", "DestinationPolicy", "WebhookConnector", "WebhookTask", "provide_connectors"]


@hookimpl
def provide_connectors() -> list[WebhookConnector]:
    return [WebhookConnector()]


def __getattr__(name: str) -> Any:
    # WebhookTask pulls in the local runner (asyncio); loading the plugin for `list` or the service must not.
    if name == "WebhookTask":
        from .task import WebhookTask

        return WebhookTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
