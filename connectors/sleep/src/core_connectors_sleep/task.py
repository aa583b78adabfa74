"""``SleepTask``: the sleep connector as a task a user calls, run locally through the connector."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core_connectors.local import AsyncConnectorExecutorMixin, ConnectorTask

from .connector import TASK_TYPE

__all__ = ["SleepTask"]


class SleepTask(AsyncConnectorExecutorMixin, ConnectorTask):
    """Waits, through the sleep connector: ``SleepTask(name="nap")(duration=timedelta(seconds=2))``.

    Without ``duration`` the task takes the input ``duration`` (a timedelta); with it, the duration is fixed
    in the template's ``custom`` and the task takes no inputs. It has no outputs, so a call returns None.
    """

    def __init__(self, name: str = "sleep", duration: dt.timedelta | float | None = None, **kwargs: Any):
        if duration is None:
            kwargs.setdefault("inputs", {"duration": dt.timedelta})
        else:
            seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else float(duration)
            kwargs["custom"] = {**kwargs.get("custom", {}), "duration": seconds}
        super().__init__(name=name, task_type=TASK_TYPE, **kwargs)
