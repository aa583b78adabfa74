"""flytekit's ``flytekit.extend.backend.base_connector`` names, without flytekit.

Porting a flytekit connector starts with its imports (docs/porting-from-flytekit.md has the rest). The contract
itself lives in one private module that the registry, the service and the local runner share; this module only
gives it flytekit's import path.
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
from ._errors import ConnectorNotFound, ResourceMetaDecodeError, RetryableFailure
from ._lazy import lazy_names
from .secrets import get_agent_secret, get_connector_secret

if TYPE_CHECKING:
    from ._registry import ConnectorRegistry
    from .local import AsyncConnectorExecutorMixin, SyncConnectorExecutorMixin

__all__ = [
    "AsyncConnectorBase",
    "AsyncConnectorExecutorMixin",
    "ConnectorBase",
    "ConnectorNotFound",
    "ConnectorRegistry",
    "Resource",
    "ResourceMeta",
    "ResourceMetaDecodeError",
    "RetryableFailure",
    "SyncConnectorBase",
    "SyncConnectorExecutorMixin",
    "TaskCategory",
    "convert_to_flyte_phase",
    "get_agent_secret",
    "get_connector_secret",
    "is_terminal_phase",
]


# The registry (pluggy, logging) and the executor mixins (the local runner) load on first use: their weight, not
# a cycle, is why. Importing the base classes is what every connector module does first.
_LAZY = {
    "ConnectorRegistry": "._registry",
    "AsyncConnectorExecutorMixin": ".local",
    "SyncConnectorExecutorMixin": ".local",
}


__getattr__ = lazy_names(globals(), _LAZY)
