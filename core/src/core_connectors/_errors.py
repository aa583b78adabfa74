"""The errors the core raises, in one place so the service can map each to its gRPC status code."""

from __future__ import annotations

__all__ = ["ConnectorNotFound", "ResourceMetaDecodeError", "SecretNotFound"]


class ConnectorNotFound(LookupError):
    """No connector serves the requested task category or name (the service answers NOT_FOUND)."""


class ResourceMetaDecodeError(ValueError):
    """Resource metadata bytes that do not decode into the connector's metadata type (INVALID_ARGUMENT)."""


class RetryableFailure(Exception):
    """Raise from ``get`` or ``do`` when the job failed in a way that may pass on a retry (a vendor's 429 or 503,
    a quota, a dropped connection): the service answers a Resource with phase RETRYABLE_FAILED and this message
    (secrets scrubbed) instead of an error, so propeller retries the task within its retry budget.

    From ``create`` (which has no Resource to answer) it is the status UNAVAILABLE.
    """


class SecretNotFound(KeyError):
    """A connector secret that is in neither the environment nor the secrets directory."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""
