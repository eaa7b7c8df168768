"""The connector registry: one place maps a connector ``kind`` to its config model and its reader.

Connectors are plug-ins, found through the ``sluice.connectors`` entry-point group (see
``pyproject.toml``), so the core never imports a stage package and a user's own package can add a
kind without touching Sluice. Each entry point (named ``<family>.<kind>`` by convention, since names
share one group) names a module attribute that is a ``Connector``.
Families: ``source`` (images: ``ingest.sources``), ``votes`` (crowd exports) and ``crawl`` (web sites).

A params list of connector entries is typed ``list[entry_type("source")]``: each entry is validated
by the config model of its ``kind``, so an unknown key is reported with its dotted name and an
unknown kind names the known ones. See docs/connectors.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Annotated, Any

from sluice.errors import ConfigError

GROUP = "sluice.connectors"
FAMILIES = ("source", "votes", "crawl")
# the keys by which a source entry names the subject each image shows (a patient, a person: one split each): a labels
# file's or Parquet column, a path pattern, a TFRecord feature, a WebDataset sample's json field
SUBJECT_KEYS = ("subject_column", "subject_pattern", "subject_feature", "subject_field")


@dataclass(frozen=True)
class Connector:
    """``config`` is the pydantic model of one params entry (its ``kind`` field a Literal of ``kind``);
    ``reader`` is the family's reading function (its signature is documented per family); ``detect``,
    when given, reads a path's data and returns the settings its params entry needs beyond the defaults
    (e.g. which Parquet column holds the image), raising InputError when it cannot tell: ``sluice init``
    writes them, so a user's own data needs no renaming. ``class_names``, for a source, gives the class
    names its integer labels index, in index order, when the data says (CIFAR's meta file, a Hugging Face
    Parquet file's ClassLabel): ``sluice init`` maps vote labels given as class indices through them.
    ``file_labels``, for a source whose file paths give labels (class folders), yields (path under the
    source, label) from the names alone: ``sluice init`` checks what vote class indices mean against them."""

    family: str
    kind: str
    config: type
    reader: Callable
    summary: str = ""
    detect: Callable[[str], dict] | None = None
    class_names: Callable[[Any], list[str] | None] | None = None
    file_labels: Callable[[Any], Any] | None = None


@functools.cache
def connectors(family: str) -> dict[str, Connector]:
    """Every registered connector of ``family``, by kind.

    Only that family's entry points (named ``<family>.<kind>``) are imported, so a broken plug-in of
    one family cannot stop another family's connectors from loading.
    """
    found: dict[str, Connector] = {}
    for ep in entry_points(group=GROUP):
        if ep.name.split(".", 1)[0] != family:
            continue
        try:
            connector = ep.load()
        except ImportError as err:
            raise ConfigError(f"connector plug-in {ep.name!r} ({ep.value}) cannot be imported: {err}; "
                              f"reinstall it (pip install -e .)") from None
        if not isinstance(connector, Connector) or connector.family != family:
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) is not a sluice {family} Connector")
        if connector.kind in found and found[connector.kind] is not connector:  # one seen twice (two installs) is fine
            raise ConfigError(f"two connectors claim {family} kind {connector.kind!r} "
                              f"(entry point {ep.name!r} = {ep.value}); uninstall one")
        found[connector.kind] = connector
    return dict(sorted(found.items()))


def _unknown_kind(family: str, kind: object, known: dict[str, Connector]) -> str:
    if not known:
        return (f"unknown {family} kind {kind!r}: no {family} connectors are registered "
                f"(is Sluice installed? run: pip install -e .)")
    return f"unknown {family} kind {kind!r}; known kinds: {', '.join(known)}"


def get(family: str, kind: str) -> Connector:
    """The connector for ``kind``; an unknown kind is a ConfigError naming the known ones."""
    known = connectors(family)
    if kind not in known:
        raise ConfigError(_unknown_kind(family, kind, known))
    return known[kind]


def validate_entry(family: str, value: Any):
    """Validate one params entry with the config model of its ``kind`` (pydantic errors keep their
    location, so a nested unknown key is named ``<list>.<i>.<key>`` by the params loader)."""
    from pydantic import BaseModel, ValidationError
    from pydantic_core import PydanticCustomError

    if isinstance(value, BaseModel):  # already validated (model_copy, or built in code)
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("connector_entry", "must be a mapping with a 'kind' key")
    known = connectors(family)
    kind = value.get("kind")
    if kind not in known:
        what = "missing 'kind'" if kind is None else _unknown_kind(family, kind, known)
        hint = f"; known kinds: {', '.join(known)}" if kind is None and known else ""
        raise ValidationError.from_exception_data("connector", [{
            "type": PydanticCustomError("unknown_kind", what + hint), "loc": ("kind",), "input": kind}])
    model = known[kind].config
    try:
        return model.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] != "extra_forbidden":
            raise
        allowed = ", ".join(sorted(model.model_fields))
        raise ValidationError.from_exception_data("connector", [{
            "type": PydanticCustomError("extra_forbidden", "Extra inputs are not permitted",
                                        {"allowed_keys": allowed}),
            "loc": first["loc"], "input": first["input"]}]) from None


def entry_type(family: str):
    """The pydantic type of one params entry of ``family``, validated through the registry."""
    from pydantic import PlainSerializer, PlainValidator

    return Annotated[Any, PlainValidator(functools.partial(validate_entry, family)),
                     PlainSerializer(lambda v: v.model_dump() if hasattr(v, "model_dump") else v)]
