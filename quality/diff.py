"""``sluice quality diff A B``: what changed between two versions of the training set.

A side is a Delta version of the gold ``dataset`` table (``3``, ``v3``, or ``current``) or an
exported snapshot folder (``data/dataset``, or one checked out elsewhere). Only ids, splits, labels
and duplicate keys are read (no pixels from Delta; snapshot images are hashed shard by shard through a
memory map), so the diff stays cheap on large sets. Reported: row counts per split, class balance
(train share per class, imbalance ratio), duplicate rate and groups spanning splits, and label
agreement on the images both sides contain (changed labels, moved splits, added/removed images).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sluice.errors import InputError


@dataclass
class Side:
    name: str
    rows: pl.DataFrame  # image_id, split, label, dup_key


def load_side(spec: str, lake) -> Side:
    path = Path(spec)
    if (path / "manifest.json").is_file():
        return _snapshot_side(path)
    if spec in ("current", "latest"):
        v = None
    elif spec.removeprefix("@").isdigit():  # @N (or a bare N): a Delta version, as everywhere in sluice
        v = int(spec.removeprefix("@"))
    else:  # a git ref naming a dataset version: the dataset table's version its manifest recorded
        from sluice.errors import UserError
        from sluice.sql import parse_pins

        try:
            v = parse_pins([spec]).get("dataset")
        except UserError as err:
            raise InputError(f"'{spec}': not @N (a Delta version of the dataset table), current, a snapshot folder "
                             f"with manifest.json, nor a dataset version's git ref ({err})") from None
        if v is None:
            raise InputError(f"'{spec}': dataset version recorded no version of the dataset table; use @N (a Delta "
                             f"version), a git ref, current, or a snapshot folder with manifest.json")
    table = lake.read("dataset", columns=["image_id", "split", "label", "dup_group"], version=v)
    label = f"dataset@{lake.version('dataset') if v is None else v}" + ("" if v is None or spec.startswith("@") or spec.isdigit() else f" ({spec})")
    return Side(label, pl.from_arrow(table).rename({"dup_group": "dup_key"}))


def _snapshot_side(folder: Path) -> Side:
    from sluice.snapshot import load_split, read_manifest

    manifest = read_manifest(folder)
    classes = manifest["classes"]
    frames = []
    for split, entry in manifest["splits"].items():
        for k in range(len(entry["shards"])):
            arrays = load_split(folder, split, shards=[k])
            keys = [hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest() for img in arrays.images]
            frames.append(pl.DataFrame({"image_id": arrays.ids, "split": [split] * len(arrays.ids),
                                        "label": [classes[i] for i in arrays.labels.tolist()], "dup_key": keys}))
    rows = pl.concat(frames) if frames else pl.DataFrame(schema={"image_id": pl.String, "split": pl.String,
                                                                  "label": pl.String, "dup_key": pl.String})
    return Side(f"snapshot:{folder}", rows)


def profile(side: Side) -> dict:
    rows = side.rows
    n = rows.height
    per_split = dict(rows.group_by("split").len().iter_rows())
    train = rows.filter(pl.col("split") == "train").group_by("label").len()
    train_counts = dict(train.iter_rows())
    total_train = sum(train_counts.values())
    groups = rows.group_by("dup_key").agg(pl.len().alias("n"), pl.col("split").n_unique().alias("splits"))
    return {
        "rows": n, "splits": per_split,
        "train_share": {c: k / total_train for c, k in sorted(train_counts.items())} if total_train else {},
        "imbalance": (max(train_counts.values()) / min(train_counts.values())) if train_counts else None,
        "dup_rate": 1 - groups.height / n if n else 0.0,
        "groups_across_splits": groups.filter(pl.col("splits") > 1).height,
    }


def compare(a: Side, b: Side) -> dict:
    pa_, pb = profile(a), profile(b)
    joined = a.rows.join(b.rows, on="image_id", how="inner", suffix="_b")
    common = joined.height
    same = joined.filter(pl.col("label") == pl.col("label_b")).height
    changed = joined.filter(pl.col("label") != pl.col("label_b"))
    moved = joined.filter(pl.col("split") != pl.col("split_b")).height
    return {
        "a": a.name, "b": b.name, "profile_a": pa_, "profile_b": pb,
        "added": b.rows.join(a.rows, on="image_id", how="anti").height,
        "removed": a.rows.join(b.rows, on="image_id", how="anti").height,
        "common": common, "label_agreement": same / common if common else None,
        "labels_changed": changed.height, "split_moves": moved,
        "label_changes": dict(changed.group_by(pl.format("{} -> {}", "label", "label_b")).len()
                              .sort("len", descending=True).head(10).iter_rows()),
    }


def render(diff: dict) -> str:
    a, b = diff["profile_a"], diff["profile_b"]

    def line(what, va, vb, fmt="{}"):
        show = lambda v: "-" if v is None else fmt.format(v)
        mark = "" if va == vb else "  *"
        return f"  {what:<28} {show(va):>14} {show(vb):>14}{mark}"

    out = [f"dataset diff: A = {diff['a']}   B = {diff['b']}   (* = changed)",
           f"  {'':<28} {'A':>14} {'B':>14}", line("rows", a["rows"], b["rows"])]
    for split in ("train", "val", "test"):
        out.append(line(f"rows {split}", a["splits"].get(split, 0), b["splits"].get(split, 0)))
    classes = sorted(set(a["train_share"]) | set(b["train_share"]))
    for c in classes:
        out.append(line(f"train share '{c}'", a["train_share"].get(c, 0.0), b["train_share"].get(c, 0.0), "{:.2%}"))
    out += [line("imbalance (max/min train)", a["imbalance"], b["imbalance"], "{:.2f}"),
            line("duplicate rate", a["dup_rate"], b["dup_rate"], "{:.2%}"),
            line("dup groups across splits", a["groups_across_splits"], b["groups_across_splits"])]
    agreement = "-" if diff["label_agreement"] is None else f"{diff['label_agreement']:.2%}"
    out.append(f"  images: {diff['common']} in both, {diff['added']} added, {diff['removed']} removed; "
               f"label agreement {agreement} ({diff['labels_changed']} changed), {diff['split_moves']} moved split")
    if diff["label_changes"]:
        out.append("  label changes: " + ", ".join(f"{k} x{v}" for k, v in diff["label_changes"].items()))
    return "\n".join(out)
