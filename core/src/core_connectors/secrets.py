"""Connector secrets, resolved the way flytekit's connector service resolves them.

A deployment that mounts secrets for ``pyflyte serve connector`` works unchanged: first the secrets of the
Flyte 2 ``connection`` the current request carries (only during that call), then the environment variable
``<FLYTE_SECRETS_ENV_PREFIX or _FSEC_><KEY>``, then the file
``<FLYTE_SECRETS_DEFAULT_DIR or /etc/secrets>/<FLYTE_SECRETS_FILE_PREFIX><key>`` (key lower-cased).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SecretNotFound

__all__ = [
    "Connection",
    "connection_secret_values",
    "connection_secrets",
    "current_connection",
    "get_agent_secret",
    "get_connector_secret",
    "secret_values_handed_out",
]

_handed_out: set[str] = set()  # so the service can scrub file-mounted secrets from replies and logs too


@dataclass(frozen=True)
class Connection:
    """The secrets and configs a Flyte 2 request carries for the call it makes."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    configs: Mapping[str, str] = field(default_factory=dict)


_connection: ContextVar[Connection | None] = ContextVar("core_connectors_connection", default=None)


@contextlib.contextmanager
def connection_secrets(secrets: Mapping[str, str], configs: Mapping[str, str] | None = None) -> Iterator[None]:
    """Within the block (and only in its context: the call it serves), ``get_connector_secret`` answers from
    ``secrets`` first. The values are never remembered beyond the block."""
    connection = Connection(dict(secrets), dict(configs or {})) if secrets or configs else None
    token = _connection.set(connection)
    try:
        yield
    finally:
        _connection.reset(token)


def current_connection() -> Connection | None:
    """The connection of the call being served, if its request carried one."""
    return _connection.get()


def connection_secret_values() -> frozenset[str]:
    """The secret values of the connection in the current context, for scrubbing replies and logs."""
    connection = _connection.get()
    return frozenset(connection.secrets.values()) if connection is not None else frozenset()


def get_connector_secret(secret_key: str) -> str:
    """Return the secret ``secret_key``, stripped of surrounding whitespace.

    Raises ``SecretNotFound`` naming the variable and the file it looked at, never a value.
    """
    connection = _connection.get()
    if connection is not None and secret_key in connection.secrets:
        return connection.secrets[secret_key].strip()
    env_prefix = os.environ.get("FLYTE_SECRETS_ENV_PREFIX", "_FSEC_").strip()
    env_var = f"{env_prefix}{secret_key.upper()}"
    value = os.environ.get(env_var)
    if value is not None:
        return _remember(value.strip())

    base_dir = os.environ.get("FLYTE_SECRETS_DEFAULT_DIR", "/etc/secrets").strip()
    file_prefix = os.environ.get("FLYTE_SECRETS_FILE_PREFIX", "").strip()
    path = Path(base_dir) / f"{file_prefix}{secret_key.lower()}"
    try:
        return _remember(path.read_text().strip())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    raise SecretNotFound(
        f"secret {secret_key!r} not found: set the environment variable {env_var} or mount the file {path}"
    )


def _remember(value: str) -> str:
    _handed_out.add(value)
    return value


def secret_values_handed_out() -> frozenset[str]:
    """Every secret value this process has read, for scrubbing error messages and logs."""
    return frozenset(_handed_out)


get_agent_secret = get_connector_secret
