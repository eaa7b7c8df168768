"""Stage ``dataset``: silver ``images`` (+ duplicate groups) and ``labels`` -> gold ``dataset``.

One row per duplicate group: its canonical image, the group's label, a split and a sample weight, so a
group can never span two splits and near-copies never count twice. Step by step (all Polars):

1. **Group labels.** Only ``labels`` rows with status ``resolved`` count. A group whose members carry
   different labels is resolved by ``dataset.group_conflict``: ``majority`` (ties are quarantined),
   ``canonical`` (the canonical member's label; quarantined when it has none) or ``quarantine``. A
   group with no resolved label stays out of the dataset as *unlabeled* (it is not an error).
2. **Source test split.** With ``keep_source_test`` a group with a member the source put in its test
   split (``raw_images.split_hint``) is test. If the same group also has a member from the source's
   train split, that test image has a (near-)duplicate in train: it is reported and, per
   ``leak_policy``, moved to train (``to_train``) or quarantined (``drop``).
3. **Stratified split** of the other groups by class: each class's groups are ordered by a hash of
   (``seed``, group id), so the split is deterministic and adding images does not reshuffle others;
   the first ``test_fraction`` (only when no source test split is used) go to test, the next
   ``val_fraction`` to val, the rest to train. A class with 3+ groups gets at least one of each.
4. **Balance** the train split (val and test keep weight 1): ``class_weights`` sets weight
   N / (K * n_class); ``oversample`` sets an integer multiplicity so each class reaches
   ``balance_target`` (default: the largest class); ``undersample`` keeps ``balance_target``
   (default: the smallest class) groups per class and leaves the rest out. Pixels are never copied.
5. **Normalize**: per-channel mean/std of the train split's pixels (0..1 scale) go into the manifest
   for the export stage.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sluice.errors import InputError
from sluice.lake import Lake
from sluice.runs import new_run_id, reconcile, utcnow
from sluice.snapshot import SPLITS, channel_stats

STAGE = "dataset"


# ---------------------------------------------------------------------------- inputs
def load_members(lake: Lake) -> pl.DataFrame:
    """Every silver image with its group, resolved label and the splits its sources gave it."""
    if not lake.exists("images"):
        raise InputError(f"table 'images' does not exist yet in the lake at {lake.root} (run: python -m transform.clean)")
    if not lake.exists("labels"):
        raise InputError(f"table 'labels' does not exist yet in the lake at {lake.root} "
                         "(run the labels stage first: python -m transform.labels)")
    if not lake.exists("image_groups"):
        raise InputError(f"table 'image_groups' does not exist yet in the lake at {lake.root} "
                         "(run the dedup stage after clean: python -m transform.dedup)")
    groups = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group", "is_canonical"]))
    images = pl.from_arrow(lake.read("images", columns=["image_id"])).join(groups, on="image_id", how="left")
    if images["dup_group"].null_count():
        raise InputError(f"{images['dup_group'].null_count()} images have no duplicate group yet "
                         "(run the dedup stage after clean: python -m transform.dedup)")
    labels = (pl.from_arrow(lake.read("labels", columns=["image_id", "label", "status"]))
              .filter((pl.col("status") == "resolved") & pl.col("label").is_not_null())
              .select("image_id", "label").unique("image_id", keep="first"))
    hints = (pl.from_arrow(lake.read("raw_images", columns=["image_id", "split_hint"]))
             .with_columns(pl.col("split_hint").str.strip_chars().str.to_lowercase())
             .group_by("image_id").agg(hint_test=(pl.col("split_hint") == "test").any(),
                                       hint_train=pl.col("split_hint").is_in(["train", "val"]).any()))
    return (images.join(labels, on="image_id", how="left").join(hints, on="image_id", how="left")
            .with_columns(pl.col("hint_test", "hint_train").fill_null(False)).sort("image_id"))


# ---------------------------------------------------------------------------- pure table logic
def stable_rank(keys: pl.Series, seed: int) -> pl.Series:
    """A seeded pseudo-random order key per string that does not depend on the other keys."""
    return pl.Series([int.from_bytes(hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest(), "big") >> 1
                      for k in keys], dtype=pl.Int64)


def resolve_groups(members: pl.DataFrame, policy: str) -> pl.DataFrame:
    """One row per dup_group: canonical image, label (or null), outcome and why.

    outcome: ``ok``, ``unlabeled`` or ``conflict`` (the labels found, for the quarantine details).
    """
    votes = (members.filter(pl.col("label").is_not_null()).group_by("dup_group", "label").len()
             .sort(["dup_group", "len", "label"], descending=[False, True, False]))
    tally = votes.group_by("dup_group", maintain_order=True).agg(
        labels=pl.col("label"), counts=pl.col("len"))
    canon = members.filter(pl.col("is_canonical")).select("dup_group", image_id="image_id", canonical_label="label")
    groups = members.group_by("dup_group").agg(
        members=pl.len(), hint_test=pl.col("hint_test").any(), hint_train=pl.col("hint_train").any())
    g = groups.join(canon, on="dup_group", how="left").join(tally, on="dup_group", how="left")
    n_labels = pl.col("labels").list.len().fill_null(0)
    top_unique = (n_labels == 1) | (pl.col("counts").list.get(0, null_on_oob=True) > pl.col("counts").list.get(1, null_on_oob=True))
    if policy == "majority":
        chosen = pl.when(top_unique).then(pl.col("labels").list.first())
    elif policy == "canonical":
        chosen = pl.when(n_labels == 1).then(pl.col("labels").list.first()).otherwise(pl.col("canonical_label"))
    else:
        chosen = pl.when(n_labels == 1).then(pl.col("labels").list.first())
    return (g.with_columns(label=pl.when(n_labels == 0).then(None).otherwise(chosen))
            .with_columns(outcome=pl.when(n_labels == 0).then(pl.lit("unlabeled"))
                          .when(pl.col("label").is_null()).then(pl.lit("conflict")).otherwise(pl.lit("ok")),
                          found=pl.concat_str(pl.col("labels").list.join(","), pl.lit(" x"),
                                              pl.col("counts").cast(pl.List(pl.String)).list.join(",")))
            .select("dup_group", "image_id", "members", "label", "outcome", "found", "hint_test", "hint_train")
            .sort("dup_group"))


def assign_splits(groups: pl.DataFrame, cfg) -> pl.DataFrame:
    """Add ``split`` to labelled groups (``leak`` marks source-test groups with a train member)."""
    use_source_test = cfg.keep_source_test and bool(groups["hint_test"].any())
    g = groups.with_columns(rank=stable_rank(groups["dup_group"], cfg.seed),
                            from_test=pl.lit(use_source_test) & pl.col("hint_test"))
    g = g.with_columns(leak=pl.col("from_test") & pl.col("hint_train"))
    free = g.filter(~pl.col("from_test")).sort("label", "rank")
    n = pl.len().over("label")
    pos = pl.int_range(pl.len()).over("label")
    test_frac = 0.0 if use_source_test else cfg.test_fraction
    n_test = _share(n, test_frac)
    n_val = _share(n, cfg.val_fraction)
    free = free.with_columns(split=pl.when(pos < n_test).then(pl.lit("test"))
                             .when(pos < n_test + n_val).then(pl.lit("val")).otherwise(pl.lit("train")))
    fixed = g.filter(pl.col("from_test")).with_columns(
        split=pl.when(pl.col("leak")).then(pl.lit("train" if cfg.leak_policy == "to_train" else "dropped"))
        .otherwise(pl.lit("test")))
    return pl.concat([free, fixed]).sort("dup_group")


def _share(n: pl.Expr, fraction: float) -> pl.Expr:
    """Rows of a class for a split: round(n * fraction), at least 1 once the class has 3 or more."""
    if fraction <= 0:
        return pl.lit(0)
    rounded = (n * fraction).round(0).cast(pl.Int64)
    return pl.when((n >= 3) & (rounded < 1)).then(1).otherwise(rounded)


def balance(rows: pl.DataFrame, strategy: str, target: int | None) -> pl.DataFrame:
    """Add ``weight`` (and drop undersampled train rows): the train split only, pixels never copied."""
    train = pl.col("split") == "train"
    n_c = pl.len().over("split", "label")
    if strategy == "none":
        return rows.with_columns(weight=pl.lit(1.0))
    if strategy == "class_weights":
        k = rows.filter(train)["label"].n_unique()
        total = rows.filter(train).height
        return rows.with_columns(weight=pl.when(train).then(total / (k * n_c)).otherwise(1.0))
    counts = rows.filter(train).group_by("label").len()["len"]
    pos = pl.col("rank").rank("ordinal").over("split", "label") - 1
    if strategy == "undersample":
        goal = target or (int(counts.min()) if len(counts) else 0)
        return rows.filter(~train | (pos < goal)).with_columns(weight=pl.lit(1.0))
    goal = target or (int(counts.max()) if len(counts) else 0)
    base = (goal // n_c).clip(lower_bound=1)
    extra = pl.when(n_c < goal).then(goal % n_c).otherwise(0)
    return rows.with_columns(weight=pl.when(train).then((base + (pos < extra).cast(pl.Int64)).cast(pl.Float64))
                             .otherwise(1.0))


def class_order(labels: list[str]) -> list[str]:
    """Classes sorted numerically when they are all integers ("2" before "10"), else alphabetically."""
    unique = sorted(set(labels))
    if all(lab.lstrip("-").isdigit() for lab in unique):
        return sorted(unique, key=int)
    return unique


def build(members: pl.DataFrame, cfg) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The gold rows, the members to quarantine (image_id, check, details), and counts."""
    groups = resolve_groups(members, cfg.group_conflict)
    labelled = assign_splits(groups.filter(pl.col("outcome") == "ok"), cfg)
    kept = labelled.filter(pl.col("split") != "dropped")
    balanced = balance(kept, cfg.balance, cfg.balance_target)
    classes = class_order(balanced["label"].to_list())
    index = pl.DataFrame({"label": classes, "class_index": list(range(len(classes)))},
                         schema={"label": pl.String, "class_index": pl.Int32})
    rows = (balanced.join(index, on="label").select("image_id", "split", "label", "class_index", "weight", "dup_group")
            .sort("image_id"))

    bad_groups = pl.concat([
        groups.filter(pl.col("outcome") == "conflict").select(
            "dup_group", check=pl.lit("group_label_conflict"),
            details=pl.format("duplicate group {} has labels {} (dataset.group_conflict: " + cfg.group_conflict + ")",
                              "dup_group", "found")),
        labelled.filter(pl.col("split") == "dropped").select(
            "dup_group", check=pl.lit("test_train_leak"),
            details=pl.format("source test image with a duplicate from the source train split in group {} "
                              "(dataset.leak_policy: drop)", "dup_group")),
    ])
    quarantined = members.join(bad_groups, on="dup_group").select("image_id", "check", "details").sort("image_id")

    in_groups = lambda frame: members.join(frame.select("dup_group"), on="dup_group").height
    undersampled = kept.join(rows.select("dup_group"), on="dup_group", how="anti")
    counts = {
        "images": members.height, "groups": groups.height,
        "dataset_rows": rows.height,
        "merged_duplicates": in_groups(rows) - rows.height + in_groups(undersampled) - undersampled.height,
        "unlabeled": in_groups(groups.filter(pl.col("outcome") == "unlabeled")),
        "quarantined": quarantined.height,
        "undersampled": undersampled.height,
        "conflict_groups": groups.filter(pl.col("outcome") == "conflict").height,
        "leak_groups": labelled.filter(pl.col("leak")).height,
        "leak_policy": cfg.leak_policy,
        "leak_image_ids": labelled.filter(pl.col("leak"))["image_id"].sort().to_list(),
        "classes": classes,
    }
    return rows, quarantined, counts


# ---------------------------------------------------------------------------- the stage
def train_channel_stats(lake: Lake, train_ids: list[str], batch_rows: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean/std (0..1) of the train split's pixels, streamed in bounded memory."""
    if not train_ids:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    size = None
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    scanner = lake.dataset("images").scanner(columns=["pixels"], filter=pc.field("image_id").isin(train_ids),
                                             batch_size=batch_rows)
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        flat = np.frombuffer(b"".join(batch.column("pixels").to_pylist()), np.uint8)
        size = size or int(round((flat.size / batch.num_rows / 3) ** 0.5))
        images = flat.reshape(batch.num_rows, size, size, 3)
        mean, std = channel_stats(images)
        w = batch.num_rows
        total += w * np.asarray(mean)
        total_sq += w * (np.asarray(std) ** 2 + np.asarray(mean) ** 2)
        count += w
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return mean.round(6).tolist(), std.round(6).tolist()


def quarantine_table(rows: pl.DataFrame, run_id: str) -> pa.Table:
    now = utcnow()
    n = rows.height
    return pa.table({
        "source_table": ["images"] * n, "row_key": rows["image_id"].to_list(), "stage": [STAGE] * n,
        "check": rows["check"].to_list(), "reason": rows["check"].to_list(), "details": rows["details"].to_list(),
        "run_id": [run_id] * n, "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })


def run(params) -> dict:
    cfg = params.dataset
    lake = Lake.from_params(params)
    run_id = new_run_id(STAGE)
    started = time.perf_counter()
    versions_in = {t: lake.version(t) for t in ("raw_images", "images", "labels")}
    members = load_members(lake)
    rows, quarantined, counts = build(members, cfg)
    if rows.height == 0:
        raise InputError("no labelled images to build a dataset from (labels has no 'resolved' row for any image)")
    lake.overwrite("dataset", rows.with_columns(run_id=pl.lit(run_id)).to_arrow(), run_id=run_id)
    lake.overwrite("quarantine", quarantine_table(quarantined, run_id), predicate=f"stage = '{STAGE}'", run_id=run_id)
    mean, std = train_channel_stats(lake, rows.filter(pl.col("split") == "train")["image_id"].to_list())

    recon = reconcile(STAGE, counts["images"], dataset=counts["dataset_rows"], merged_duplicates=counts["merged_duplicates"],
                      unlabeled=counts["unlabeled"], quarantined=counts["quarantined"], undersampled=counts["undersampled"])
    per_split = {s: dict(Counter(rows.filter(pl.col("split") == s)["label"].to_list())) for s in SPLITS}
    weights = rows.group_by("split", "label").agg(pl.col("weight").sum()).sort("split", "label")
    print(f"[{STAGE}] " + ", ".join(f"{s} {sum(per_split[s].values())}" for s in SPLITS)
          + f" ({len(counts['classes'])} classes, balance {cfg.balance}); train mean {mean} std {std}")
    if counts["leak_groups"]:
        action = "moved to train" if cfg.leak_policy == "to_train" else "dropped to quarantine"
        print(f"[{STAGE}] source test split: {counts['leak_groups']} image(s) have a duplicate in the source train "
              f"split -> {action} (dataset.leak_policy: {cfg.leak_policy})")
    return {
        "run_id": run_id, "reconcile": recon, "classes": counts["classes"],
        "counts": {s: {"rows": sum(per_split[s].values()), "per_class": per_split[s]} for s in SPLITS},
        "weight_sums": {f"{s}/{lab}": round(w, 6) for s, lab, w in weights.iter_rows()},
        "normalize": {"mean": mean, "std": std, "scale": "0..1", "split": "train"},
        "leakage": {"source_test_with_train_duplicate": counts["leak_groups"], "policy": cfg.leak_policy,
                    "image_ids": counts["leak_image_ids"]},
        "group_label_conflicts": counts["conflict_groups"], "balance": cfg.balance, "seed": cfg.seed,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions_in, "dataset": lake.version("dataset"), "quarantine": lake.version("quarantine")},
    }


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
