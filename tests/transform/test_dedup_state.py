from __future__ import annotations

import numpy as np
import polars as pl

from sluice.lake import Lake
from transform.dedup import run
from transform.dedup_state import FULL_PASS_SHARE, plan

COLUMNS = ["image_id", "dup_group", "is_canonical", "match_kind", "match_score", "match_with"]


def groups_of(lake: Lake) -> pl.DataFrame:
    return pl.from_arrow(lake.read("image_groups", columns=COLUMNS)).sort("image_id")


def test_new_images_searched_alone_give_the_groups_of_a_full_pass(demo_copy, make_params):
    lake = Lake(str(demo_copy))
    params = make_params({"lake": {"root": str(demo_copy)}})
    full = groups_of(lake)  # the fixture's full pass over every image
    # some images arrive later: a third of the grouped ones (with and without their partners) and any others
    rng = np.random.default_rng(0)
    grouped = full.filter(pl.col("dup_group").is_duplicated())["image_id"].to_list()
    late = sorted(set(rng.choice(grouped, len(grouped) // 3, replace=False).tolist())
                  | set(rng.choice(full["image_id"].to_list(), full.height // 20, replace=False).tolist()))
    members = full.filter(pl.col("image_id").is_in(late) & ~pl.col("is_canonical"))
    assert members.height >= 5 and full.filter(pl.col("image_id").is_in(late) & pl.col("is_canonical")
                                               & pl.col("match_kind").is_not_null()).height >= 3
    import pyarrow.compute as pc

    rows = lake.read("images", filter=pc.field("image_id").isin(late))
    quoted = ", ".join(f"'{i}'" for i in late)
    lake.overwrite("images", rows.schema.empty_table(), predicate=f"image_id IN ({quoted})")

    before = run(params)["counts"]  # grouped images left the lake: their groups are recomputed in full
    assert before["mode"] == "full pass" and "left the lake" in before["why"]
    assert before["images"] == full.height - len(late)

    lake.append("images", rows)
    after = run(params)["counts"]
    assert after["mode"] == "incremental" and after["new_images"] == len(late)
    assert after["near_candidates"] >= after["near_pairs"] > 0  # searched and verified
    assert groups_of(lake).equals(full)


def test_changed_settings_or_pixels_mean_a_full_pass(demo_copy, make_params):
    lake = Lake(str(demo_copy))
    counts = run(make_params({"lake": {"root": str(demo_copy)}, "dedup": {"min_correlation": 0.85}}))["counts"]
    assert counts["mode"] == "full pass" and "other dedup settings" in counts["why"]
    assert counts["near_candidates"] > 0
    meta = pl.from_arrow(lake.read("images", columns=["image_id", "pixel_hash"])).sort("image_id").with_row_index("row")
    stored = pl.from_arrow(lake.read("image_groups"))
    fingerprint = stored["match_basis"][0].split(":")[0]
    assert plan(meta, stored, fingerprint, True)[0] is not None  # as stored: incremental
    changed = meta.with_columns(pixel_hash=pl.when(pl.col("row") == 3).then(pl.lit("f" * 64)).otherwise("pixel_hash"))
    new, why = plan(changed, stored, fingerprint, True)
    assert new is None and "1 stored rows" in why


def test_erasure_in_a_group_makes_the_next_run_full(demo_copy, make_params):
    from sluice.erasure import regroup

    lake = Lake(str(demo_copy))
    member = groups_of(lake).filter(~pl.col("is_canonical"))["image_id"][0]
    regroup(lake, {member}, "erase-test")
    counts = run(make_params({"lake": {"root": str(demo_copy)}}))["counts"]
    assert counts["mode"] == "full pass" and "other dedup settings, another matching version or other pixels" in counts["why"]


def test_plan_prefers_a_full_pass_when_many_images_are_new():
    meta = pl.DataFrame({"image_id": [f"i{k:03d}" for k in range(100)], "pixel_hash": ["ab" * 32] * 100}).with_row_index("row")
    stored = pl.DataFrame({"image_id": meta["image_id"], "dup_group": meta["image_id"], "match_with": [None] * 100,
                           "match_basis": ["fp:" + "ab" * 8] * 100}, schema_overrides={"match_with": pl.String})
    most = round(FULL_PASS_SHARE * 100)
    new, why = plan(meta, stored.head(100 - most), "fp", True)
    assert new.tolist() == list(range(100 - most, 100)) and why.startswith(f"incremental ({most} new of 100")
    new, why = plan(meta, stored.head(99 - most), "fp", True)
    assert new is None and f"{most + 1} of 100 images are new" in why
    assert plan(meta, stored, "fp", False) == (None, "full pass (dedup.incremental: false)")
    assert plan(meta, None, "fp", True)[1] == "full pass (no stored result to build on)"


def test_stage_says_which_run_it_made_and_why(run_cli, tmp_path, demo_copy):
    import json

    result = run_cli(module="transform.dedup", params={"lake": {"root": str(demo_copy)}})
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "data/manifests/dedup.json").read_text())["counts"]
    assert counts["mode"] == "incremental" and counts["new_images"] == 0
    line = f"incremental (0 new of {counts['images']:,} images; the others keep their stored groups)"
    assert counts["why"] == line and line in result.stdout + result.stderr
    assert "near pairs with a new image" in result.stdout + result.stderr


def test_an_incremental_run_with_few_new_images_stays_in_one_process(demo_copy, make_params, monkeypatch):
    """Dask is for many images to search: every image in a full pass, the new ones in an incremental run."""
    from contextlib import contextmanager

    import pyarrow.compute as pc

    import sluice.compute
    import transform.dedup

    lake = Lake(str(demo_copy))
    params = make_params({"lake": {"root": str(demo_copy)}})
    started = []

    @contextmanager
    def counting_client(compute, stage):  # records that a cluster was asked for; the search then runs here
        started.append(stage)
        yield None

    monkeypatch.setattr(sluice.compute, "dask_client", counting_client)
    monkeypatch.setattr(transform.dedup, "DASK_MIN_IMAGES", 100)
    late = groups_of(lake)["image_id"].to_list()[:20]
    rows = lake.read("images", filter=pc.field("image_id").isin(late))
    lake.overwrite("images", rows.schema.empty_table(), predicate="image_id IN ({})".format(", ".join(f"'{i}'" for i in late)))
    assert run(params)["counts"]["mode"] == "full pass" and started == ["dedup"]  # >= 100 images: Dask
    lake.append("images", rows)
    counts = run(params)["counts"]
    assert counts["mode"] == "incremental" and counts["new_images"] == 20 and started == ["dedup"]  # 20 new: here
