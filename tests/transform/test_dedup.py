"""Dedup: the multi-index hash search equals brute force; the demo's planted duplicates are grouped."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from sluice.lake import Lake
from transform.dedup import run
from transform.hamming import brute_force_pairs, near_pairs, plan_chunks


def planted_codes(n: int, copies: int, max_flips: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, n, dtype=np.uint64)
    src = rng.choice(n - copies, copies, replace=False)
    for k, s in enumerate(src):
        flips = rng.choice(64, rng.integers(0, max_flips + 1), replace=False)
        codes[n - copies + k] = codes[s] ^ np.uint64(sum(1 << int(b) for b in flips))
    return codes.view(np.int64)


@pytest.mark.parametrize("threshold", [0, 1, 3, 6, 8, 12])
def test_near_pairs_equal_brute_force(threshold):
    codes = planted_codes(3000, 300, threshold + 2, seed=threshold)
    i, j, dist = near_pairs(codes, threshold)
    bi, bj = brute_force_pairs(codes, threshold)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)
    assert len(i) >= 75  # the planted pairs within the threshold (about a third or more) are there
    assert (dist <= threshold).all() and (i < j).all()


def test_clustered_codes_equal_brute_force():
    """Real perceptual hashes are not uniform: many share most bits. The index stays exact."""
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2**64, 20, dtype=np.uint64)
    noise = np.zeros(2000, np.uint64)
    for b in range(64):
        noise |= (rng.random(2000) < 0.04).astype(np.uint64) << np.uint64(b)
    codes = (centres[rng.integers(0, 20, 2000)] ^ noise).view(np.int64)
    i, j, _ = near_pairs(codes, 6)
    bi, bj = brute_force_pairs(codes, 6)
    assert np.array_equal(i, bi) and np.array_equal(j, bj) and len(i) > 1000


def test_plan_satisfies_pigeonhole():
    for n in (10, 10_000, 1_000_000):
        for t in range(0, 17):
            m, r = plan_chunks(n, t)
            assert m * (r + 1) > t  # two codes within t bits agree within r bits on some chunk


def test_demo_duplicates_grouped_and_distinct_images_never_merged(demo_lake, demo_truth):
    lake = Lake(str(demo_lake))
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_uri"]))
    images = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group", "is_canonical"]))
    group_of = dict(zip(images["image_id"], images["dup_group"]))
    id_of = dict(zip(raw["source_uri"], raw["image_id"]))
    group = lambda uri: group_of[id_of[uri]]

    exact = demo_truth["exact_duplicates"]
    assert exact and all(group(a) == group(b) for a, b in exact)
    near = demo_truth["near_duplicates"]
    grouped = sum(group(d["original"]) == group(d["copy"]) for d in near)
    assert grouped / len(near) >= 0.95

    # no two different digits in one group: every group maps to one source image
    members = (raw.with_columns(src=pl.col("source_uri").replace_strict(demo_truth["source_index"], default=None,
                                                                        return_dtype=pl.Int64))
               .drop_nulls("src").join(images, on="image_id"))
    per_group = members.group_by("dup_group").agg(pl.col("src").n_unique())
    assert per_group["src"].max() == 1
    assert images.filter(pl.col("is_canonical")).height == images["dup_group"].n_unique()


@pytest.mark.parametrize("incremental", [True, False])
def test_rerun_gives_the_same_groups(demo_copy, make_params, incremental):
    params = make_params({"lake": {"root": str(demo_copy)}, "dedup": {"incremental": incremental}})
    lake = Lake(str(demo_copy))
    columns = ["image_id", "dup_group", "is_canonical", "match_kind", "match_score", "match_with"]
    before = pl.from_arrow(lake.read("image_groups", columns=columns)).sort("image_id")
    summary = run(params)
    after = pl.from_arrow(lake.read("image_groups", columns=columns)).sort("image_id")
    assert after.equals(before)
    assert summary["reconcile"]["rows_in"] == before.height
    if incremental:  # nothing new: the stored groups stand, nothing is searched
        assert summary["counts"]["mode"] == "incremental" and summary["counts"]["new_images"] == 0
        assert summary["counts"]["near_candidates"] == 0
    else:
        assert summary["counts"]["mode"] == "full pass"
        assert summary["counts"]["near_rejected_by_pixels"] > 0  # the demo's colliding digit hashes were caught


def test_threshold_zero_without_pixel_check_still_exact(demo_copy, make_params):
    params = make_params({"lake": {"root": str(demo_copy)}, "dedup": {"near_threshold": 0, "min_correlation": -1}})
    counts = run(params)["counts"]
    # every window-hash candidate accepted; pairs with a detail-free image (all the demo's digits) keep
    # their plain check, so only those are rejected
    plain = counts["search"]["plain_candidates"], counts["search"]["plain_pairs"]
    assert counts["near_candidates"] - plain[0] == counts["near_pairs"] - plain[1]
    assert counts["near_rejected_by_pixels"] == plain[0] - plain[1] and plain[1] > 0


def test_missing_images_is_a_user_error(run_cli, tmp_path):
    result = run_cli(module="transform.dedup", params={"lake": {"root": str(tmp_path / "nolake")}})
    assert result.returncode == 2
    assert "table 'images' does not exist yet" in result.stderr and "Traceback" not in result.stderr


def test_stage_main_writes_manifest_and_progress_lines(run_cli, tmp_path, demo_copy):
    # a progress line per update (stderr is not a terminal here): the three long phases report as they go
    result = run_cli(module="transform.dedup", params={"lake": {"root": str(demo_copy)}, "dedup": {"incremental": False}},
                     env={"SLUICE_PROGRESS_EVERY": "0"})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "data/manifests/dedup.json").read_text())
    assert manifest["counts"]["groups_with_duplicates"] >= 30
    assert "[dedup] reconcile:" in result.stderr and "OK" in result.stderr
    n = manifest["counts"]["images"]
    assert f"[dedup] thumbnails: {n:,}/{n:,} img (100%)" in result.stderr
    rough = n - manifest["counts"]["search"]["detail_free_images"]  # the window-hash search: images with detail
    assert (f"[dedup] candidate search: {rough:,}/{rough:,} img (100%)" in result.stderr) == (rough > 0)
    assert f"[dedup] detail-free search: {n:,}/{n:,} img (100%)" in result.stderr
    verified = re.search(r"\[dedup\] pixel verification: ([\d,]+)/([\d,]+) pairs \(100%\)", result.stderr)
    window = manifest["counts"]["near_candidates"] - manifest["counts"]["search"]["plain_candidates"]
    assert (verified is not None) == (window > 0)  # the demo's digits are all detail-free: no window candidate
    if verified:  # the window candidates plus the whole-image hash candidates
        assert verified[1] == verified[2] and int(verified[1].replace(",", "")) >= window


def test_groups_live_in_image_groups_and_images_is_not_rewritten(demo_copy, make_params):
    lake = Lake(str(demo_copy))
    before = lake.version("images")
    summary = run(make_params({"lake": {"root": str(demo_copy)}}))
    assert lake.version("images") == before == summary["versions"]["images"]  # no commit to the pixels table
    groups = pl.from_arrow(lake.read("image_groups"))
    assert groups.height == lake.count("images") and groups["image_id"].n_unique() == groups.height
    members = groups.filter(~pl.col("is_canonical"))
    assert members["match_kind"].null_count() == 0 and set(members["match_kind"]) <= {
        "exact", "near", "shifted", "cropped", "greyscale", "recoloured"}
    assert (members["match_score"] >= 0.8).all()


def _without_sketches(lake, keep_every: int) -> None:
    """``images`` as an older clean stage left it: no stored sketch, except on every ``keep_every``-th row."""
    import pyarrow as pa

    table = lake.read("images").sort_by("image_id")
    gone = pa.array([i % keep_every != 0 for i in range(table.num_rows)])
    for name in ("thumb", "greyscale", "mean_rgb"):
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pa.compute.if_else(gone, pa.nulls(len(gone), col.type), col))
    lake.overwrite("images", table)


def test_dedup_reads_the_sketches_clean_stored_and_computes_missing_ones_from_pixels(demo_lake, tmp_path):
    import shutil

    from distributed import Client, LocalCluster, get_task_stream

    from transform.dedup import _sketches

    lake = Lake(str(demo_lake))
    ids = np.sort(pl.from_arrow(lake.read("images", columns=["image_id"]))["image_id"].to_numpy().astype(object))
    stored = _sketches(lake, ids, batch_rows=100)
    assert len(ids) > 1000 and stored[0].shape == (len(ids), 32, 32) and stored[2].dtype == bool
    assert stored[3].shape == (len(ids), 3) and lake.read("images", ["thumb"]).column(0).null_count == 0
    old = Lake(str(shutil.copytree(demo_lake, tmp_path / "old")))
    _without_sketches(old, keep_every=3)  # two thirds cleaned "before": computed from their pixels
    assert all(np.array_equal(a, b) for a, b in zip(stored, _sketches(old, ids, batch_rows=100)))
    _without_sketches(old, keep_every=len(ids) + 1)  # none stored: every batch a task on the workers
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            remote = _sketches(old, ids, batch_rows=100, client=client)  # one task a batch, 2 in flight
    ran = [t for t in stream.data if "sketch_batch" in str(t["key"])]
    assert len(ran) >= -(-len(ids) // 100) - 1  # about one task per 100 images
    assert all(np.array_equal(a, b) for a, b in zip(stored, remote))
