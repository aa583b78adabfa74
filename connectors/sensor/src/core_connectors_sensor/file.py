"""``FileSensor``: waits until a path exists in local files or an object store, through fsspec.

It serves flytekit's ``flytekit.sensor.file_sensor.FileSensor`` templates. Local paths and ``file://`` work
out of the box; ``s3://``/``s3a://``, ``gs://``/``gcs://`` and ``abfs://``/``abfss://``/``az://`` when their
fsspec package (s3fs, gcsfs, adlfs) is installed next to the service. Nothing else: the task's author writes
the path, while the service checks it with the deployment's own credentials, so a path naming another fsspec
filesystem (``http(s)://`` to internal addresses, ``ssh://``, ``memory://``, ``reference://``, ...) or chaining
several (``simplecache::s3://...``, ``zip://...::https://...``) fails the task instead.

``sensor_config`` (which flytekit's engine drops) may set only options that can neither send a request, and
the credentials signing it, elsewhere nor pick other credentials: ``anon`` (``true``: check without
credentials; s3fs's and adlfs's ``anon``, gcsfs's ``token="anon"``) and ``requester_pays`` (s3fs's and
gcsfs's, ``true`` or ``false``). Any other option (``endpoint_url``, ``key``, ``token``, ``client_kwargs``, ...)
fails the task: the storage options of the service are its operator's, set through fsspec's own
configuration (``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables such as ``FSSPEC_S3_ENDPOINT_URL``, or
``FSSPEC_<PROTOCOL>`` holding a JSON object, read when fsspec is imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .sensor import Sensor

__all__ = ["ALLOWED_OPTIONS", "ALLOWED_PROTOCOLS", "FileSensor"]

ALLOWED_PROTOCOLS = ("file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az")
"""fsspec's names for local files and the object stores a FileSensor is for; a path without one is local."""

ALLOWED_OPTIONS = ("anon", "requester_pays")
"""The ``sensor_config`` keys a task may set, each ``true`` or ``false`` (``null`` is the same as absent)."""

_GCS = ("gs", "gcs")
_REQUESTER_PAYS = ("s3", "s3a", *_GCS)  # adlfs and local files have no such option


class FileSensor(Sensor):
    flytekit_names = ("flytekit.sensor.file_sensor.FileSensor",)

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.config = {key: value for key, value in self.config.items() if value is not None}
        refused = sorted(repr(key) for key in self.config if key not in ALLOWED_OPTIONS)
        if refused:
            what = f"sensor_config {'options' if len(refused) > 1 else 'option'} {', '.join(refused)}"
            raise ValueError(
                f"{what} refused: a FileSensor task may set only {' and '.join(ALLOWED_OPTIONS)} (true or false), "
                "options that can neither send the service's credentials elsewhere nor choose other ones. Storage "
                "options such as endpoints, keys and tokens belong to the service: its operator sets them in "
                "fsspec's own configuration, environment variables FSSPEC_<PROTOCOL>_<OPTION> "
                "(e.g. FSSPEC_S3_ENDPOINT_URL=http://minio:9000)"
            )
        for key, value in self.config.items():
            if not isinstance(value, bool):
                raise ValueError(f"sensor_config option {key!r} must be true or false, got {value!r}")

    def poke(self, path: str) -> bool:  # type: ignore[override]  # a sensor names the inputs it takes, as flytekit's
        """Blocking on purpose: the service runs it in its thread pool, fsspec's sync API suits every backend."""
        fs, fs_path = self.filesystem(path)
        return bool(fs.exists(fs_path))

    def filesystem(self, path: str) -> tuple[Any, str]:
        """The fsspec filesystem that checks ``path`` and the path within it; ``ValueError`` for a path of a
        protocol not allowed, or chaining filesystems. Builds the client only: nothing is sent yet."""
        import fsspec.core  # not at import: listing connectors and starting the service stay light

        protocol = _protocol(path)
        fs, fs_path = fsspec.core.url_to_fs(path, **self._storage_options(protocol))
        return fs, fs_path

    def _storage_options(self, protocol: str) -> dict[str, Any]:
        """``sensor_config`` as the options of ``protocol``'s filesystem. ``anon: false`` is the default and
        passes nothing, so that it never overrides an ``anon`` the operator configured."""
        options: dict[str, Any] = {}
        if self.config.get("anon") is True:
            if protocol in _GCS:
                options["token"] = "anon"  # gcsfs has no anon option (it would ignore it and sign the requests)
            elif protocol != "file":
                options["anon"] = True
        if "requester_pays" in self.config and protocol in _REQUESTER_PAYS:
            options["requester_pays"] = self.config["requester_pays"]
        return options

    def awaiting(self, path: str = "", **inputs: Any) -> str:
        return f"waiting for {path} to exist"


def _protocol(path: Any) -> str:
    """The protocol of ``path`` as fsspec reads it (``file`` when it has none), if a FileSensor may check it."""
    from fsspec.core import split_protocol

    if not isinstance(path, str):
        raise TypeError(f"the path must be text, got {type(path).__name__}")
    allowed = "local paths, " + ", ".join(f"{p}://" for p in ALLOWED_PROTOCOLS)
    if "::" in path:
        raise ValueError(f"{path!r} chains filesystems ('::'), which a FileSensor does not check; it checks {allowed}")
    protocol = split_protocol(path)[0] or "file"
    if protocol not in ALLOWED_PROTOCOLS:
        raise ValueError(f"a FileSensor does not check {path!r} (protocol {protocol!r}); it checks {allowed} only")
    return str(protocol)
