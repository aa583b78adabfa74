"""``FileSensor``: waits until a path exists, on any filesystem fsspec knows.

It serves flytekit's ``flytekit.sensor.file_sensor.FileSensor`` templates. Local paths and ``file://`` work
out of the box; ``s3://``, ``gs://``, ``abfs://`` and the rest when their fsspec package (s3fs, gcsfs, adlfs,
...) is installed next to the service. ``sensor_config``, which flytekit's engine drops, is passed to fsspec
as storage options (``{"anon": true}``, ``{"endpoint_url": ...}``, ...).
"""

from __future__ import annotations

from typing import Any

from .sensor import Sensor

__all__ = ["FileSensor"]


class FileSensor(Sensor):
    flytekit_names = ("flytekit.sensor.file_sensor.FileSensor",)

    def poke(self, path: str) -> bool:  # type: ignore[override]  # a sensor names the inputs it takes, as flytekit's
        """Blocking on purpose: the service runs it in its thread pool, fsspec's sync API suits every backend."""
        import fsspec  # not at import: listing connectors and starting the service stay light

        fs, fs_path = fsspec.core.url_to_fs(path, **self.config)
        return bool(fs.exists(fs_path))

    def awaiting(self, path: str = "", **inputs: Any) -> str:
        return f"waiting for {path} to exist"
