"""Connector secrets, resolved the way flytekit's connector service resolves them.

A deployment that mounts secrets for ``pyflyte serve connector`` works unchanged: first the secrets of the
Flyte 2 ``connection`` the current request carries (only during that call), then the environment variable
``<FLYTE_SECRETS_ENV_PREFIX or _FSEC_><KEY>``, then the file
``<FLYTE_SECRETS_DEFAULT_DIR or /etc/secrets>/<FLYTE_SECRETS_FILE_PREFIX><key>`` (key lower-cased).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ._errors import SecretNotFound

__all__ = [
    "Connection",
    "connection_secrets",
    "current_connection",
    "get_agent_secret",
    "get_connector_secret",
    "scrub",
    "secret_values_handed_out",
]

_handed_out: set[str] = set()  # so the service can scrub file-mounted secrets from replies and logs too


@dataclass(frozen=True)
class Connection:
    """The secrets and configs a Flyte 2 request carries for the call it makes."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    configs: Mapping[str, str] = field(default_factory=dict)
    _scrub: list[Any] = field(default_factory=lambda: [None, ()], init=False, repr=False, compare=False)
    """(the process's values it was merged with, the merged values): scrub's memo, gone with the call."""

    def _values_with(self, process_values: tuple[str, ...]) -> tuple[str, ...]:
        """The process's secret values and this connection's, longest first; merged once per call (again only
        if the process's values change meanwhile)."""
        if self._scrub[0] is not process_values:
            own = {v for value in self.secrets.values() for v in (value, value.strip())}
            merged = {*process_values, *(v for v in own if len(v) >= _MIN_SECRET_LENGTH)}
            self._scrub[:] = [process_values, tuple(sorted(merged, key=len, reverse=True))]
        return self._scrub[1]


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


_MAX_SECRET_FILE = 1 << 20  # bytes: a key, a token, a service account's JSON or a certificate chain fit many times


def get_connector_secret(secret_key: str) -> str:
    """Return the secret ``secret_key``, stripped of surrounding whitespace.

    Raises ``SecretNotFound`` naming the variable and the file it looked at, never a value; and for a key that
    is not a name (empty, ``.``/``..``, or holding ``/``, ``\\`` or NUL): a connector may pass a name that comes
    from a task template, which must not read files outside the secrets directory.
    """
    if not secret_key or secret_key in (".", "..") or any(c in secret_key for c in "/\\\0"):
        raise SecretNotFound(f"{secret_key!r} is not a secret name: a name has no '/', '\\' or NUL and is not . or ..")
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
    path = os.path.join(base_dir, f"{file_prefix}{secret_key.lower()}")  # os.path: pathlib costs 6 ms of import
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read(_MAX_SECRET_FILE + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    else:
        if len(value) > _MAX_SECRET_FILE:
            raise SecretNotFound(f"secret {secret_key!r}: the file {path} is larger than 1 MiB")
        return _remember(value.strip())
    raise SecretNotFound(
        f"secret {secret_key!r} not found: set the environment variable {env_var} or mount the file {path}"
    )


def _remember(value: str) -> str:
    _handed_out.add(value)
    return value


def secret_values_handed_out() -> frozenset[str]:
    """Every secret value this process has read, for scrubbing error messages and logs."""
    return frozenset(_handed_out)


# ------------------------------------------------------------------------------------------------ scrubbing
_SECRET_NAME = re.compile(r"SECRET|KEY|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_FSEC_", re.IGNORECASE)
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would blank out ordinary words
_cache: tuple[int, dict[Any, Any], tuple[str, ...]] = (-1, {}, ())  # (secrets handed out, environment, values)


def scrub(text: str) -> str:
    """Replace with ``[redacted]`` the value of every secret-looking environment variable, every secret a
    connector read through ``get_connector_secret`` (files under /etc/secrets included) and, during a Flyte 2
    call, every secret of the request's connection.

    The one policy for everything that leaves the service (error details, log lines, what a connector
    returns); cheap when nothing needs replacing, as on every GetTask reply.
    """
    if len(text) < _MIN_SECRET_LENGTH:  # "", "done": nothing to look for
        return text
    for value in _secret_values():
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def _secret_values() -> tuple[str, ...]:
    """The values to scrub, longest first (no secret is left half-replaced): the process's, with the current
    call's connection secrets merged in. The process-wide cache never holds a connection's values."""
    connection = _connection.get()
    if connection is None or not connection.secrets:
        return _process_secret_values()
    return connection._values_with(_process_secret_values())


def _process_secret_values() -> tuple[str, ...]:
    """The environment's secret-looking values and the secrets handed out, longest first; recomputed when the
    environment or the secrets handed out change."""
    global _cache
    env = getattr(os.environ, "_data", os.environ)  # CPython's dict under os.environ: cheap to compare
    handed_out, seen, values = _cache
    if handed_out != len(_handed_out) or env != seen:  # a dict compare: the same objects, found by identity
        prefix = os.environ.get("FLYTE_SECRETS_ENV_PREFIX", "_FSEC_")
        found = set(_handed_out)
        found.update(v for n, v in os.environ.items() if _SECRET_NAME.search(n) or n.startswith(prefix))
        values = tuple(sorted((v for v in found if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True))
        _cache = (len(_handed_out), dict(env), values)
    return values


get_agent_secret = get_connector_secret
