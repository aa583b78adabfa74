"""core-connectors: Flyte's connector framework without flytekit.

The public names mirror ``flytekit.extend.backend.base_connector``; porting a connector starts with its
imports (docs/porting-from-flytekit.md). Importing this package stays light: the service, metrics, CLI and
local runner load on demand.
"""

from __future__ import annotations

from typing import Any

from ._connector import (
    AsyncConnectorBase,
    ConnectorBase,
    Resource,
    ResourceMeta,
    SyncConnectorBase,
    TaskCategory,
    convert_to_flyte_phase,
    is_terminal_phase,
)
from ._errors import ConnectorNotFound, ResourceMetaDecodeError, RetryableFailure, SecretNotFound
from ._hooks import ServeOption, hookimpl
from ._registry import Bridged, ConnectorRegistry, PluginFailure, PluginSource
from .secrets import get_agent_secret, get_connector_secret

__version__ = "0.1.0"

__all__ = [
    "AsyncConnectorBase",
    "AsyncConnectorExecutorMixin",
    "Bridged",
    "ConnectorBase",
    "ConnectorNotFound",
    "ConnectorRegistry",
    "ConnectorTask",
    "PluginFailure",
    "PluginSource",
    "Resource",
    "ResourceMeta",
    "ResourceMetaDecodeError",
    "RetryableFailure",
    "SecretNotFound",
    "ServeOption",
    "SyncConnectorBase",
    "SyncConnectorExecutorMixin",
    "TaskCategory",
    "convert_to_flyte_phase",
    "get_agent_secret",
    "get_connector_secret",
    "hookimpl",
    "is_terminal_phase",
]


def __getattr__(name: str) -> Any:
    if name in ("SyncConnectorExecutorMixin", "AsyncConnectorExecutorMixin", "ConnectorTask"):
        from . import local

        return getattr(local, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
