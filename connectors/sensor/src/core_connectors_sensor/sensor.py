"""``Sensor``: one kind of condition the Sensor connector waits for, and which errors are worth a retry.

flytekit's sensor engine imports the module and class a request names and calls it. Here a sensor is a class
that an installed distribution announces in the ``core_connectors.sensors`` entry-point group, naming in
``flytekit_names`` the flytekit classes (``"module.Class"``) whose templates it answers for. A request only
ever selects among the sensors installed.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

__all__ = ["Sensor", "is_transient_error"]


class Sensor:
    """Subclass it, list the flytekit names it answers for and implement ``poke``.

    ``poke`` takes the task's inputs as keyword arguments (as flytekit's ``BaseSensor.poke`` does) and says
    whether the condition holds. A plain ``def poke`` runs in the service's thread pool, so it may block;
    an ``async def poke`` runs on the service's event loop and must not. The inputs arrive as JSON values
    (they travel in the task's metadata): files and directories as their URI, datetimes as ISO 8601 text,
    durations as seconds.
    """

    flytekit_names: ClassVar[tuple[str, ...]] = ()
    """The ``"module.Class"`` names a flytekit ``BaseSensor`` subclass writes into its template
    (``custom.sensor_module`` and ``custom.sensor_name``) that this sensor serves."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        """The template's ``custom.sensor_config`` (flytekit's ``SensorConfig.to_dict()``), or empty."""

    def poke(self, **inputs: Any) -> bool | Awaitable[bool]:
        raise NotImplementedError(f"{type(self).__name__} does not implement poke")

    def awaiting(self, **inputs: Any) -> str:
        """What the task waits for, shown while it runs (GetTask's message)."""
        return f"waiting for {type(self).__name__}"

    def is_transient(self, error: BaseException) -> bool:
        """Whether ``poke``'s error may pass by itself (the task then fails as retryable)."""
        return is_transient_error(error)


_TRANSIENT_ERRNOS = frozenset(
    {errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH}
)
# Vendor exceptions that mean "try again later", matched by class name so that no storage SDK is imported:
# asyncio's and concurrent.futures' TimeoutError (not the builtin one on 3.10), botocore, aiohttp,
# google-api-core / google-auth, azure-core, requests / urllib3.
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "TimeoutError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectionError",
        "ServerTimeoutError",
        "ServerDisconnectedError",
        "TransportError",
        "ServiceUnavailable",
        "TooManyRequests",
        "InternalServerError",
        "BadGateway",
        "GatewayTimeout",
        "ServiceRequestError",
        "ServiceResponseError",
        "NewConnectionError",
        "ProtocolError",
    }
)
_TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_error(error: BaseException) -> bool:
    """Timeouts, connection errors and "busy" answers of storage services, anywhere in the exception's chain
    of causes; anything else (a missing bucket, denied access, a bad path) is permanent."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (TimeoutError, ConnectionError)):
            return True
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        if any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(current).__mro__):
            return True
        status = getattr(current, "code", None) if not isinstance(current, OSError) else None
        if isinstance(status, int) and not isinstance(status, bool) and status in _TRANSIENT_HTTP_STATUSES:
            return True  # gcsfs's HttpError and similar carry the HTTP status as .code
        current = current.__cause__ or current.__context__
    return False
