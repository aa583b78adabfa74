"""Signed resource metadata (optional, off by default).

Propeller stores the ResourceMeta a CreateTask returned and sends it back with every GetTask and DeleteTask;
anyone who can reach the port could send metadata of their own making (a job id in another project). With
signing keys configured, every metadata the service returns carries an HMAC-SHA256 tag over the task
category and the metadata's bytes, and metadata whose tag does not verify is refused with INVALID_ARGUMENT.
The first key signs and every key verifies, so a key is rotated by adding the new one first and dropping the
old one once no running task holds metadata it signed. Unsigned metadata (written by flytekit or by an
unsigned deployment) is accepted only when the operator allows it, for a migration window.

Off, the bytes are exactly flytekit's. The tag is appended as ``\\n#hmac-sha256:<64 hex digits>``: JSON never
ends that way, so signed and unsigned metadata cannot be confused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

import grpc

from ..secrets import get_connector_secret
from ._errors import ServiceError

__all__ = ["KEYS_SECRET", "MARK", "MetadataSigner", "keys_from_secret", "split"]

KEYS_SECRET = "metadata_signing_keys"
"""The connector secret that holds the signing keys (separated by commas or whitespace; the first signs)."""

MARK = b"\n#hmac-sha256:"
_TAG_LENGTH = 64
_SUFFIX_LENGTH = len(MARK) + _TAG_LENGTH


class MetadataSigner:
    """Signs metadata going out and verifies it coming in, bound to the task category it was made for."""

    def __init__(self, keys: Sequence[bytes], accept_unsigned: bool = False) -> None:
        if not keys:
            raise ValueError("metadata signing needs at least one key")
        self.keys = tuple(keys)
        self.accept_unsigned = accept_unsigned

    def sign(self, meta: bytes, task_type: str, version: int) -> bytes:
        return meta + MARK + self._tag(self.keys[0], meta, task_type, version)

    def verify(self, data: bytes, task_type: str, version: int) -> bytes:
        """The metadata without its tag; INVALID_ARGUMENT when the tag is missing (unless allowed) or wrong."""
        meta, tag = split(data)
        if tag is None:
            if self.accept_unsigned:
                return meta
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the resource metadata is not signed, and this service accepts only signed metadata "
                "(a task started before signing was turned on needs --accept-unsigned-metadata)",
            )
        # bytes against bytes: any byte a caller puts in the tag is a mismatch (str would raise on non-ASCII)
        if not any(hmac.compare_digest(self._tag(key, meta, task_type, version), tag) for key in self.keys):
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the resource metadata's signature does not verify: it was not written by this service for "
                f"task type {task_type!r}, or its key has been retired",
            )
        return meta

    @staticmethod
    def _tag(key: bytes, meta: bytes, task_type: str, version: int) -> bytes:
        message = f"{task_type}\0{version}\0".encode() + meta
        return hmac.new(key, message, hashlib.sha256).hexdigest().encode()


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """(metadata, tag) of signed metadata; (data, None) when it carries no tag."""
    if data[-_SUFFIX_LENGTH:-_TAG_LENGTH] != MARK:  # a slice compare: cheap on every GetTask
        return data, None
    return data[:-_SUFFIX_LENGTH], data[-_TAG_LENGTH:]


_SEPARATORS = re.compile(r"[,\s]+")


def keys_from_secret(secret_key: str = KEYS_SECRET) -> list[bytes]:
    """The signing keys from the connector secret (environment ``_FSEC_METADATA_SIGNING_KEYS`` or the file
    ``/etc/secrets/metadata_signing_keys``), the first one signing; ValueError when there are none."""
    keys = [k.encode() for k in _SEPARATORS.split(get_connector_secret(secret_key)) if k]
    if not keys:
        raise ValueError(f"the secret {secret_key!r} holds no key")
    return keys
