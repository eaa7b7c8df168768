"""Dataset: labels per group, leakage-free stratified split, balancing, train-only normalization."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sluice.config import DatasetParams
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.snapshot import channel_stats
from sluice import class_order
from sluice.class_order import ordered
from transform.dataset import build, run


def members(rows: list[tuple]) -> pl.DataFrame:
    """(image_id, dup_group, is_canonical, label, hint_test, hint_train[, landed]) rows as the stage loads them."""
    rows = [(*r, None) if len(r) == 6 else r for r in rows]
    return pl.DataFrame(rows, schema={"image_id": pl.String, "dup_group": pl.String, "is_canonical": pl.Boolean,
                                      "label": pl.String, "hint_test": pl.Boolean, "hint_train": pl.Boolean,
                                      "landed": pl.Datetime("us", "UTC")}, orient="row")


def singletons(per_class: dict[str, int], test: int = 0) -> list[tuple]:
    out = []
    for label, n in per_class.items():
        for k in range(n):
            i = f"{label}-{k:04d}"
            out.append((i, i, True, label, k < test, k >= test and test > 0))
    return out


def test_split_is_by_hash_deterministic_and_one_row_per_group():
    m = members(singletons({"a": 100, "b": 50, "c": 4, "d": 3}))
    cfg = DatasetParams(seed=1, val_fraction=0.1, test_fraction=0.2, balance="none")
    rows, quarantined, counts = build(m, cfg)
    assert quarantined.height == 0 and rows["dup_group"].n_unique() == rows.height == 157
    per = dict(((label, split), n) for label, split, n in rows.group_by("label", "split").len().rows())
    assert 10 <= per["a", "test"] <= 30 and 3 <= per["a", "val"] <= 18 and 3 <= per["b", "test"] <= 18
    for small in ("c", "d"):  # 3+ groups: at least one of each split, whatever the hashes
        assert all(per.get((small, split), 0) >= 1 for split in ("train", "val", "test")), per
    again, _, _ = build(m.sample(fraction=1.0, shuffle=True, seed=5), cfg)
    assert again.equals(rows)
    other_seed, _, _ = build(m, cfg.model_copy(update={"seed": 2}))
    assert not other_seed["split"].equals(rows["split"])
    # adding images (here 60 to two classes) never moves an existing one to another split
    new = [(f"new-{k}", f"new-{k}", True, "ab"[k % 2], False, False) for k in range(60)]
    grown, _, _ = build(members(singletons({"a": 100, "b": 50, "c": 4, "d": 3}) + new), cfg)
    moved = grown.join(rows, on="image_id").filter(pl.col("split") != pl.col("split_right"))
    assert moved.height == 0, moved


def test_a_group_keeps_its_split_when_a_new_copy_becomes_its_canonical():
    from datetime import UTC, datetime

    first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    old = [(f"m-{k:03d}", f"m-{k:03d}", True, "ab"[k % 2], False, False, first) for k in range(300)]
    cfg = DatasetParams(seed=3, val_fraction=0.1, test_fraction=0.2, balance="none")
    before, _, _ = build(members(old), cfg)
    # each group gains a better copy landed later ("a-..." sorts first: it becomes the canonical and the group id)
    grown = [(i, f"a-{i}", False, lab, t, tr, at) for i, _, _, lab, t, tr, at in old]
    grown += [(f"a-{i}", f"a-{i}", True, lab, False, False, later) for i, _, _, lab, _, _, _ in old]
    after, _, _ = build(members(grown), cfg)
    assert set(after["image_id"]) == {f"a-{i}" for i, *_ in old}  # every group's canonical changed
    split_of = dict(before.select("image_id", "split").rows())
    assert all(split_of[g.removeprefix("a-")] == s for g, s in after.select("image_id", "split").rows())


def test_split_shares_follow_the_fractions_on_a_large_class():
    rows, _, _ = build(members(singletons({"a": 20000})), DatasetParams(val_fraction=0.1, test_fraction=0.2,
                                                                        balance="none"))
    share = {split: n / 20000 for split, n in rows.group_by("split").len().rows()}
    assert abs(share["test"] - 0.2) < 0.015 and abs(share["val"] - 0.1) < 0.015  # ~5 standard deviations


def test_duplicate_group_is_one_row_with_the_group_label_and_never_spans_splits():
    m = members([("x1", "x1", True, "a", False, False), ("x2", "x1", False, "a", False, False),
                 ("x3", "x1", False, None, False, False)] + singletons({"a": 20, "b": 20}))
    rows, _, counts = build(m, DatasetParams(balance="none"))
    assert "x2" not in rows["image_id"].to_list() and rows.filter(pl.col("dup_group") == "x1")["image_id"].to_list() == ["x1"]
    assert counts["merged_duplicates"] == 2
    assert rows.group_by("dup_group").agg(pl.col("split").n_unique())["split"].max() == 1


@pytest.mark.parametrize("policy, label, quarantined", [
    ("majority", "a", 0), ("canonical", "b", 0), ("quarantine", None, 4)])
def test_group_label_conflicts(policy, label, quarantined):
    conflict = [("g1", "g1", True, "b", False, False), ("g2", "g1", False, "a", False, False),
                ("g3", "g1", False, "a", False, False), ("g4", "g1", False, None, False, False)]
    rows, q, counts = build(members(conflict + singletons({"a": 10, "b": 10})),
                            DatasetParams(group_conflict=policy, balance="none"))
    got = rows.filter(pl.col("dup_group") == "g1")["label"].to_list()
    assert got == ([label] if label else [])
    assert q.height == quarantined
    if quarantined:
        assert set(q["check"]) == {"group_label_conflict"} and "labels a,b x2,1" in q["details"][0]


def test_majority_tie_is_quarantined():
    tie = [("t1", "t1", True, "a", False, False), ("t2", "t1", False, "b", False, False)]
    rows, q, counts = build(members(tie + singletons({"a": 5})), DatasetParams(balance="none"))
    assert "t1" not in rows["image_id"].to_list() and sorted(q["image_id"]) == ["t1", "t2"]
    assert counts["conflict_groups"] == 1


def test_unlabeled_groups_stay_out_without_quarantine():
    m = members([("u1", "u1", True, None, False, False)] + singletons({"a": 5}))
    rows, q, counts = build(m, DatasetParams())
    assert "u1" not in rows["image_id"].to_list() and q.height == 0 and counts["unlabeled"] == 1


@pytest.mark.parametrize("policy", ["to_train", "drop"])
def test_source_test_kept_and_leaks_handled(policy):
    leak = [("L1", "L1", True, "a", True, False), ("L2", "L1", False, "a", False, True)]  # test image, train near-copy
    m = members(leak + singletons({"a": 30, "b": 30}, test=6))
    rows, q, counts = build(m, DatasetParams(leak_policy=policy, balance="none"))
    test = rows.filter(pl.col("split") == "test")
    assert sorted(test["image_id"]) == sorted(f"{c}-{k:04d}" for c in "ab" for k in range(6))  # source test kept
    assert counts["leak_groups"] == 1 and counts["leak_image_ids"] == ["L1"]
    if policy == "to_train":
        assert rows.filter(pl.col("image_id") == "L1")["split"].to_list() == ["train"] and q.height == 0
    else:
        assert "L1" not in rows["image_id"].to_list() and set(q["check"]) == {"test_train_leak"} and q.height == 2
    assert set(rows.filter(~pl.col("image_id").is_in(test["image_id"].implode()))["split"]) <= {"train", "val"}


def test_source_test_ignored_when_not_kept():
    m = members(singletons({"a": 50}, test=25))
    cfg = DatasetParams(keep_source_test=False, test_fraction=0.2, balance="none")
    rows, _, _ = build(m, cfg)
    unhinted, _, _ = build(m.with_columns(hint_test=False, hint_train=False), cfg)
    assert rows["split"].to_list() == unhinted["split"].to_list()  # the 25 hinted test images: no say
    assert 3 <= rows.filter(pl.col("split") == "test").height <= 20


def test_balance_strategies():
    m = members(singletons({"big": 80, "small": 10}))
    base = DatasetParams(val_fraction=0.0, test_fraction=0.0)
    rows, _, _ = build(m, base.model_copy(update={"balance": "class_weights"}))
    w = dict(rows.group_by("label").agg(pl.col("weight").sum()).rows())
    assert w["big"] == pytest.approx(w["small"]) == pytest.approx(45.0)  # N/K per class
    rows, _, counts = build(m, base.model_copy(update={"balance": "undersample"}))
    assert dict(rows.group_by("label").len().rows()) == {"big": 10, "small": 10} and counts["undersampled"] == 70
    assert (rows["weight"] == 1).all()
    rows, _, _ = build(m, base.model_copy(update={"balance": "oversample"}))
    assert rows.height == 90  # membership is weighted, pixels are never copied
    w = dict(rows.group_by("label").agg(pl.col("weight").sum()).rows())
    assert w == {"big": 80.0, "small": 80.0}
    assert set(rows.filter(pl.col("label") == "small")["weight"]) == {8.0}
    rows, _, _ = build(m, base.model_copy(update={"balance": "oversample", "balance_target": 25}))
    w = dict(rows.group_by("label").agg(pl.col("weight").sum()).rows())
    assert w == {"big": 80.0, "small": 25.0}


def test_balance_touches_only_train():
    m = members(singletons({"big": 80, "small": 10}))
    rows, _, _ = build(m, DatasetParams(balance="class_weights"))
    assert (rows.filter(pl.col("split") != "train")["weight"] == 1.0).all()


def test_class_order_numeric():
    assert ordered(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert ordered(["cat", "ant"]) == ["ant", "cat"]


def test_class_index_is_the_declared_class_list_position_and_an_emptied_class_keeps_its_index():
    """labels.classes in the user's order; class "c" has a resolved label but its only group is a tie
    (quarantined): it stays in the class list, so no other class's index moves under a model's head."""
    tie = [("t1", "t1", True, "c", False, False), ("t2", "t1", False, "a", False, False)]
    m = members(tie + singletons({"a": 5, "b": 5}))
    rows, _, counts = build(m, DatasetParams(balance="none"), classes=["b", "c", "a"])
    assert counts["classes"] == ["b", "c", "a"]
    assert dict(rows.select("label", "class_index").unique().rows()) == {"b": 0, "a": 2}
    _, _, undeclared = build(m, DatasetParams(balance="none"))
    assert undeclared["classes"] == ["a", "b", "c"]


def test_numbered_classes_keep_numeric_indices_from_a_declared_list_and_extras():
    m = members(singletons({str(k): 3 for k in range(1, 13)}))
    rows, _, counts = build(m, DatasetParams(balance="none"), classes=["1", "2"])
    assert counts["classes"] == [str(k) for k in range(1, 13)]  # the declared ones, then the rest in numeric order
    assert dict(rows.select("label", "class_index").unique().rows())["10"] == 9


# ---------------------------------------------------------------------------- the stage on the demo
def test_demo_dataset(demo_copy, make_params, demo_truth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = make_params({"lake": {"root": str(demo_copy)}})
    summary = run(params)
    lake = Lake(str(demo_copy))
    rows = pl.from_arrow(lake.read("dataset"))
    images = pl.from_arrow(lake.read("images", columns=["image_id", "dup_group", "pixels"]))
    assert rows["dup_group"].n_unique() == rows.height  # 0 groups span splits
    assert set(rows["split"]) == {"train", "val", "test"} and rows["label"].n_unique() == 10
    assert summary["classes"] == [str(i) for i in range(10)]
    assert class_order.recorded(lake, "dataset") == summary["classes"]  # what export reads
    # labels are right: the given labels of the demo sources are its true labels, except the planted
    # label noise, whose wrong given labels reach the dataset (for the oof stage to find)
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_uri"]))
    truth = raw.with_columns(true=pl.col("source_uri").replace_strict(demo_truth["true_labels"], default=None)).drop_nulls()
    joined = rows.join(truth.unique("image_id"), on="image_id")
    noisy = set(raw.filter(pl.col("source_uri").is_in([f["uri"] for f in demo_truth["label_noise"]]))["image_id"])
    wrong = set(joined.filter(pl.col("label") != pl.col("true"))["image_id"])
    assert noisy and wrong == noisy & set(rows["image_id"])
    # normalization: train pixels only, and it matches snapshot.channel_stats on them
    train = images.join(rows.filter(pl.col("split") == "train"), on="image_id")
    pixels = np.frombuffer(b"".join(train["pixels"].to_list()), np.uint8).reshape(-1, 32, 32, 3)
    mean, std = channel_stats(pixels)
    assert summary["normalize"]["mean"] == pytest.approx(mean, abs=1e-5)
    assert summary["normalize"]["std"] == pytest.approx(std, abs=1e-5)
    # the rare class is up-weighted in train
    w = dict(rows.filter(pl.col("split") == "train").group_by("label").agg(pl.col("weight").first()).rows())
    assert w[demo_truth["rare_class"]["label"]] > 3 * w["0"]
    # rerun: identical rows
    run(params)
    assert pl.from_arrow(lake.read("dataset")).drop("run_id").sort("image_id").equals(rows.drop("run_id").sort("image_id"))


def test_a_source_giving_train_and_val_but_no_test_holds_out_its_val(demo_copy, make_params, tmp_path, monkeypatch):
    """ImageNet's and Imagenette's val/ is their held-out set: test, never pooled into train (sluice/held_out.py)."""
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(demo_copy))
    raw = pl.from_arrow(lake.read("raw_images"))
    as_val = (pl.col("source") == "demo-folder") & (pl.col("split_hint") == "test")
    lake.overwrite("raw_images", raw.with_columns(split_hint=pl.when(as_val).then(pl.lit("val"))
                                                  .otherwise(pl.col("split_hint"))).to_arrow())
    held = set(raw.filter(as_val)["image_id"])
    summary = run(make_params({"lake": {"root": str(demo_copy)}}))
    assert summary["leakage"]["source_val_held_out"] == {"demo-folder": len(held)}
    rows = pl.from_arrow(lake.read("dataset"))
    groups = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group"]))
    held_groups = set(groups.filter(pl.col("image_id").is_in(list(held)))["dup_group"])
    splits = dict(rows.filter(pl.col("dup_group").is_in(list(held_groups))).select("image_id", "split").rows())
    moved = set(summary["leakage"]["image_ids"])
    assert splits and {s for i, s in splits.items() if i not in moved} == {"test"}  # the rest: copies in train, moved


def test_missing_labels_is_a_clear_error(run_cli, demo_copy, tmp_path):
    import shutil

    shutil.rmtree(demo_copy / "labels")
    result = run_cli(module="transform.dataset", params={"lake": {"root": str(demo_copy)}})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"sluice: error: table 'labels' does not exist yet in the lake at {demo_copy} "
        "(run the labels stage first: python -m transform.labels)")


def test_stage_main_writes_manifest(run_cli, demo_copy, tmp_path):
    result = run_cli(module="transform.dataset", params={"lake": {"root": str(demo_copy)}})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "data/manifests/dataset.json").read_text())
    assert set(manifest["counts"]) == {"train", "val", "test"} and len(manifest["normalize"]["mean"]) == 3
    assert manifest["versions"]["dataset"] is not None and "[dataset] reconcile:" in result.stderr


@pytest.mark.parametrize("n", [0, 1, 50, 51])
def test_train_stats_for_any_number_of_ids(demo_copy, n):
    """<= 50 ids used to die in pyarrow (string vs string_view file statistics) after `dataset` was written."""
    from transform.dataset import train_channel_stats

    lake = Lake(str(demo_copy))
    images = pl.from_arrow(lake.read("images", columns=["image_id", "pixels"])).sort("image_id").head(n)
    mean, std = train_channel_stats(lake, images["image_id"].to_list())
    if n == 0:
        assert (mean, std) == ([0.0] * 3, [1.0] * 3)
        return
    pixels = np.frombuffer(b"".join(images["pixels"].to_list()), np.uint8).reshape(n, 32, 32, 3)
    ref_mean, ref_std = channel_stats(pixels)
    assert mean == pytest.approx(ref_mean, abs=1e-5) and std == pytest.approx(ref_std, abs=1e-5)


@pytest.mark.parametrize("pixels", [0, 1, 7, 8, 8 * 4099 + 5])
def test_channel_sums_are_exact_for_any_length(pixels):
    """Rows of 24 bytes (8 pixels) and a tail of single pixels, blocks of 4,096 rows: the same sums as per pixel."""
    from transform.dataset import channel_sums

    flat = np.random.default_rng(pixels).integers(0, 256, pixels * 3, dtype=np.uint8)
    sums, squares = channel_sums(flat, width=24)
    per_pixel = flat.reshape(-1, 3).astype(np.int64)
    assert sums.tolist() == per_pixel.sum(axis=0).tolist()
    assert squares.tolist() == (per_pixel ** 2).sum(axis=0).tolist()


@pytest.mark.parametrize("n", [1, 50, 51])
def test_stage_with_a_small_labelled_set(demo_copy, make_params, tmp_path, monkeypatch, n):
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(demo_copy))
    labels = pl.from_arrow(lake.read("labels")).sort("image_id")
    resolved = labels.filter(pl.col("status") == "resolved").head(n)["image_id"]
    lake.overwrite("labels", labels.with_columns(
        status=pl.when(pl.col("image_id").is_in(resolved.to_list())).then(pl.col("status")).otherwise(pl.lit("unresolved"))
    ).to_arrow())
    summary = run(make_params({"lake": {"root": str(demo_copy)}, "dataset": {"val_fraction": 0, "test_fraction": 0,
                                                                              "keep_source_test": False}}))
    assert summary["counts"]["train"]["rows"] == lake.count("dataset") <= n
    assert summary["geometry"]["height"] == 32 and summary["geometry"]["width"] == 32


def test_a_failing_run_writes_nothing(demo_copy, make_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(demo_copy))
    run(make_params({"lake": {"root": str(demo_copy)}}))
    before = (lake.version("dataset"), lake.version("quarantine"))
    labels = lake.read("labels")
    lake.overwrite("labels", labels.set_column(labels.schema.get_field_index("status"), "status",
                                               pa.array(["unresolved"] * labels.num_rows)))
    with pytest.raises(InputError, match="no labelled images"):
        run(make_params({"lake": {"root": str(demo_copy)}}))
    assert (lake.version("dataset"), lake.version("quarantine")) == before


def issues(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"image_id": pl.String, "given_label": pl.String, "suggested_label": pl.String,
                                      "rank": pl.Int32}, orient="row")


@pytest.mark.parametrize("policy", ["keep", "drop", "relabel"])
def test_label_issues_policy(policy):
    dup = [("d1", "dg", True, "a", False, False), ("d2", "dg", False, "a", False, False)]
    m = members(dup + singletons({"a": 10, "b": 10}))
    found = issues([("dg", "x", "b", 9), ("d1", "a", "b", 1), ("a-0001", "a", "b", 2), ("b-0001", "a", "b", 3)])
    # "d1" (the canonical image of group dg) and "a-0001" are real issues; "b-0001" is stale (labelled b now)
    rows, q, counts = build(m, DatasetParams(balance="none", label_issues=policy), found)
    acted = counts["label_issues"]
    labels = dict(zip(rows["image_id"], rows["label"]))
    if policy == "keep":
        assert labels["d1"] == "a" and labels["a-0001"] == "a" and q.height == 0 and acted["dropped"] == 0
    elif policy == "drop":
        assert "d1" not in labels and "a-0001" not in labels and labels["b-0001"] == "b"
        assert sorted(q["image_id"]) == ["a-0001", "d1", "d2"] and set(q["check"]) == {"label_issue"}
        assert acted == {"policy": "drop", "dropped": 3, "relabelled": 0, "stale": 1}
    else:
        assert labels["d1"] == "b" and labels["a-0001"] == "b" and q.height == 0
        assert acted == {"policy": "relabel", "dropped": 0, "relabelled": 3, "stale": 1}
    parts = counts["dataset_rows"] + counts["merged_duplicates"] + counts["unlabeled"] + counts["quarantined"]
    assert parts + counts["undersampled"] == counts["images"] == 22


def test_stage_drops_the_latest_label_issues_with_counts(demo_copy, make_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(demo_copy))
    run(make_params({"lake": {"root": str(demo_copy)}}))
    first = pl.from_arrow(lake.read("dataset")).sort("image_id")
    picked, reviewed = first.head(3), first.slice(3, 1)
    row = lambda run_id, r, split="train": {  # noqa: E731
        "image_id": r["image_id"], "dataset_hash": "h", "given_label": r["label"], "suggested_label": "x",
        "self_confidence": 0.0, "margin": 0.0, "score": 0.0, "rank": 1, "evidence": None, "run_id": run_id,
        "split": split}
    lake.append("label_issues", pa.Table.from_pylist([row("oof-1", r) for r in first.tail(2).iter_rows(named=True)]))
    lake.append("label_issues", pa.Table.from_pylist([row("oof-2", r) for r in picked.iter_rows(named=True)]
                                                     + [row("oof-2", r, "test") for r in reviewed.iter_rows(named=True)]))
    summary = run(make_params({"lake": {"root": str(demo_copy)}, "dataset": {"label_issues": "drop"}}))
    ids = set(lake.read("dataset", columns=["image_id"])["image_id"].to_pylist())
    assert not ids & set(picked["image_id"]) and set(first.tail(2)["image_id"]) <= ids  # only the latest run counts
    assert set(reviewed["image_id"]) <= ids  # a test-split issue is for review: never acted on
    assert summary["label_issues"]["dropped"] >= 3 and summary["reconcile"]["label_issues_dropped"] >= 3
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("check") == "label_issue")
    assert set(picked["image_id"]) <= set(q["row_key"])


def _with_subjects(m: pl.DataFrame, subjects: dict[str, str]) -> pl.DataFrame:
    from sluice.split_units import units

    named = pl.DataFrame({"image_id": list(subjects), "subject": [f"src/{s}" for s in subjects.values()]})
    return m.join(units(m.select("image_id", "dup_group"), named), on="dup_group", how="left")


def test_images_of_one_subject_share_a_split_and_the_rest_split_as_before():
    base = singletons({"a": 200, "b": 200})
    # 40 lesions of 5 images each (HAM10000's shape), across both classes
    subjects = {f"{'ab'[k % 2]}-{k:04d}": f"lesion-{k // 5}" for k in range(200)}
    cfg = DatasetParams(seed=3, val_fraction=0.1, test_fraction=0.2, balance="none")
    plain, _, _ = build(members(base), cfg)
    rows, _, counts = build(_with_subjects(members(base), subjects), cfg)
    by_lesion = (rows.join(pl.DataFrame({"image_id": list(subjects), "lesion": list(subjects.values())}), on="image_id")
                 .group_by("lesion").agg(pl.col("split").n_unique()))
    assert by_lesion.height == 40 and by_lesion["split"].max() == 1
    assert set(rows.filter(pl.col("image_id").is_in(list(subjects)))["split"]) == {"train", "val", "test"}
    assert counts["subjects"] == {"units": 40, "rows": 200, "largest": 5, "in_several_splits": 0}
    free = ~pl.col("image_id").is_in(list(subjects))  # images without a subject keep their split
    assert rows.filter(free).equals(plain.filter(free))
    without = build(members(base), cfg)[2]["subjects"]
    assert without == {"units": 0, "rows": 0, "largest": 0, "in_several_splits": 0}


def test_a_subject_in_the_source_test_and_train_splits_is_a_leak_as_a_whole():
    m = members([("t1", "t1", True, "a", True, False), ("r1", "r1", True, "a", False, True),
                 ("r2", "r2", True, "b", False, True)] + singletons({"a": 30, "b": 30}, test=6))
    m = _with_subjects(m, {"t1": "patient-9", "r1": "patient-9", "r2": "patient-9"})
    rows, q, counts = build(m, DatasetParams(leak_policy="to_train", balance="none"))
    assert rows.filter(pl.col("image_id").is_in(["t1", "r1", "r2"]))["split"].to_list() == ["train"] * 3
    assert counts["leak_groups"] == 3
    rows, q, _ = build(m, DatasetParams(leak_policy="drop", balance="none"))
    assert not set(rows["image_id"]) & {"t1", "r1", "r2"} and set(q["check"]) == {"test_train_leak"}


def test_a_small_class_is_not_filled_by_moving_one_image_of_a_subject():
    m = _with_subjects(members(singletons({"a": 100, "c": 4})), {f"c-{k:04d}": "one patient" for k in range(4)})
    rows, _, _ = build(m, DatasetParams(seed=1, val_fraction=0.1, test_fraction=0.2, balance="none"))
    assert rows.filter(pl.col("label") == "c")["split"].n_unique() == 1


def test_the_stage_keeps_subjects_in_one_split_and_warns_of_one_that_holds_a_large_share(demo_copy, make_params,
                                                                                         tmp_path, monkeypatch, caplog):
    """raw_images.subject read from the lake: patients of 3 images each split whole; a "subject" shared by a fifth of
    the images (a site named as the subject) is kept whole too, and said to skew the split shares."""
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(demo_copy))
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source", "source_uri"])).sort("image_id")
    n = raw.height
    subject = [f"patient {k // 3}" if k < n // 2 else ("site A" if k < n // 2 + n // 5 else None) for k in range(n)]
    lake.update_columns("raw_images", raw.with_columns(subject=pl.Series(subject, dtype=pl.String)).to_arrow(), ["subject"])
    with caplog.at_level("INFO"):
        summary = run(make_params({"lake": {"root": str(demo_copy)}}))
    rows = pl.from_arrow(lake.read("dataset", columns=["image_id", "split"]))
    groups = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group"]))
    named = (raw.with_columns(subject=pl.Series(subject)).drop_nulls("subject").join(groups, on="image_id")
             .join(rows.join(groups, on="image_id").select("dup_group", "split"), on="dup_group"))
    assert named.group_by("source", "subject").agg(pl.col("split").n_unique())["split"].max() == 1
    assert summary["leakage"]["subjects"]["in_several_splits"] == 0 and summary["leakage"]["subjects"]["units"] > 10
    assert "holds" in caplog.text and "split shares are off" in caplog.text
