"""A connector whose job is to wait: the smallest complete async connector, and the one to copy.

It keeps no state of its own: the deadline travels in the ResourceMeta, so any replica of the service can
answer GetTask for a task another replica created.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta
from core_connectors.literals import literal_to_python

TASK_TYPE = "sleep"


@dataclass
class SleepMetadata(ResourceMeta):
    """When the sleep ends (seconds since the epoch), or why the task cannot run."""

    deadline: float
    error: str | None = None


class SleepConnector(AsyncConnectorBase[SleepMetadata]):
    name = "Sleep Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=SleepMetadata)

    async def create(
        self,
        task_template: Any,
        output_prefix: str = "",
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> SleepMetadata:
        try:
            seconds = _duration_seconds(task_template, inputs)
        except ValueError as e:  # a bad duration fails the task, it is not the service's error
            return SleepMetadata(deadline=time.time(), error=str(e))
        return SleepMetadata(deadline=time.time() + seconds)

    async def get(self, resource_meta: SleepMetadata, **kwargs: Any) -> Resource:
        if resource_meta.error:
            return Resource(phase=TaskExecution.FAILED, message=resource_meta.error)
        left = resource_meta.deadline - time.time()
        if left > 0:
            return Resource(
                phase=TaskExecution.RUNNING,
                message=f"{left:.1f} s left",
                custom_info={"seconds_left": round(left, 3)},
            )
        return Resource(phase=TaskExecution.SUCCEEDED, message="done")

    async def delete(self, resource_meta: SleepMetadata, **kwargs: Any) -> None:
        """Nothing runs anywhere, so there is nothing to cancel; deleting twice is fine."""


def _duration_seconds(task_template: Any, inputs: Any) -> float:
    """The ``duration`` input (a Duration literal, or int/float seconds), else ``custom["duration"]``."""
    value: Any = None
    if inputs is not None and "duration" in inputs.literals:
        value = literal_to_python(inputs.literals["duration"])
    elif task_template is not None and "duration" in task_template.custom.fields:
        value = task_template.custom["duration"]
    if value is None:
        raise ValueError('no duration: give the input "duration" or custom["duration"] in seconds')
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"duration must be a timedelta or a number of seconds, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative number of seconds, got {seconds}")
    return seconds
