"""Stage ``dataset``: silver ``images`` (+ duplicate groups) and ``labels`` -> gold ``dataset``.

One row per duplicate group: its canonical image, the group's label, a split and a sample weight, so a
group can never span two splits and near-copies never count twice. Step by step (all Polars):

1. **Group labels.** Only ``labels`` rows with status ``resolved`` count. A group whose members carry
   different labels is resolved by ``dataset.group_conflict``: ``majority`` (ties are quarantined),
   ``canonical`` (the canonical member's label; quarantined when it has none) or ``quarantine``. A
   group with no resolved label stays out of the dataset as *unlabeled* (it is not an error).
2. **Source test split.** With ``keep_source_test`` a group with a member the source put in its test
   split (``raw_images.split_hint``; a source that gives train and val but no test holds out its val:
   sluice/held_out.py) is test. If the same group also has a member from the source's
   train split, that test image has a (near-)duplicate in train: it is reported and, per
   ``leak_policy``, moved to train (``to_train``) or quarantined (``drop``).
3. **Split by hash** of the other groups (``transform/splits.py``; groups whose images show one subject, a
   patient or a lesion the source names, split as one unit: ``sluice/split_units.py``): a hash of (``seed``, the
   group's first-landed member) in the first ``test_fraction`` of its range (only when no source test
   split is used) is test, in the next ``val_fraction`` val, the rest train: deterministic, about
   those shares in every class, and adding images never moves a group to another split, not even
   one a new image joins. A class with 3+ groups gets at least one of each.
4. **Balance** the train split (val and test keep weight 1): ``class_weights`` sets weight
   N / (K * n_class); ``oversample`` sets an integer multiplicity so each class reaches
   ``balance_target`` (default: the largest class); ``undersample`` keeps ``balance_target``
   (default: the smallest class) groups per class and leaves the rest out. Pixels are never copied.
5. **Label issues** (``dataset.label_issues``): the latest ``label_issues`` rows of the OOF stage
   (train/oof.py) are kept as they are (``keep``), quarantined (``drop``, check ``label_issue``) or
   given the suggested label (``relabel``); an issue whose given label is no longer the image's label
   is stale and ignored. Dropped images are a part of the reconciliation; dropped, relabelled and
   stale counts are in the manifest.
6. **Normalize**: per-channel mean/std of the train split's pixels (0..1 scale) go into the manifest
   for the export stage, with the image geometry the clean stage recorded on ``images``.

Every check and computation runs before the first write: a failing run leaves ``dataset`` as it was.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sluice import class_order, held_out
from sluice.class_order import class_list
from sluice.errors import InputError
from sluice.imaging import read_geometry
from sluice.lake import Lake
from sluice.runs import new_run_id, reconcile
from sluice import split_pins
from sluice.split_units import image_subjects, units
from sluice.snapshot import SPLITS
from sluice.stage import Quarantine, stage_logger
from transform.export import iter_pixels
from transform.splits import assign_splits, split_keys

STAGE = "dataset"


# ---------------------------------------------------------------------------- inputs
def load_members(lake: Lake, raw: pl.DataFrame) -> pl.DataFrame:
    """Every silver image with its group, resolved label, the side of its sources' splits it is on (``raw``:
    ``raw_images``' image_id, source, split_hint and fetched_at; sluice/held_out.py) and when it landed
    (``landed``: what keeps a group's split when it grows, :func:`transform.splits.split_keys`)."""
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
    hints = (held_out.sides(raw).group_by("image_id")
             .agg(hint_test=(pl.col("side") == "test").any(), hint_train=(pl.col("side") == "train").any(),
                  landed=pl.col("fetched_at").min()))
    members = (images.join(labels, on="image_id", how="left").join(hints, on="image_id", how="left")
               .with_columns(pl.col("hint_test", "hint_train").fill_null(False)).sort("image_id"))
    return members.join(units(groups, image_subjects(lake)), on="dup_group", how="left")


# ---------------------------------------------------------------------------- pure table logic
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


def with_unit_hints(groups: pl.DataFrame) -> pl.DataFrame:
    """Each labelled group takes its unit's source splits (sluice/split_units.py): one of a subject's images in the
    source's test split puts the subject's labelled groups there, and one in its train split too makes them a leak."""
    ok = pl.col("outcome") == "ok"
    return groups.with_columns(
        hint_test=pl.when(ok).then((pl.col("hint_test") & ok).any().over("unit")).otherwise(pl.col("hint_test")),
        hint_train=pl.when(ok).then((pl.col("hint_train") & ok).any().over("unit")).otherwise(pl.col("hint_train")))


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


def load_label_issues(lake: Lake) -> pl.DataFrame | None:
    """The latest OOF run's train and val label issues (image_id, given_label, suggested_label, rank), or
    None. Test issues are for a person to review: relabelling or dropping test images on a model's word
    would let the model grade its own exam."""
    if not lake.exists("label_issues"):
        return None
    cols = ["image_id", "given_label", "suggested_label", "rank", "run_id"]
    has_split = "split" in lake.dataset("label_issues").schema.names  # older lakes: no test rows either
    issues = pl.from_arrow(lake.read("label_issues", columns=cols + (["split"] if has_split else [])))
    if "split" in issues.columns:
        issues = issues.filter(pl.col("split").is_null() | (pl.col("split") != "test")).drop("split")
    if issues.height == 0:
        return issues.drop("run_id")
    return issues.filter(pl.col("run_id") == issues["run_id"].max()).drop("run_id")


def apply_label_issues(members: pl.DataFrame, issues: pl.DataFrame | None, policy: str
                       ) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Members after ``policy`` (keep | drop | relabel), the dropped ones to quarantine, and counts."""
    none = pl.DataFrame(schema={"image_id": pl.String, "check": pl.String, "details": pl.String})
    if policy == "keep" or issues is None or issues.height == 0:
        return members, none, {"policy": policy, "dropped": 0, "relabelled": 0, "stale": 0}
    found = members.select("image_id", "dup_group", "label").join(issues, on="image_id")
    match = found.filter(pl.col("label") == pl.col("given_label"))
    counts = {"policy": policy, "dropped": 0, "relabelled": 0, "stale": found.height - match.height}
    # an issue names a group's canonical image (the snapshot has one row per group): act on the group
    hit = members.join(match.select("dup_group", "given_label", "suggested_label", "rank"), on="dup_group")
    if policy == "drop":
        dropped = hit.select("image_id", check=pl.lit("label_issue"), details=pl.format(
            "group {} labelled {} but the out-of-fold model suggests {} (label_issues rank {}; "
            "dataset.label_issues: drop)", "dup_group", "given_label", "suggested_label", "rank"))
        counts["dropped"] = dropped.height
        return members.join(hit.select("dup_group"), on="dup_group", how="anti"), dropped, counts
    new = hit.filter(pl.col("label") == pl.col("given_label")).select("image_id", new_label="suggested_label")
    counts["relabelled"] = new.height
    members = (members.join(new, on="image_id", how="left")
               .with_columns(label=pl.coalesce("new_label", "label")).drop("new_label"))
    return members, none, counts


def build(members: pl.DataFrame, cfg, issues: pl.DataFrame | None = None,
          pins: pl.DataFrame | None = None, classes: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The gold rows, the members to quarantine (image_id, check, details), and counts (``pins``: split ranks
    kept through erasures, sluice/split_pins.py; ``classes``: the class list, :func:`sluice.class_order.class_list`,
    else the members' labels)."""
    if "unit" not in members.columns:  # no subjects: each group its own unit
        members = members.with_columns(unit=pl.col("dup_group"), unit_groups=pl.lit(1, pl.UInt32))
    everyone = members
    members, issue_dropped, issue_counts = apply_label_issues(members, issues, cfg.label_issues)
    groups = with_unit_hints(resolve_groups(members, cfg.group_conflict).join(split_keys(members), on="dup_group")
                             .join(members.select("dup_group", "unit", "unit_groups").unique("dup_group"), on="dup_group"))
    labelled = assign_splits(groups.filter(pl.col("outcome") == "ok"), cfg, pins)
    kept = labelled.filter(pl.col("split") != "dropped")
    balanced = balance(kept, cfg.balance, cfg.balance_target)
    classes = class_list(classes, members["label"].drop_nulls().to_list())
    index = pl.DataFrame({"label": classes, "class_index": list(range(len(classes)))},
                         schema={"label": pl.String, "class_index": pl.Int32})
    rows = (balanced.join(index, on="label").select("image_id", "split", "label", "class_index", "weight", "dup_group", "unit")
            .sort("image_id"))

    bad_groups = pl.concat([
        groups.filter(pl.col("outcome") == "conflict").select(
            "dup_group", check=pl.lit("group_label_conflict"),
            details=pl.format("duplicate group {} has labels {} (dataset.group_conflict: " + cfg.group_conflict + ")",
                              "dup_group", "found")),
        labelled.filter(pl.col("split") == "dropped").select(
            "dup_group", check=pl.lit("test_train_leak"),
            details=pl.format("source test image with a duplicate or a subject from the source train split in group {} "
                              "(dataset.leak_policy: drop)", "dup_group")),
    ])
    quarantined = pl.concat([members.join(bad_groups, on="dup_group").select("image_id", "check", "details"),
                             issue_dropped]).sort("image_id")

    in_groups = lambda frame: members.join(frame.select("dup_group"), on="dup_group").height
    undersampled = kept.join(rows.select("dup_group"), on="dup_group", how="anti")
    counts = {
        "images": everyone.height, "groups": groups.height, "label_issues": issue_counts,
        "dataset_rows": rows.height,
        "merged_duplicates": in_groups(rows) - rows.height + in_groups(undersampled) - undersampled.height,
        "unlabeled": in_groups(groups.filter(pl.col("outcome") == "unlabeled")),
        "quarantined": quarantined.height,
        "undersampled": undersampled.height,
        "conflict_groups": groups.filter(pl.col("outcome") == "conflict").height,
        "leak_groups": labelled.filter(pl.col("leak")).height,
        "leak_policy": cfg.leak_policy,
        "leak_image_ids": labelled.filter(pl.col("leak"))["image_id"].sort().to_list(),
        "subjects": subject_counts(rows),
        "classes": classes,
    }
    return rows.drop("unit"), quarantined, counts


def subject_counts(rows: pl.DataFrame) -> dict:
    """How many dataset rows share a subject with another (units of 2+ rows), in how many units, the largest."""
    sizes = rows.group_by("unit").agg(n=pl.len(), splits=pl.col("split").n_unique()).filter(pl.col("n") > 1)
    return {"units": sizes.height, "rows": int(sizes["n"].sum()), "largest": int(sizes["n"].max() or 0),
            "in_several_splits": sizes.filter(pl.col("splits") > 1).height}


# ---------------------------------------------------------------------------- the stage
def channel_sums(flat: np.ndarray, width: int = 3 * 1024) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel sums of values and squares of interleaved RGB bytes.

    Summed as rows of ``width`` bytes (a multiple of 3: a channel keeps its column), so each row is
    added to the accumulator in one vector pass; summing a (pixels, 3) view along its first axis runs
    numpy's inner loop over 3 values a pixel (19 of the stage's 30 s at 1M images of 32 px)."""
    head = len(flat) // width * width
    sums, squares = np.zeros(3, np.uint64), np.zeros(3, np.uint64)
    for part, cols in ((flat[:head], width), (flat[head:], 3)):
        table = part.reshape(-1, cols)
        for start in range(0, len(table), 4096):  # the squares' uint32 copy: at most 4,096 rows of it
            rows = table[start:start + 4096]
            sums += rows.sum(axis=0, dtype=np.uint64).reshape(-1, 3).sum(axis=0)
            squares += np.square(rows, dtype=np.uint32).sum(axis=0, dtype=np.uint64).reshape(-1, 3).sum(axis=0)
    return sums, squares


def train_channel_stats(lake: Lake, train_ids: list[str], version: int | None = None,
                        batch_rows: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean/std (0..1) of the train split's pixels, streamed in bounded memory.

    Channels are the last axis of every stored image whatever its height and width, so no shape is
    needed (nor guessed) here; the rows are selected by :func:`transform.export.iter_pixels`, which
    works for any number of ids (a pushed-down filter of <= 50 ids failed on string_view statistics).
    """
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for part in iter_pixels(lake, version, train_ids, batch_rows):
        column = part.column("pixels").combine_chunks().cast(pa.large_binary())
        offsets = np.frombuffer(column.buffers()[1], np.int64)[column.offset: column.offset + len(column) + 1]
        flat = np.frombuffer(column.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
        sums, squares = channel_sums(flat)
        total += sums
        total_sq += squares
        count += len(flat) // 3
    if count == 0:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    mean = total / count / 255.0
    std = np.sqrt(np.maximum(total_sq / count / 255.0 ** 2 - mean ** 2, 1e-12))
    return mean.round(6).tolist(), std.round(6).tolist()


def run(params) -> dict:
    cfg = params.dataset
    lake = Lake.from_params(params)
    run_id = new_run_id(STAGE)
    log = stage_logger(STAGE)
    started = time.perf_counter()
    versions_in = {t: lake.version(t) for t in ("raw_images", "images", "labels")}
    raw = pl.from_arrow(lake.read("raw_images", ["image_id", "source", "split_hint", "fetched_at"], versions_in["raw_images"]))
    members = load_members(lake, raw)
    if held_vals := held_out.val_held_out(raw):  # ImageNet's val/: the source's held-out images
        log.info("source val split held out as test (the source gives train and val, no test): %s",
                 ", ".join(f"{name} {n}" for name, n in held_vals.items()))
    geometry = read_geometry(lake, "images", versions_in["images"])
    if geometry is None:
        raise InputError(f"table 'images' (version {versions_in['images']}) records no image geometry (written by "
                         "an older clean stage): rerun it (`dvc repro clean` or `python -m transform.clean`)")
    issues = load_label_issues(lake) if cfg.label_issues != "keep" else None
    if cfg.label_issues != "keep" and issues is None:
        log.warning("dataset.label_issues is %s but the lake has no label_issues yet (run the oof stage): "
                    "labels used as they are", cfg.label_issues)
    resolved = lake.read("labels", ["label"], versions_in["labels"], pc.field("status") == "resolved")["label"]
    classes = class_list(params.labels.classes, (lab for lab in resolved.unique().to_pylist() if lab is not None))
    rows, quarantined, counts = build(members, cfg, issues, split_pins.pinned(lake, cfg.seed), classes)
    if rows.height == 0:
        raise InputError("no labelled images to build a dataset from (labels has no 'resolved' row for any image)")
    # Everything that can fail runs before the first write, so a failure never leaves a half-made dataset.
    mean, std = train_channel_stats(lake, rows.filter(pl.col("split") == "train")["image_id"].to_list(),
                                    versions_in["images"])
    acted = counts["label_issues"]
    recon = reconcile(STAGE, counts["images"], dataset=counts["dataset_rows"], merged_duplicates=counts["merged_duplicates"],
                      unlabeled=counts["unlabeled"], quarantined=counts["quarantined"] - acted["dropped"],
                      undersampled=counts["undersampled"], **({"label_issues_dropped": acted["dropped"]} if acted["dropped"] else {}))
    quarantine = Quarantine(STAGE, "images", run_id)
    for image_id, check, details in quarantined.iter_rows():
        quarantine.add(image_id, check, details=details)
    lake.overwrite("dataset", rows.with_columns(run_id=pl.lit(run_id)).to_arrow(), run_id=run_id)
    class_order.record(lake, "dataset", counts["classes"])  # with any class left without a row
    quarantine.write(lake, replace=True)

    per_split = {s: dict(Counter(rows.filter(pl.col("split") == s)["label"].to_list())) for s in SPLITS}
    weights = rows.group_by("split", "label").agg(pl.col("weight").sum()).sort("split", "label")
    log.info("%s (%d classes, balance %s); train mean %s std %s",
             ", ".join(f"{s} {sum(per_split[s].values())}" for s in SPLITS), len(counts["classes"]), cfg.balance, mean, std)
    if acted["dropped"] or acted["relabelled"]:
        log.warning("label issues (dataset.label_issues: %s): %d dropped to quarantine, %d relabelled, %d stale ignored",
                    acted["policy"], acted["dropped"], acted["relabelled"], acted["stale"])
    if (subjects := counts["subjects"])["units"]:
        log.info("subjects: %d rows show a subject shown by another row (%d subjects or chains of them, the largest "
                 "%d rows), each subject's rows in one split", subjects["rows"], subjects["units"], subjects["largest"])
    if subjects["largest"] > max(50, 0.05 * rows.height):  # a place or a site named as the subject: lopsided splits
        log.warning("subjects: one subject (or chain of them) holds %d of the %d rows, all in one split, so the split "
                    "shares are off: is the subject column a place, a site or a class rather than who or what an image "
                    "shows? (ingest.sources subject_column / subject_pattern / subject_feature / subject_field)", subjects["largest"], rows.height)
    if counts["leak_groups"]:
        action = "moved to train" if cfg.leak_policy == "to_train" else "dropped to quarantine"
        log.warning("source test split: %d image(s) have a duplicate (or share a subject) in the source train split -> %s "
                    "(dataset.leak_policy: %s)", counts["leak_groups"], action, cfg.leak_policy)
    return {
        "run_id": run_id, "reconcile": recon, "classes": counts["classes"], "geometry": geometry.to_dict(),
        "counts": {s: {"rows": sum(per_split[s].values()), "per_class": per_split[s]} for s in SPLITS},
        "weight_sums": {f"{s}/{lab}": round(w, 6) for s, lab, w in weights.iter_rows()},
        "normalize": {"mean": mean, "std": std, "scale": "0..1", "split": "train"},
        "leakage": {"source_test_with_train_duplicate": counts["leak_groups"], "policy": cfg.leak_policy,
                    "image_ids": counts["leak_image_ids"], "subjects": counts["subjects"],
                    "source_val_held_out": held_vals},
        "group_label_conflicts": counts["conflict_groups"], "label_issues": acted, "balance": cfg.balance, "seed": cfg.seed,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions_in, "dataset": lake.version("dataset"), "quarantine": lake.version("quarantine")},
    }


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
