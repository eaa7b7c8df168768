"""The table catalog: every Delta table in the lake, its Arrow schema, its keys and its layer.

All reads and writes go through :class:`Lake`, which enforces the schema (a mismatched write fails
naming the column), makes ingest idempotent (merge-insert by key: a rerun adds no rows) and retries
commits that lose a race with another writer, with jittered exponential backoff, so every batch
lands exactly once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from sluice.errors import InputError, SchemaMismatch

Layer = Literal["bronze", "silver", "gold", "audit"]
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    layer: Layer
    schema: pa.Schema
    keys: tuple[str, ...]
    description: str

    @property
    def required(self) -> set[str]:
        return {f.name for f in self.schema if not f.nullable}


def _schema(*fields: tuple) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=nullable) for n, t, nullable in fields])


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            "raw_images", "bronze",
            _schema(
                ("image_id", pa.string(), False),  # sha256 of the bytes, hex
                ("content", pa.binary(), False),
                ("source", pa.string(), False),
                ("source_uri", pa.string(), False),
                ("item_id", pa.string(), True),  # the id the user's data names it by (relative path, <batch>:<index>, id column)
                ("source_label", pa.string(), True),
                ("split_hint", pa.string(), True),
                ("license", pa.string(), True),
                ("extra", pa.string(), True),  # JSON: connector-specific provenance (page URL, headers)
                ("fetched_at", TS, False),
                ("run_id", pa.string(), False),
                # the patient, lesion, camera-trap sequence or video the source says the image shows: the dataset
                # stage keeps each subject's images in one split (transform/subjects.py)
                ("subject", pa.string(), True),
            ),
            ("image_id", "source", "source_uri"),
            "Images as landed, append-only; the same bytes from two places are two rows.",
        ),
        TableSpec(
            "crowd_votes", "bronze",
            _schema(
                ("vote_id", pa.string(), False),  # stable hash of (source format, assignment/task, worker, item)
                ("item_ref", pa.string(), False),  # the item as the export names it
                ("item", pa.string(), False),  # item_ref normalised (sluice.items): the name votes are grouped by
                ("item_key", pa.string(), False),  # how `item` maps to raw_images (auto, file_name, column:item_id, ...)
                ("image_id", pa.string(), True),  # the image it resolved to when landed; null = pending (the labels stage re-resolves)
                ("worker_id", pa.string(), False),
                ("label", pa.string(), False),
                ("task_id", pa.string(), True),
                ("status", pa.string(), False),  # approved / rejected / submitted / gold (an export's known answer, not a vote)
                ("submitted_at", TS, True),
                ("source_file", pa.string(), False),
                ("source_format", pa.string(), False),  # the vote connector's kind: mturk / label_studio / csv / wide
                ("run_id", pa.string(), False),
            ),
            ("vote_id",),
            "Every crowd vote as exported, with provenance.",
        ),
        TableSpec(
            "crawl_log", "bronze",
            _schema(
                ("url", pa.string(), False),
                ("status", pa.int32(), True),
                ("bytes", pa.int64(), True),
                ("referer", pa.string(), True),
                ("robots", pa.string(), True),  # allowed / disallowed / n/a
                ("outcome", pa.string(), False),  # page / image / not_modified / dropped:<reason> / error
                ("error", pa.string(), True),
                ("fetched_at", TS, False),
                ("run_id", pa.string(), False),
                ("etag", pa.string(), True),  # validators of the response: the next crawl's conditional GET
                ("last_modified", pa.string(), True),
                ("from_cache", pa.bool_(), True),  # body served by the HTTP cache (fresh hit or revalidated)
            ),
            ("run_id", "url", "fetched_at"),
            "Every crawl request and its outcome.",
        ),
        TableSpec(
            "images", "silver",
            _schema(
                ("image_id", pa.string(), False),
                ("width", pa.int32(), False),  # as decoded, before resizing
                ("height", pa.int32(), False),
                ("mode", pa.string(), False),
                ("format", pa.string(), True),
                ("pixels", pa.binary(), False),  # normalized HxWx3 uint8, row-major
                ("pixel_hash", pa.string(), False),  # sha256 of pixels
                ("phash", pa.int64(), False),  # 64-bit perceptual hash (bit pattern stored as int64)
                ("mean", pa.float32(), True),
                ("std", pa.float32(), True),
                ("dup_group", pa.string(), True),  # unused since groups live in image_groups (always null)
                ("is_canonical", pa.bool_(), True),  # unused, as dup_group
                ("run_id", pa.string(), False),
                # face boxes blurred at clean time (privacy.faces: blur; 0 = checked, none found), null when
                # faces were not looked for (privacy.faces: keep). Last, so older lakes gain it by appending.
                ("faces_blurred", pa.int16(), True),
                # dedup's sketch of the pixels (sluice/thumbnails.py), computed at clean time: a 32x32 grey
                # thumbnail (1 KB), whether the image is greyscale, its mean colour. Null in rows cleaned before
                # these existed (dedup then computes them from the pixels).
                ("thumb", pa.binary(), True),
                ("greyscale", pa.bool_(), True),
                ("mean_rgb", pa.list_(pa.field("element", pa.float64())), True),  # Delta's name for list items
            ),
            ("image_id",),
            "Decoded, verified, normalized pixels, one row per distinct image bytes (labels live in `labels`).",
        ),
        TableSpec(
            "image_groups", "silver",
            _schema(
                ("image_id", pa.string(), False),
                ("dup_group", pa.string(), False),  # image_id of the group's canonical member
                ("is_canonical", pa.bool_(), False),
                ("match_kind", pa.string(), True),  # exact / shifted / cropped / mirrored / overlaid / framed / stretched / greyscale / recoloured / near; null alone
                ("match_score", pa.float32(), True),  # verification score of that strongest match
                ("match_with", pa.string(), True),  # the image it matched best
                ("run_id", pa.string(), False),
                # the dedup settings and pixel hash this row was computed from (transform/dedup_state.py).
                # Last, so older lakes gain it by appending.
                ("match_basis", pa.string(), True),
                # the image's window codes (transform/dedup_codes.py: 75 query and 4 or 8 indexed windows as
                # little-endian int64), read by the next incremental run; null for a detail-free image
                ("window_codes", pa.binary(), True),
                ("probe_codes", pa.binary(), True),
            ),
            ("image_id",),
            "Duplicate group of every image (dedup); narrow, so regrouping never rewrites pixels.",
        ),
        TableSpec(
            "labels", "silver",
            _schema(
                ("item", pa.string(), False),  # the image_id, or the votes' item name while no image matches
                ("image_id", pa.string(), True),  # null for items whose image has not landed
                ("label", pa.string(), True),  # the best guess, also for unresolved items (null: no evidence)
                ("label_source", pa.string(), False),  # given / majority / dawid_skene / ...
                ("confidence", pa.float64(), True),
                ("votes", pa.int32(), False),
                ("agreement", pa.float64(), True),
                ("status", pa.string(), False),  # resolved / unresolved / conflict
                ("reason", pa.string(), True),
                ("run_id", pa.string(), False),
                # the crowd's own answer wherever votes were aggregated, also where a source label won
                # (reason crowd_overridden: where the crowd and the dataset disagree)
                ("crowd_label", pa.string(), True),
                ("crowd_confidence", pa.float64(), True),
            ),
            ("item",),
            "One label per image (and per voted item without an image) with where it came from and how sure we are.",
        ),
        TableSpec(
            "annotators", "silver",
            _schema(
                ("worker_id", pa.string(), False),
                ("votes", pa.int32(), False),
                ("evidence_votes", pa.int32(), True),  # votes on items others (or gold) also labelled
                ("accuracy", pa.float64(), True),  # null without evidence votes
                ("accuracy_low", pa.float64(), True),  # 95% Wilson interval of the accuracy (effective votes)
                ("accuracy_high", pa.float64(), True),
                ("confusion", pa.string(), True),  # JSON summary of the estimated confusion matrix
                ("is_spammer", pa.bool_(), False),
                ("is_adversarial", pa.bool_(), False),
                ("run_id", pa.string(), False),
            ),
            ("worker_id",),
            "Estimated reliability of every crowd worker.",
        ),
        TableSpec(
            "quarantine", "silver",
            _schema(
                ("source_table", pa.string(), False),
                ("row_key", pa.string(), False),
                ("stage", pa.string(), False),
                ("check", pa.string(), False),
                ("reason", pa.string(), False),
                ("details", pa.string(), True),
                ("run_id", pa.string(), False),
                ("quarantined_at", TS, False),
            ),
            ("source_table", "row_key", "stage", "check"),
            "Every rejected row, with the stage and check that rejected it and why.",
        ),
        TableSpec(
            "dataset", "gold",
            _schema(
                ("image_id", pa.string(), False),
                ("split", pa.string(), False),  # train / val / test
                ("label", pa.string(), False),
                ("class_index", pa.int32(), False),
                ("weight", pa.float64(), False),
                ("dup_group", pa.string(), False),
                ("run_id", pa.string(), False),
            ),
            ("image_id",),
            "The training set: split, class and sample weight per image.",
        ),
        TableSpec(
            "split_pins", "gold",
            _schema(
                ("image_id", pa.string(), False),  # a surviving member of a group whose split key was erased
                ("seed", pa.int64(), False),  # the dataset.seed the rank was computed for
                ("rank", pa.int64(), False),  # the group's split rank before the erasure (a seeded hash)
                ("run_id", pa.string(), False),
                ("pinned_at", TS, False),
            ),
            ("image_id",),
            "Split ranks kept through erasures: a group whose first-landed member was erased keeps its split "
            "(sluice/split_pins.py).",
        ),
        TableSpec(
            "predictions", "gold",
            _schema(
                ("image_id", pa.string(), False),
                ("dataset_hash", pa.string(), False),  # content hash of the snapshot the folds came from
                ("fold", pa.int32(), False),  # the fold whose model did not see this image
                ("label", pa.string(), False),  # the given label
                ("probs", pa.list_(pa.float32()), False),  # one per snapshot class, in manifest order
                ("run_id", pa.string(), False),
                ("split", pa.string(), True),  # train / val (fold models) / test (trained model or fold mean); null: older
            ),
            ("image_id", "dataset_hash"),
            "Out-of-fold predicted class probabilities of every train+val image, and of every test image from "
            "the trained model or the fold models' mean (train/oof.py).",
        ),
        TableSpec(
            "label_issues", "gold",
            _schema(
                ("image_id", pa.string(), False),
                ("dataset_hash", pa.string(), False),
                ("given_label", pa.string(), False),
                ("suggested_label", pa.string(), False),
                ("self_confidence", pa.float64(), False),
                ("margin", pa.float64(), False),  # normalised margin, (p_given - max other + 1) / 2
                ("score", pa.float64(), False),  # the ranking score, low = doubtful
                ("rank", pa.int32(), False),  # 1 = most doubtful
                ("evidence", pa.string(), True),  # JSON: label source, votes, crowd agreement where known
                ("run_id", pa.string(), False),
                ("split", pa.string(), True),  # train / val / test (ranked apart); null: older runs
            ),
            ("image_id", "dataset_hash"),
            "Labels the out-of-fold models distrust, by confident learning (train/label_issues.py): train+val, "
            "and test apart (for review).",
        ),
        TableSpec(
            "erasures", "audit",
            _schema(
                ("erasure_id", pa.string(), False),
                ("selector", pa.string(), False),  # image_id / source_uri / source / worker
                ("selector_hashes", pa.list_(pa.string()), False),  # sha256 of each value as the lake held it
                ("image_hashes", pa.list_(pa.string()), False),  # sha256 of each erased image_id (never the id)
                ("pixel_hashes", pa.list_(pa.string()), False),  # sha256 of each erased pixel_hash
                ("rows_deleted", pa.string(), False),  # JSON: table -> rows deleted
                ("tables_expired", pa.list_(pa.string()), False),  # tables whose older versions were removed
                ("versions_purged", pa.list_(pa.string()), False),  # "<commit>" or "<commit> <tag>" of purged snapshots
                ("objects_purged", pa.int64(), False),  # DVC cache and remote objects deleted
                ("reason", pa.string(), True),
                ("erased_at", TS, False),
                ("run_id", pa.string(), False),
                ("name_hashes", pa.list_(pa.string()), True),  # sha256 of each name votes gave an erased image
            ),
            ("erasure_id",),
            "Append-only record of every erasure (sluice erase): hashes and counts, never content or raw ids.",
        ),
    ]
}


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise InputError(f"unknown table '{name}'; tables: {', '.join(TABLES)}") from None


def conform(table_spec: TableSpec, data: pa.Table | pa.RecordBatch, only: Iterable[str] | None = None) -> pa.Table:
    """Return ``data`` with the table's exact schema (or just the ``only`` columns of it, in that
    order), or raise naming the offending column."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    expected = table_spec.schema
    if only is not None:
        only = list(only)
        unknown = [c for c in only if c not in expected.names]
        if unknown:
            raise SchemaMismatch(f"{table_spec.name}: no column '{unknown[0]}' (schema: {', '.join(expected.names)})")
        expected = pa.schema([expected.field(c) for c in only])
    extra = [c for c in data.column_names if c not in expected.names]
    if extra:
        raise SchemaMismatch(f"{table_spec.name}: unexpected column '{extra[0]}' (schema: {', '.join(expected.names)})")
    repeated = [c for c in set(data.column_names) if data.column_names.count(c) > 1]
    if repeated:
        raise SchemaMismatch(f"{table_spec.name}: column '{repeated[0]}' appears {data.column_names.count(repeated[0])} times")
    columns = []
    for field in expected:
        if field.name not in data.column_names:
            if not field.nullable:
                raise SchemaMismatch(f"{table_spec.name}: missing required column '{field.name}' ({field.type})")
            columns.append(pa.nulls(data.num_rows, field.type))
            continue
        col = data.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SchemaMismatch(
                    f"{table_spec.name}: column '{field.name}' has type {col.type}, expected {field.type}"
                ) from None
        if not field.nullable and col.null_count:
            raise SchemaMismatch(f"{table_spec.name}: column '{field.name}' has {col.null_count} null(s) but is required")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=expected)


def dedupe_keys(table: pa.Table, keys: Iterable[str]) -> pa.Table:
    """Keep the first row per key (a merge source with repeated keys would insert them all)."""
    keys = list(keys)
    if table.num_rows < 2:
        return table
    idx = pa.array(range(table.num_rows), pa.int64())
    first = table.select(keys).append_column("__i", idx).group_by(keys, use_threads=False).aggregate([("__i", "min")])
    keep = pc.sort_indices(first.column("__i_min"))
    return table.take(pc.take(first.column("__i_min"), keep))


#: Attempts a write gets when a data file of the version it loaded has vanished (see :func:`with_retries`).
VANISHED_RETRIES = 5


def with_retries(fn, retries: int, what: str):
    """Run ``fn``; on a lost commit race, back off with full jitter and run it again.

    ``fn`` must load the table afresh on each call. A write that loaded version v and then finds one of
    v's data files gone was overtaken by maintenance (a compaction removed the file after v, and a vacuum
    with a short retention deleted it): nothing was committed, so it runs again from HEAD, where the
    compacted files are (at most :data:`VANISHED_RETRIES` times: a file missing at HEAD is damage).
    """
    from deltalake.exceptions import CommitFailedError, DeltaError

    vanished = 0
    for attempt in range(retries + 1):
        try:
            return fn()
        except (CommitFailedError, DeltaError, FileNotFoundError) as err:
            vanished += _is_vanished_file(err)
            if not (_is_conflict(err) or _is_vanished_file(err)) or attempt == retries or vanished > VANISHED_RETRIES:
                raise
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise AssertionError(f"unreachable: {what}")


def lost_commit_race(err: Exception) -> bool:
    """Whether ``err`` is what :func:`with_retries` retries: a commit conflict or a vanished data file."""
    from deltalake.exceptions import DeltaError

    return isinstance(err, (DeltaError, FileNotFoundError)) and (_is_conflict(err) or _is_vanished_file(err))


def _is_vanished_file(err: Exception) -> bool:
    if isinstance(err, FileNotFoundError):  # read by pyarrow (the key index)
        return True
    text = str(err).lower()
    return "not found" in text and ("no such file" in text or "object at location" in text)


def _is_conflict(err: Exception) -> bool:
    from deltalake.exceptions import CommitFailedError

    if isinstance(err, CommitFailedError):
        return True
    text = str(err).lower()
    return any(s in text for s in ("conflict", "already exists", "concurrent", "version mismatch"))
