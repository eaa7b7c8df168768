"""The connector registry: one place maps a connector ``kind`` to its config model and its reader.

Connectors are plug-ins, found through the ``sluice.connectors`` entry-point group (see
``pyproject.toml``), so the core never imports a stage package and a user's own package can add a
kind without touching Sluice. Each entry point names a module attribute that is a ``Connector``.
Families: ``source`` (images: ``ingest.sources``), ``votes`` (crowd exports) and ``crawl`` (web sites).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from sluice.errors import ConfigError

GROUP = "sluice.connectors"
FAMILIES = ("source", "votes", "crawl")


@dataclass(frozen=True)
class Connector:
    """``config`` is the pydantic model of one params entry (its ``kind`` field a Literal of ``kind``);
    ``reader`` is the family's reading function (its signature is documented per family)."""

    family: str
    kind: str
    config: type
    reader: Callable
    summary: str = ""


@functools.cache
def _registry() -> dict[tuple[str, str], Connector]:
    found: dict[tuple[str, str], Connector] = {}
    for ep in entry_points(group=GROUP):
        connector = ep.load()
        if not isinstance(connector, Connector) or connector.family not in FAMILIES:
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) is not a sluice Connector")
        found[(connector.family, connector.kind)] = connector
    return found


def connectors(family: str) -> dict[str, Connector]:
    """Every registered connector of ``family``, by kind."""
    return {kind: c for (fam, kind), c in sorted(_registry().items()) if fam == family}


def get(family: str, kind: str) -> Connector:
    """The connector for ``kind``; an unknown kind is a ConfigError naming the known ones."""
    known = connectors(family)
    if kind not in known:
        raise ConfigError(f"unknown {family} kind {kind!r}; known kinds: {', '.join(known) or 'none'}")
    return known[kind]
