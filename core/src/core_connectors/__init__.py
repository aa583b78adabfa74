"""core-connectors: Flyte's connector framework without flytekit.

The public names mirror ``flytekit.extend.backend.base_connector``; porting a connector starts with its
imports (docs/porting-from-flytekit.md). Importing this package stays light: the registry (pluggy, logging),
the service, metrics, CLI and local runner load on first use of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from ._lazy import lazy_names
from .secrets import get_agent_secret, get_connector_secret

if TYPE_CHECKING:
    from ._failure_log import failed_resource
    from ._hooks import ServeOption, hookimpl
    from ._registry import Bridged, ConnectorRegistry, PluginFailure, PluginSource
    from .local import AsyncConnectorExecutorMixin, ConnectorTask, SyncConnectorExecutorMixin

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
    "failed_resource",
    "get_agent_secret",
    "get_connector_secret",
    "hookimpl",
    "is_terminal_phase",
]


_LAZY = {  # public name -> the module that defines it, imported on the name's first use
    "Bridged": "._registry",
    "ConnectorRegistry": "._registry",
    "PluginFailure": "._registry",
    "PluginSource": "._registry",
    "ServeOption": "._hooks",
    "failed_resource": "._failure_log",
    "hookimpl": "._hooks",
    "AsyncConnectorExecutorMixin": ".local",
    "ConnectorTask": ".local",
    "SyncConnectorExecutorMixin": ".local",
}


__getattr__ = lazy_names(globals(), _LAZY)
