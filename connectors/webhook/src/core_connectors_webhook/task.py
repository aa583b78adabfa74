"""``WebhookTask``: flytekit's WebhookTask without flytekit, run locally through the webhook connector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from core_connectors.local import ConnectorTask, SyncConnectorExecutorMixin

from .connector import TASK_TYPE

__all__ = ["WebhookTask"]


class WebhookTask(SyncConnectorExecutorMixin, ConnectorTask):
    """Calls a webhook; ``task(**inputs)`` returns the ``info`` dict (status_code, response_data, ...).

    The arguments are flytekit's (``url``, ``method``, ``headers``, ``data``, ``dynamic_inputs``,
    ``show_data``, ``show_url``, ``description``, ``timeout``) and the template is the one flytekit's
    WebhookTask writes, so a workflow moves between the two unchanged. ``{inputs.NAME}`` placeholders take
    the ``dynamic_inputs``; ``{secrets.NAME}`` in url and headers takes a connector secret.
    ``follow_redirects=True`` (ours) follows up to five redirects, each destination checked again.
    """

    def __init__(
        self,
        name: str,
        url: str,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        dynamic_inputs: Mapping[str, Any] | None = None,
        show_data: bool = False,
        show_url: bool = False,
        description: str | None = None,
        timeout: int | float | dt.timedelta = dt.timedelta(seconds=10),
        follow_redirects: bool = False,
        **kwargs: Any,
    ):
        method = str(getattr(method, "value", method))  # http.HTTPMethod.GET is fine too
        if method not in ("GET", "POST"):
            raise ValueError(f"Method should be either GET or POST. Got {method}")
        custom: dict[str, Any] = {
            "url": url,
            "method": method,
            "headers": dict(headers or {}),
            "data": dict(data or {}),
            "show_data": show_data,
            "show_url": show_url,
            "timeout_sec": timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout,
        }
        if follow_redirects:  # only when set, so the template stays the one flytekit writes
            custom["follow_redirects"] = True
        self.description = description
        super().__init__(
            name=name,
            task_type=TASK_TYPE,
            custom=custom,
            inputs=dynamic_inputs or {},
            outputs={"info": dict},
            **kwargs,
        )
