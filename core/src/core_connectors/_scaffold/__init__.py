"""``core-connectors new NAME``: write a complete connector distribution, ready to test and publish.

The files are ``string.Template`` texts shipped as package data (``templates/``); a path segment ``__pkg__``
becomes the import package, and ``.async``/``.sync`` variants are picked by ``--sync``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click
from packaging.utils import InvalidName, canonicalize_name

from .. import __version__

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = ["Names", "names_for", "new", "render"]

_SHORT_NAME = re.compile(r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*", re.IGNORECASE)


@dataclass(frozen=True)
class Names:
    """What a connector called ``name`` is called everywhere."""

    name: str  # the entry-point name (what CORE_CONNECTORS_DISABLE takes) and the task type
    dist: str  # the distribution: core-connectors-<name>
    pkg: str  # the import package: core_connectors_<name>
    cls: str  # the class-name stem: AcmeJobs


def names_for(name: str) -> Names:
    """Check ``name`` and derive the others; a ValueError says what is wrong and what fits."""
    dist = f"core-connectors-{name}"
    try:
        canonicalize_name(dist, validate=True)
    except InvalidName:
        raise ValueError(
            f"{dist!r} is not a valid distribution name: it may hold only letters, digits, '-', '_' and '.', "
            "and must start and end with a letter or digit (PEP 508)"
        ) from None
    if not _SHORT_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name the import package core_connectors_{name.replace('-', '_')}: start with a letter "
            "and use letters, digits, '_' and single '-' (e.g. acme or acme-jobs)"
        )
    lower = name.lower()
    return Names(
        name=lower,
        dist=f"core-connectors-{lower}",
        pkg=f"core_connectors_{lower.replace('-', '_')}",
        cls="".join(part.capitalize() for part in re.split(r"[-_]", lower) if part),
    )


def render(names: Names, target: Path, sync: bool) -> list[Path]:
    """Write the distribution under ``target`` (which must not exist); return the files written."""
    major, minor = (int(x) for x in __version__.split(".")[:2])
    mixin = "SyncConnectorExecutorMixin" if sync else "AsyncConnectorExecutorMixin"
    values = {
        "name": names.name,
        "dist": names.dist,
        "pkg": names.pkg,
        "Class": names.cls,
        "core_range": f">={major}.{minor},<{major}.{minor + 1}",
        "Mixin": mixin,
        "local_names": ", ".join(sorted([mixin, "ConnectorTask"])),  # as isort orders them
    }
    kind = "sync" if sync else "async"
    written = []
    for source, relative in _templates(resources.files(__package__) / "templates", Path()):
        parts = relative.name.split(".")
        if parts[-2] in ("sync", "async"):  # connector.py.async.tmpl: one of two variants
            if parts[-2] != kind:
                continue
            parts = parts[:-2] + parts[-1:]
        out = target / relative.parent / ".".join(parts[:-1])  # drop .tmpl
        out = Path(str(out).replace("__pkg__", names.pkg))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(string.Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
        written.append(out)
    return written


def _templates(directory: Traversable, relative: Path) -> list[tuple[Traversable, Path]]:
    found: list[tuple[Traversable, Path]] = []
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _templates(entry, relative / entry.name)
        elif entry.name.endswith(".tmpl"):
            found.append((entry, relative / entry.name))
    return found


@click.command("new")
@click.argument("name")
@click.option("--sync", is_flag=True, help="A connector that answers in one call (do), not create/get/delete.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Where to create the NAME folder.",
)
def new(name: str, sync: bool, directory: Path) -> None:
    """Write core-connectors-NAME: a connector distribution with tests, ready to install and publish."""
    try:
        names = names_for(name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None
    target = directory / name
    if target.exists():
        raise click.ClickException(f"{target} already exists: nothing was written (choose another NAME or --dir)")
    files = render(names, target, sync)
    click.echo(f"Wrote {names.dist} ({'sync' if sync else 'async'} connector) in {target}/:")
    for path in files:
        click.echo(f"  {path.relative_to(target)}")
    where = str(target) if target.is_absolute() else f"./{target}"  # pip reads a bare `acme` as a project name
    click.echo(f"\nNext:\n  pip install '{where}[test]'\n  pytest {where}\n  core-connectors list")
