"""The export's pixel pass: into the snapshot's own shards, in one process or as Dask tasks, the same bytes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from demo.generate import digit_images
from sluice.membership import Lookup
from sluice.snapshot import SPLITS, ShardedImages
from tests.transform.test_export import dataset_rows, image_rows, put_images
from transform.export_pass import ShardPlan, StagingNotShared, file_batches, fill, fill_on_dask, fragment_batches


@pytest.fixture
def spread(lake):
    """120 members in three data files of ``images`` (rows arrive out of image_id order), 5 images not members,
    and one member whose pixels have the wrong size."""
    images, labels = digit_images(0)
    rows = image_rows(images[:125])
    for start in (80, 0, 40):
        put_images(lake, rows.slice(start, 40 if start < 80 else 45))
    wrong = image_rows(np.zeros((1, 16, 16, 3), np.uint8) + 9)
    put_images(lake, wrong)
    ids = rows.column("image_id").to_pylist()[:120] + wrong.column("image_id").to_pylist()
    lake.overwrite("dataset", dataset_rows(ids, np.concatenate([labels[:120], [1]])))
    return lake, {i: img for i, img in zip(ids, images[:120])}


def plan_for(lake, folder, shard_rows=7):
    members = pl.from_arrow(lake.read("dataset", columns=["image_id", "split"]))
    index = pl.concat([members.filter(pl.col("split") == s).sort("image_id").with_columns(
        pos=pl.int_range(pl.len(), dtype=pl.Int64)) for s in SPLITS]).select("image_id", "split", "pos")
    plan, shards = ShardPlan.create(index, (32, 32, 3), folder, shard_rows)
    return plan, shards, index


def check_filled(plan, shards, index, pixels_of, seen):
    assert seen.height == index.height  # every member met once, the wrong-sized one too
    assert seen.filter(pl.col("nbytes") != 3072).height == 1
    for split in SPLITS:
        got = np.asarray(ShardedImages(shards[split], (32, 32, 3)))
        ids = index.filter(pl.col("split") == split)["image_id"].to_list()
        assert len(got) == len(ids)
        for row, image_id in enumerate(ids):
            want = pixels_of.get(image_id, np.zeros((32, 32, 3), np.uint8))  # the wrong-sized row stays empty
            assert np.array_equal(got[row], want), (split, row)


def test_one_pass_fills_every_members_row_of_the_shards(spread, tmp_path):
    lake, pixels_of = spread
    plan, shards, index = plan_for(lake, tmp_path / "shards")
    assert len(shards["train"]) > 5  # rows land in many shards
    seen = fill(file_batches(lake, lake.version("images")), plan, Lookup(plan.ids), shards)
    check_filled(plan, shards, index, pixels_of, seen)


def test_dask_tasks_over_the_data_files_fill_the_same_rows(spread, tmp_path, dask_cluster):
    lake, pixels_of = spread
    plan, shards, index = plan_for(lake, tmp_path / "shards")
    version = lake.version("images")
    whole = lake.dataset("images", version)
    fragments = list(whole.get_fragments())
    assert len(fragments) == 4
    assert sum(len(list(fragment_batches(fragments[k::2], whole.schema, whole.format))) for k in range(2)) >= 4
    seen = fill_on_dask(dask_cluster, lake, version, plan, Lookup(plan.ids))
    check_filled(plan, shards, index, pixels_of, seen)


def test_workers_that_cannot_see_the_shards_say_so_or_send_the_rows_here(spread, tmp_path, dask_cluster):
    """Workers that cannot see the folder of the shards (as on a cluster without a shared disk) raise, or,
    given the driver's shards, read a data file a task and send its rows back: the same bytes."""
    lake, pixels_of = spread
    plan, shards, index = plan_for(lake, tmp_path / "shards")
    plan.folder = tmp_path / "elsewhere"  # as a worker on another machine would find it
    with pytest.raises(StagingNotShared, match="not visible"):
        fill_on_dask(dask_cluster, lake, lake.version("images"), plan, Lookup(plan.ids))
    told = []
    seen = fill_on_dask(dask_cluster, lake, lake.version("images"), plan, Lookup(plan.ids), shards,
                        on_unshared=told.append)
    check_filled(plan, shards, index, pixels_of, seen)
    assert len(told) == 1 and "not visible" in told[0]
