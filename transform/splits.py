"""Train / val / test by hash, so that a dataset that grows keeps every image where it was.

Each duplicate group is split by a hash of (``dataset.seed``, its *split key*): test where the hash
falls in the first ``test_fraction`` of its range, val in the next ``val_fraction``, train above. The
key is the group's first-landed member (earliest ``raw_images.fetched_at``, then smallest
``image_id``), not its id: the group id is its canonical image, which changes when a better copy
joins, and a split keyed by it would move the whole group, old members included, with probability
test + val. A new image never lands before the members it joins, so growing a group, or adding
groups, moves nothing; where two groups merge, the older one's split wins. Groups whose images show
one subject (a patient, a lesion: sluice/split_units.py) share their unit's split key, so one split. Erasing a group's key
does not move its survivors either: the erasure pins the group's rank on them (sluice/split_pins.py).

Cutting each class's groups by rank instead gives exact shares but moves every group hashed after a
new one; shares by hash are binomial (within 1.5 points at 20,000 groups). A class of 3+ groups that
the hashes leave without a split still gets one (:func:`_fill_small_classes`).
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from sluice.split_pins import stable_rank


def split_keys(members: pl.DataFrame) -> pl.DataFrame:
    """(dup_group, split_key): each group's first-landed member (``landed``, then ``image_id``); where ``members``
    has a ``unit`` (groups showing one subject, sluice/split_units.py), the unit's, so its groups share a split."""
    unit = "unit" if "unit" in members.columns else "dup_group"
    keys = (members.sort("landed", "image_id", nulls_last=True)
            .group_by(unit, maintain_order=True).agg(split_key=pl.col("image_id").first()))
    return keys if unit == "dup_group" else members.select("dup_group", unit).unique().join(keys, on=unit).drop(unit)


def assign_splits(groups: pl.DataFrame, cfg, pins: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add ``split`` and ``rank`` to labelled groups (``leak`` marks source-test groups with a train member);
    a split key with a pin (``pins``: image_id, pinned_rank; sluice/split_pins.py) keeps its pinned rank."""
    # the source's test split is the test split where it holds a labelled group of its own: one whose only
    # labelled images are copies of train images (a competition's unlabelled test/ beside them) makes none
    use_source_test = cfg.keep_source_test and bool((groups["hint_test"] & ~groups["hint_train"]).any())
    if pins is not None and pins.height:
        groups = groups.join(pins.rename({"image_id": "split_key"}), on="split_key", how="left")
    else:
        groups = groups.with_columns(pinned_rank=pl.lit(None, pl.Int64))
    g = groups.with_columns(rank=pl.coalesce("pinned_rank", stable_rank(groups["split_key"], cfg.seed)),
                            from_test=pl.lit(use_source_test) & pl.col("hint_test")).drop("pinned_rank")
    g = g.with_columns(leak=pl.col("from_test") & pl.col("hint_train"))
    test_frac = 0.0 if use_source_test else cfg.test_fraction
    where = pl.col("rank").cast(pl.Float64) / 2.0 ** 63  # [0, 1)
    free = g.filter(~pl.col("from_test")).with_columns(
        split=pl.when(where < test_frac).then(pl.lit("test"))
        .when(where < test_frac + cfg.val_fraction).then(pl.lit("val")).otherwise(pl.lit("train")))
    free = _fill_small_classes(free, [name for name, f in (("test", test_frac), ("val", cfg.val_fraction)) if f > 0])
    fixed = g.filter(pl.col("from_test")).with_columns(
        split=pl.when(pl.col("leak")).then(pl.lit("train" if cfg.leak_policy == "to_train" else "dropped"))
        .otherwise(pl.lit("test")))
    return pl.concat([free, fixed]).sort("dup_group")


def _fill_small_classes(free: pl.DataFrame, wanted: list[str]) -> pl.DataFrame:
    """A class of 3+ groups gets at least one train group and one of each ``wanted`` split: a missing
    split takes, from the fullest other split, the group hashed nearest to it (the only groups a
    later addition to that class can move back). A group that shares a subject with others
    (``unit_groups`` > 1) is never moved: it would leave its subject in two splits."""
    splits = ["train", *wanted]
    have = free.group_by("label").agg(pl.len().alias("n"), pl.col("split").n_unique().alias("got"))
    short = have.filter((pl.col("n") >= 3) & (pl.col("got") < len(splits)))["label"]
    moved: dict[str, str] = {}
    bound = set(free.filter(pl.col("unit_groups") > 1)["dup_group"]) if "unit_groups" in free.columns else set()
    for label in short:
        rows = free.filter(pl.col("label") == label).sort("rank").select("dup_group", "split").rows()
        split = dict(rows)
        for need in splits:
            counts = Counter(split.values())
            if counts[need]:
                continue
            donor = max((s for s in counts if counts[s] >= 2), key=lambda s: (counts[s], s == "train"))
            pool = [group for group, _ in rows if split[group] == donor and group not in bound]
            if not pool:
                continue
            pick = pool[-1] if need == "train" else pool[0]  # train lies above the other splits' hashes
            split[pick] = moved[pick] = need
    if not moved:
        return free
    changed = pl.col("split")
    for name in splits:
        ids = [group for group, s in moved.items() if s == name]
        changed = pl.when(pl.col("dup_group").is_in(ids)).then(pl.lit(name)).otherwise(changed) if ids else changed
    return free.with_columns(split=changed)
