"""Local execution: run a task through its connector in this process, without Flyte or flytekit.

``ConnectorTask`` renders the TaskTemplate the service would receive and is callable; the executor mixins
carry flytekit's names; ``LocalRun`` is the engine (create, poll with a growing interval, delete on Ctrl-C).
"""

from __future__ import annotations

from ._runner import (
    LOCAL_DOMAIN,
    LOCAL_PROJECT,
    LocalRun,
    LocalRunError,
    TaskFailed,
    TaskInterrupted,
    read_outputs_file,
)
from ._task import AsyncConnectorExecutorMixin, ConnectorTask, SyncConnectorExecutorMixin

__all__ = [
    "LOCAL_DOMAIN",
    "LOCAL_PROJECT",
    "AsyncConnectorExecutorMixin",
    "ConnectorTask",
    "LocalRun",
    "LocalRunError",
    "SyncConnectorExecutorMixin",
    "TaskFailed",
    "TaskInterrupted",
    "read_outputs_file",
]
