"""Names a module offers but imports on their first use: what keeps ``import core_connectors`` light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(namespace: dict[str, Any], homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for the module whose globals are ``namespace``: each name of
    ``homes`` is imported from its module (relative to the package) on first use and kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(home, namespace["__package__"]), name)
        return value

    return __getattr__
