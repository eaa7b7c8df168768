"""Erasing an image does not move its duplicates to another split.

The dataset stage splits each duplicate group by a seeded hash of its *split key*, the group's
first-landed member (``transform/splits.py``), so that a growing lake moves nothing. Erasing that member
would make the next-landed one the key, and the group's surviving copies would move with probability
test + val: copies of a test image could then train the next dataset version, and a version compared
with the one before would differ in images the erasure never touched. So before an erasure deletes a
group's split key, the rank that key's hash gave the group (for the current ``dataset.seed``, or the
key's own pin) is pinned on every surviving member, in ``split_pins``; the dataset stage takes a group's
rank from its split key's pin where there is one for its seed. A pin holds the survivor's image id, the
seed and a 63-bit seeded hash, never the erased id (``sluice erase``'s scan of the lake finds no trace).
"""

from __future__ import annotations

import hashlib

import polars as pl
import pyarrow as pa

from sluice.split_units import image_subjects, units

TABLE = "split_pins"


def stable_rank(keys: pl.Series, seed: int) -> pl.Series:
    """A seeded pseudo-random 63-bit order key per string that does not depend on the other keys."""
    return pl.Series([int.from_bytes(hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest(), "big") >> 1
                      for k in keys], dtype=pl.Int64)


def pinned(lake, seed: int) -> pl.DataFrame:
    """(image_id, pinned_rank) of every pin made under ``seed`` (a pin of another seed no longer holds)."""
    empty = pl.DataFrame(schema={"image_id": pl.String, "pinned_rank": pl.Int64})
    if not lake.exists(TABLE):
        return empty
    pins = pl.from_arrow(lake.read(TABLE, columns=["image_id", "seed", "rank"]))
    return pins.filter(pl.col("seed") == seed).select("image_id", pinned_rank="rank") if pins.height else empty


def pin_before_erasure(lake, erased: set[str], seed: int, run_id: str) -> int:
    """Pin the rank of every group (or unit of groups showing one subject, split_units.py) whose split key is among
    ``erased`` on its surviving members (run before
    the erased rows go: the groups and landing times are read from the lake). Returns the pins written."""
    if not erased or not lake.exists("image_groups") or not lake.exists("raw_images"):
        return 0
    groups = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group"]))
    groups = groups.join(units(groups, image_subjects(lake)).select("dup_group", "unit"), on="dup_group")
    touched = groups.filter(pl.col("image_id").is_in(list(erased)))["unit"].unique()
    members = groups.filter(pl.col("unit").is_in(touched))
    if members.height < 2:
        return 0
    # filtered here, not pushed down: pyarrow fails an ``isin`` of up to 50 ids against the string_view statistics of
    # a file delta-rs's merge wrote (an update of raw_images: transform/export.py's iter_pixels)
    landed = (pl.from_arrow(lake.read("raw_images", columns=["image_id", "fetched_at"]))
              .filter(pl.col("image_id").is_in(members["image_id"].implode()))
              .group_by("image_id").agg(landed=pl.col("fetched_at").min()))
    keys = (members.join(landed, on="image_id", how="left").sort("landed", "image_id", nulls_last=True)
            .group_by("unit", maintain_order=True).agg(split_key=pl.col("image_id").first())
            .filter(pl.col("split_key").is_in(list(erased))))
    if keys.is_empty():
        return 0
    keys = (keys.join(pinned(lake, seed), left_on="split_key", right_on="image_id", how="left")
            .with_columns(rank=pl.coalesce("pinned_rank", stable_rank(keys["split_key"], seed))))
    pins = (members.filter(~pl.col("image_id").is_in(list(erased))).join(keys.select("unit", "rank"), on="unit")
            .select("image_id", pl.lit(seed, pl.Int64).alias("seed"), "rank"))
    if pins.is_empty():
        return 0
    from sluice.runs import utcnow

    n = pins.height
    lake.upsert(TABLE, pa.table({"image_id": pins["image_id"].to_arrow(), "seed": pins["seed"].to_arrow(),
                                 "rank": pins["rank"].to_arrow(), "run_id": pa.array([run_id] * n, pa.string()),
                                 "pinned_at": pa.array([utcnow()] * n, pa.timestamp("us", tz="UTC"))}), run_id=run_id)
    return n
