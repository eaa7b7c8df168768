"""Right to erasure, in the lake: which rows of which table an erasure selector reaches, and deleting them.

A selector names what to erase: image ids, source URIs, a source, a crowd worker (by raw id; it is
turned into its pseudonym with :mod:`sluice.privacy` when workers are pseudonymised), or a subject (a
patient: every image whose ``raw_images.subject`` is their raw id or its pseudonym). Images reached
through a URI, a source or a subject are erased as images: every row that holds their id, bytes or pixels goes,
in every table, also where the same bytes landed from another place. A worker's erasure removes
their votes and annotator row; labels computed from those votes stay (they hold no worker id).

:data:`RULES` says, per table, which column holds what; a table added to the catalog later with an
``image_id`` or ``worker_id`` column is covered by :func:`rules_for`. Rows are deleted by key through
:meth:`sluice.lake.Lake.delete_keys` (the Delta log records the key columns, not the values). Rows
that only point at an erased image (a duplicate group whose canonical member was erased) are
re-pointed at a surviving member rather than deleted. The ``erasures`` table is never touched here.
The rest of an erasure: :mod:`sluice.erasure_history` (older versions), :mod:`sluice.erasure_snapshots`
(DVC), :mod:`sluice.erasure_record` (the audit row).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sluice.catalog import TABLES
from sluice.erasure_scan import Targets, sha
from sluice.errors import ConfigError, InputError

SELECTORS = ("image_id", "source_uri", "source", "worker", "subject")
AUDIT_TABLE = "erasures"
_IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")

# table -> (column, what it holds, how it matches): what is id / uri / worker / name (a vote's name for an
# image); how is eq, contains, or item (the name or its path's tail, as sluice/items.py resolves it).
RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "raw_images": (("image_id", "id", "eq"),),
    "crowd_votes": (("image_id", "id", "eq"), ("item", "id", "eq"), ("item", "name", "item"),
                    ("worker_id", "worker", "eq")),
    "crawl_log": (("url", "uri", "eq"),),
    "images": (("image_id", "id", "eq"),),
    "image_groups": (("image_id", "id", "eq"),),
    "labels": (("item", "id", "eq"), ("item", "name", "item"), ("image_id", "id", "eq")),
    "annotators": (("worker_id", "worker", "eq"),),
    "quarantine": (("row_key", "id", "contains"), ("row_key", "uri", "eq"), ("row_key", "worker", "contains"),
                   ("details", "id", "contains"), ("details", "uri", "contains"), ("details", "worker", "contains")),
    "dataset": (("image_id", "id", "eq"),),
    "predictions": (("image_id", "id", "eq"),),
    "label_issues": (("image_id", "id", "eq"), ("evidence", "worker", "contains")),
}
_GENERIC = {"image_id": "id", "worker_id": "worker", "source_uri": "uri", "url": "uri"}


def rules_for(name: str) -> tuple[tuple[str, str, str], ...]:
    if name == AUDIT_TABLE:
        return ()
    if name in RULES:
        return RULES[name]
    columns = TABLES[name].schema.names
    return tuple((c, what, "eq") for c, what in _GENERIC.items() if c in columns)


@dataclass
class Selection:
    """What one erasure reaches: the selector as given and the ids, URIs and workers it resolves to."""

    kind: str
    values: list[str]  # as the lake holds them (a worker's pseudonym, not the raw id)
    ids: set[str] = field(default_factory=set)
    uris: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)
    pixel_hashes: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # what votes may call the images: unique path suffixes, item_id

    def targets(self) -> Targets:
        return Targets({sha(i) for i in self.ids}, {sha(p) for p in self.pixel_hashes},
                       {sha(v) for v in (*self.values, *self.uris, *self.workers)}, {sha(n) for n in self.names})


def stored_values(kind: str, raw: list[str], params, lake=None) -> list[str]:
    """The selector values as the lake holds them; a worker's raw id becomes its pseudonym. Without
    $SLUICE_PSEUDONYM_KEY a worker (pseudonymised) or a subject raw id (where the params or the lake's
    ``raw_images.subject`` say subjects are pseudonyms) is refused in one line: it would match nothing."""
    if kind not in SELECTORS:
        raise InputError(f"unknown selector '{kind}'; one of {', '.join(SELECTORS)}")
    values = [v.strip() for v in raw if v and v.strip()]
    if not values:
        raise InputError(f"--{kind.replace('_', '-')}: no value given")
    if kind == "image_id":
        bad = [v for v in values if not _IMAGE_ID.match(v.lower())]
        if bad:
            raise InputError(f"--image-id {bad[0][:70]!r}: an image id is the 64-hex sha256 of the image's bytes")
        return [v.lower() for v in values]
    if kind == "worker" and params.privacy.pseudonymize_workers:
        from sluice.privacy import worker_pseudonymizer

        to_pseudonym = worker_pseudonymizer(True)  # ConfigError (one line) without $SLUICE_PSEUDONYM_KEY
        return [to_pseudonym(v) for v in values]
    if kind == "subject":  # as given (landed without the key, or pseudonymisation off) and as its pseudonym
        from sluice.privacy import SUBJECT_PSEUDONYM, key_or_none, subject_pseudonymizer

        raw_ids = [v for v in values if not SUBJECT_PSEUDONYM.match(v)]  # an s-... pseudonym matches as given
        if raw_ids and key_or_none() is None and (params.privacy.pseudonymize_subjects is True
                                                  or _pseudonymous_subjects(lake)):
            raise ConfigError("--subject: $SLUICE_PSEUDONYM_KEY is not set, and the lake stores subjects as keyed "
                              "pseudonyms, so a raw id matches none of them; set the key the subjects landed with "
                              "(or give the s-... pseudonym itself)")
        to_pseudonym = subject_pseudonymizer(params.privacy.pseudonymize_subjects)
        return values + ([to_pseudonym(v) for v in values] if to_pseudonym else [])
    return values


def _pseudonymous_subjects(lake) -> bool:
    """Whether any ``raw_images.subject`` is a pseudonym (``s-`` + 20 hex)."""
    from sluice.privacy import SUBJECT_PSEUDONYM

    if lake is None or not lake.exists("raw_images") or "subject" not in lake.dataset("raw_images").schema.names:
        return False
    return any(s and SUBJECT_PSEUDONYM.match(s) for s in set(lake.read("raw_images", ["subject"]).column(0).to_pylist()))


def _column(lake, name: str, column: str, where: str, values: list[str]) -> list:
    """``column`` of the rows of ``name`` whose ``where`` is one of ``values`` (read, then filtered here:
    pushed-down filters on string columns fail on some deltalake/pyarrow pairs)."""
    if not values or not lake.exists(name) or not {column, where} <= set(lake.dataset(name).schema.names):
        return []
    wanted = set(values)
    table = lake.read(name, list(dict.fromkeys([where, column])))
    return [v for k, v in zip(table.column(where).to_pylist(), table.column(column).to_pylist()) if k in wanted]


def resolve(lake, kind: str, values: list[str]) -> Selection:
    """The image ids, URIs, workers and pixel hashes a selector reaches in the lake as it is now."""
    sel = Selection(kind, values)
    if kind == "image_id":
        sel.ids = set(values)
    elif kind == "source_uri":
        sel.uris = set(values)
        sel.ids = set(_column(lake, "raw_images", "image_id", "source_uri", values))
    elif kind == "source":
        sel.ids = set(_column(lake, "raw_images", "image_id", "source", values))
    elif kind == "subject":
        sel.ids = set(_column(lake, "raw_images", "image_id", "subject", values))
    else:
        sel.workers = set(values)
    if sel.ids:
        ids = sorted(sel.ids)
        sel.uris |= set(_column(lake, "raw_images", "source_uri", "image_id", ids))
        sel.pixel_hashes = {p for p in _column(lake, "images", "pixel_hash", "image_id", ids) if p}
        sel.names = item_names(lake, sel.ids)
    return sel


def item_names(lake, ids: set[str]) -> set[str]:
    """The names a vote export may give these images and that name no other image (sluice/items.py's
    ``auto`` key: the URI, its absolute path, ``item_id``, a packed image's path, every path suffix of up
    to four components that is unique in the lake). A vote that names an erased image so is erased with it,
    and one that lands later is dropped (sluice/tombstones.py). The ids themselves are not repeated here."""
    import polars as pl

    from sluice.items import ItemIndex

    if not ids or not lake.exists("raw_images"):
        return set()
    table = ItemIndex.from_lake(lake).table("auto")
    names = table.filter(pl.col("image_id").is_in(sorted(ids)))["ref"].to_list()
    return {n for n in names if n and n not in ids}


def _mask(table, rules, sel: Selection):
    """Boolean array: the rows of ``table`` that a rule matches."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pa.array([False] * table.num_rows, pa.bool_())
    wanted = {"id": sel.ids, "uri": sel.uris, "worker": sel.workers, "name": sel.names}
    for column, what, how in rules:
        values = sorted(wanted[what])
        if not values or column not in table.column_names:
            continue
        col = table.column(column)
        if how == "item":
            names = sel.targets()
            hit = pa.array([v is not None and names.names_item(v) for v in col.to_pylist()], pa.bool_())
        elif how == "eq":
            hit = pc.is_in(col, value_set=pa.array(values, col.type))
        else:
            hit = pa.array([False] * table.num_rows, pa.bool_())
            for v in values:
                hit = pc.or_(hit, pc.match_substring(col, v))
        mask = pc.or_(mask, pc.fill_null(hit, False))
    return mask


def matching_keys(lake, name: str, sel: Selection):
    """The key columns of the rows of ``name`` the selection reaches (None: table absent or not reached)."""
    rules = rules_for(name)
    if not rules or not lake.exists(name):
        return None
    spec = TABLES[name]
    present = lake.dataset(name).schema.names
    columns = list(dict.fromkeys([*spec.keys, *(c for c, _, _ in rules if c in present)]))
    table = lake.read(name, columns)
    keys = table.filter(_mask(table, rules, sel)).select(list(spec.keys))
    return keys if keys.num_rows else None


def plan(lake, sel: Selection) -> dict[str, int]:
    """table -> rows the selection reaches (dry run)."""
    counts = {}
    for name in TABLES:
        keys = matching_keys(lake, name, sel)
        if keys is not None:
            counts[name] = keys.num_rows
    return counts


def delete(lake, sel: Selection, run_id: str, seed: int | None = None) -> dict[str, int]:
    """Delete every row the selection reaches, in every table; re-point duplicate groups. table -> rows.
    With ``seed`` (``dataset.seed``), a group whose first-landed member goes keeps its split (split_pins)."""
    from sluice.split_pins import pin_before_erasure

    if seed is not None and sel.ids:
        pin_before_erasure(lake, sel.ids, seed, run_id)
    counts = {}
    for name in TABLES:
        keys = matching_keys(lake, name, sel)
        if keys is not None:
            counts[name] = lake.delete_keys(name, keys, run_id=run_id, operation="erase")
    if sel.ids:
        regroup(lake, sel.ids, run_id)
    return counts


def regroup(lake, erased: set[str], run_id: str) -> int:
    """Rows of ``image_groups`` and ``dataset`` that still name an erased image as their group (or best
    match) get a surviving member as canonical instead, and every row of such a group loses its
    ``match_basis``, so that the next dedup run recomputes the groups (transform/dedup_state.py).
    Returns the rows changed."""
    import pyarrow as pa

    changed = 0
    if lake.exists("image_groups"):
        groups = lake.read("image_groups", ["image_id", "dup_group", "is_canonical", "match_kind", "match_score",
                                            "match_with"]).to_pylist()
        members: dict[str, list[str]] = {}
        for row in groups:
            members.setdefault(row["dup_group"], []).append(row["image_id"])
        canonical = {g: min(m) for g, m in members.items() if g in erased}
        touched = {row["dup_group"] for row in groups if row["image_id"] in erased}
        rows = []
        for row in groups:
            if row["dup_group"] in canonical or row["match_with"] in erased or row["dup_group"] in touched:
                group = canonical.get(row["dup_group"], row["dup_group"])
                lost_match = row["match_with"] in erased
                rows.append({"image_id": row["image_id"], "dup_group": group, "is_canonical": row["image_id"] == group,
                             "match_with": None if lost_match else row["match_with"],
                             "match_kind": None if lost_match else row["match_kind"],
                             "match_score": None if lost_match else row["match_score"], "match_basis": None})
        if rows:
            columns = ["dup_group", "is_canonical", "match_with", "match_kind", "match_score", "match_basis"]
            if "match_basis" not in lake.dataset("image_groups").schema.names:  # dedup has not run since it came
                columns.pop()
            changed += lake.update_columns("image_groups", pa.Table.from_pylist(rows), columns,
                                           run_id=run_id, operation="erase: regroup")
        if lake.exists("dataset"):
            dataset = lake.read("dataset", ["image_id", "dup_group"]).to_pylist()
            moved = [{"image_id": r["image_id"], "dup_group": canonical.get(r["dup_group"], r["image_id"])}
                     for r in dataset if r["dup_group"] in erased]
            if moved:
                changed += lake.update_columns("dataset", pa.Table.from_pylist(moved), ["dup_group"], run_id=run_id,
                                               operation="erase: regroup")
    return changed
