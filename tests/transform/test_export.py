"""The export stage: gold dataset + silver pixels -> snapshot, deterministic and nothing lost."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from demo.generate import digit_images
from sluice.errors import InputError
from sluice.imaging import Geometry, record_geometry
from sluice.snapshot import load_split, read_manifest, verify
from transform.export import export, run

SPLIT_OF = ("train", "train", "train", "val", "test")


def image_rows(images: np.ndarray, run_id: str = "clean-test") -> pa.Table:
    ids = [hashlib.sha256(img.tobytes()).hexdigest() for img in images]
    n = len(images)
    return pa.table({
        "image_id": ids, "width": [32] * n, "height": [32] * n, "mode": ["RGB"] * n, "format": ["PNG"] * n,
        "pixels": [img.tobytes() for img in images], "pixel_hash": ids, "phash": list(range(n)),
        "dup_group": ids, "is_canonical": [True] * n, "run_id": [run_id] * n,
    })


SQUARE32 = Geometry(32, 32, "squash")


def put_images(lake, rows: pa.Table, geometry: Geometry = SQUARE32) -> None:
    """Land silver rows as the clean stage would: with the geometry recorded on the table."""
    lake.merge_insert("images", rows)
    record_geometry(lake, "images", geometry)


def dataset_rows(ids: list[str], labels: np.ndarray, weights=None, splits=None, run_id: str = "dataset-test") -> pa.Table:
    n = len(ids)
    return pa.table({
        "image_id": ids, "split": splits or [SPLIT_OF[i % 5] for i in range(n)],
        "label": [str(int(v)) for v in labels], "class_index": [int(v) for v in labels],
        "weight": weights if weights is not None else [1.0] * n, "dup_group": ids, "run_id": [run_id] * n,
    })


@pytest.fixture
def digits():
    images, labels = digit_images(0)
    return images[:300], labels[:300]


@pytest.fixture
def filled(lake, digits):
    images, labels = digits
    rows = image_rows(images)
    put_images(lake, rows)
    lake.overwrite("dataset", dataset_rows(rows.column("image_id").to_pylist(), labels))
    return lake


def test_export_writes_a_sorted_loadable_snapshot(filled, make_params, tmp_path, digits):
    params = make_params({"export": {"out_dir": str(tmp_path / "snap"), "shard_rows": 50}})
    manifest, rejects, rows_in = export(filled, tmp_path / "snap", params)
    assert rejects == [] and rows_in == 300
    assert manifest["classes"] == [str(i) for i in range(10)]
    assert manifest["counts"] == {"train": 180, "val": 60, "test": 60, "total": 300, "rejected": 0}
    assert manifest["table_versions"] == {"dataset": filled.version("dataset"), "images": filled.version("images")}
    assert manifest["params"]["export"]["shard_rows"] == 50 and "lake" not in manifest["params"]
    assert len(manifest["splits"]["train"]["shards"]) == 4  # 180 rows in shards of 50
    train = load_split(tmp_path / "snap", "train")
    assert train.ids == sorted(train.ids)
    images, labels = digits
    by_id = {hashlib.sha256(img.tobytes()).hexdigest(): (img, lab) for img, lab in zip(images, labels)}
    for i in (0, 77, 179):
        img, lab = by_id[train.ids[i]]
        assert np.array_equal(train.images[i], img) and train.labels[i] == lab
    assert verify(tmp_path / "snap")[0]
    # mean/std are computed from the train split when the dataset manifest does not describe this version
    assert manifest["stats_source"].startswith("computed")
    assert all(0 < m < 1 for m in manifest["mean"]) and all(0 < s < 1 for s in manifest["std"])


def test_same_versions_same_hash_and_time_travel(filled, make_params, tmp_path, digits):
    params = make_params({})
    first, _, _ = export(filled, tmp_path / "a", params)
    again, _, _ = export(filled, tmp_path / "b", params)
    assert first["content_hash"] == again["content_hash"]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    # change the dataset: drop 10 rows and reweight the rest
    ds = filled.read("dataset")
    filled.overwrite("dataset", ds.slice(10).set_column(4, "weight", pa.array([0.5] * (ds.num_rows - 10))))
    changed, _, _ = export(filled, tmp_path / "c", params)
    assert changed["content_hash"] != first["content_hash"] and changed["counts"]["total"] == 290
    assert changed["weighted"] is True
    # time travel back to the first versions rebuilds the first snapshot exactly
    rebuilt, _, _ = export(filled, tmp_path / "d", params, versions=first["table_versions"])
    assert rebuilt["content_hash"] == first["content_hash"]


def test_weights_and_membership_come_from_the_dataset_table(lake, make_params, tmp_path, digits):
    images, labels = digits
    rows = image_rows(images[:20])
    ids = rows.column("image_id").to_pylist()
    put_images(lake, rows)
    weights = [0.0 if i % 4 == 0 else 2.0 for i in range(10)]  # 10 of the 20 images are members
    lake.overwrite("dataset", dataset_rows(ids[:10], labels[:10], weights=weights, splits=["train"] * 10))
    manifest, _, _ = export(lake, tmp_path / "s", make_params({}))
    train = load_split(tmp_path / "s", "train")
    assert sorted(train.ids) == sorted(ids[:10]) and set(manifest["splits"]) == {"train"}
    expected = {i: w for i, w in zip(ids[:10], weights)}
    assert [float(w) for w in train.weights] == [expected[i] for i in train.ids]


def test_dataset_manifest_stats_used_only_for_the_same_version(filled, make_params, tmp_path):
    version = filled.version("dataset")
    stats = {"normalize": {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}, "versions": {"dataset": version}}
    manifest, _, _ = export(filled, tmp_path / "a", make_params({}), dataset_manifest=stats)
    assert manifest["mean"] == [0.1, 0.2, 0.3] and manifest["stats_source"] == "dataset manifest"
    stale = {**stats, "versions": {"dataset": version - 1}}
    manifest, _, _ = export(filled, tmp_path / "b", make_params({}), dataset_manifest=stale)
    assert manifest["mean"] != [0.1, 0.2, 0.3]


def test_rows_without_usable_pixels_are_quarantined_by_the_stage(lake, make_params, tmp_path, digits, monkeypatch):
    images, labels = digits
    rows = image_rows(images[:30])
    ids = rows.column("image_id").to_pylist()
    small = image_rows(np.zeros((1, 16, 16, 3), np.uint8) + 7)  # wrong pixel size
    put_images(lake, pa.concat_tables([rows.slice(0, 25), small]))
    members = ids[:30] + small.column("image_id").to_pylist()
    labs = np.concatenate([labels[:30], [3]])
    splits = ["train"] * 29 + ["holdout", "train"]
    lake.overwrite("dataset", dataset_rows(members, labs, splits=splits))
    params = make_params({"export": {"out_dir": str(tmp_path / "snap")}})
    monkeypatch.chdir(tmp_path)
    summary = run(params, manifest_dir=tmp_path / "manifests")
    assert summary["counts"]["total"] == 25 and summary["counts"]["rejected"] == 6
    q = {r["row_key"]: r for r in lake.read("quarantine").to_pylist()}
    assert {q[i]["check"] for i in ids[25:29]} == {"pixels_missing"}
    assert q[ids[29]]["check"] == "unknown_split"
    assert q[small.column("image_id")[0].as_py()]["check"] == "pixels_shape"
    assert all(r["stage"] == "export" and r["source_table"] == "dataset" for r in q.values())
    # fix the data upstream: a rerun re-admits the rows and clears the stage's quarantine rows
    lake.overwrite("dataset", dataset_rows(ids[:25], labels[:25], splits=["train"] * 25))
    summary = run(params, manifest_dir=tmp_path / "manifests")
    assert summary["counts"]["rejected"] == 0 and lake.read("quarantine").num_rows == 0


def test_inconsistent_class_index_is_a_user_error(lake, make_params, tmp_path, digits):
    images, labels = digits
    rows = image_rows(images[:10])
    put_images(lake, rows)
    bad = dataset_rows(rows.column("image_id").to_pylist(), labels[:10])
    bad = bad.set_column(3, "class_index", pa.array([0] * 10, pa.int32()))
    lake.overwrite("dataset", bad)
    with pytest.raises(InputError, match="class_index 0 is used for several labels"):
        export(lake, tmp_path / "s", make_params({}))


def test_a_class_without_rows_keeps_its_index_from_the_class_list_recorded_on_the_dataset_table(
        lake, make_params, tmp_path, digits):
    """The dataset stage left class '1' no row (index 1 unused): the recorded list names it, so the snapshot's
    classes keep every index where the dataset stage put it; without a recorded list a gap is an error."""
    from sluice import class_order

    images, labels = digits
    keep = [i for i in range(60) if labels[i] != 1][:20]
    rows = image_rows(images[keep])
    put_images(lake, rows)
    lake.overwrite("dataset", dataset_rows(rows.column("image_id").to_pylist(), labels[keep]))
    with pytest.raises(InputError, match="without gaps"):
        export(lake, tmp_path / "a", make_params({}))
    class_order.record(lake, "dataset", [str(k) for k in range(10)])
    assert class_order.recorded(lake, "dataset") == [str(k) for k in range(10)]
    manifest, _, _ = export(lake, tmp_path / "b", make_params({}))
    assert manifest["classes"] == [str(k) for k in range(10)]
    class_order.record(lake, "dataset", ["a", "b"])  # a list the rows contradict is not used
    with pytest.raises(InputError, match="without gaps"):
        export(lake, tmp_path / "c", make_params({}))


def test_stage_cli_writes_manifest_and_fails_cleanly_without_tables(run_cli, tmp_path, filled):
    params = {"lake": {"root": filled.root}, "export": {"out_dir": "data/dataset"}}
    result = run_cli(module="transform.export", params=params)
    assert result.returncode == 0, result.stderr
    assert "reconcile: in 300 = exported 300 + quarantined 0  OK" in result.stderr
    stage = json.loads((tmp_path / "data/manifests/export.json").read_text())
    assert stage["content_hash"] == read_manifest(tmp_path / "data/dataset")["content_hash"]
    empty = run_cli(module="transform.export", params={"lake": {"root": str(tmp_path / "nolake")}})
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert "table 'dataset' does not exist yet" in empty.stderr.strip().splitlines()[-1]


def test_non_square_geometry_gives_memory_mapped_uint8_shards_at_that_shape(lake, make_params, tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 24, 40, 3), dtype=np.uint8)
    rows = image_rows(images)
    geometry = Geometry(24, 40, "pad", (0, 0, 0))
    put_images(lake, rows, geometry)
    lake.overwrite("dataset", dataset_rows(rows.column("image_id").to_pylist(), np.arange(12) % 3, splits=["train"] * 12))
    manifest, rejects, _ = export(lake, tmp_path / "s", make_params({"clean": {"size": 99}}))  # clean.size is not read
    assert rejects == [] and manifest["image_shape"] == [24, 40, 3] and manifest["geometry"] == geometry.to_dict()
    train = load_split(tmp_path / "s", "train")
    assert isinstance(train.images, np.memmap) and train.images.dtype == np.uint8 and train.images.shape == (12, 24, 40, 3)
    by_id = {hashlib.sha256(img.tobytes()).hexdigest(): img for img in images}
    assert all(np.array_equal(train.images[i], by_id[k]) for i, k in enumerate(train.ids))


def test_images_without_recorded_geometry_is_a_one_line_error(lake, make_params, tmp_path, digits):
    images, labels = digits
    rows = image_rows(images[:10])
    lake.merge_insert("images", rows)  # as an older clean stage wrote it
    lake.overwrite("dataset", dataset_rows(rows.column("image_id").to_pylist(), labels[:10]))
    with pytest.raises(InputError, match="records no image geometry .* rerun it"):
        export(lake, tmp_path / "s", make_params({}))
    manifest, _, _ = export(lake, tmp_path / "s", make_params({}), geometry=Geometry(32, 32, "squash"))
    assert manifest["image_shape"] == [32, 32, 3]  # what a rebuild of an old snapshot passes in


def test_assembling_on_disk_gives_the_in_memory_arrays_and_rejects(lake, digits, tmp_path):
    """The stage streams pixels into memory-mapped arrays (bounded memory); the result is exactly what
    joining every pixel in memory gives, rejects included."""
    import polars as pl

    from transform.export import assemble, assemble_to_disk, read_members, read_pixels

    images, labels = digits
    rows = image_rows(images[:60])
    small = image_rows(np.zeros((1, 16, 16, 3), np.uint8) + 7)
    put_images(lake, pa.concat_tables([rows.slice(0, 50), small]))
    ids = rows.column("image_id").to_pylist()
    members = ids + small.column("image_id").to_pylist()
    splits = [SPLIT_OF[i % 5] for i in range(59)] + ["holdout", "val"]
    lake.overwrite("dataset", dataset_rows(members, np.concatenate([labels[:60], [3]]), splits=splits))
    version = lake.version("images")
    table = read_members(lake, lake.version("dataset"))
    want = assemble(table, read_pixels(lake, version, table["image_id"].to_list()), (32, 32, 3))
    got = assemble_to_disk(lake, version, table, (32, 32, 3), tmp_path)
    assert got[3] is None  # rows were rejected: the kept rows are compacted, the shards written afresh
    assert got[1] == want[1] and [(r.check, r.image_ids) for r in got[2]] == [(r.check, r.image_ids) for r in want[2]]
    assert set(got[0]) == set(want[0])
    for split, arrays in want[0].items():
        mine = got[0][split]
        assert isinstance(mine.images, np.memmap) and np.array_equal(mine.images, arrays.images)
        assert mine.ids == arrays.ids and np.array_equal(mine.labels, arrays.labels)
        assert np.array_equal(mine.weights, arrays.weights)
    assert pl.Series(got[0]["train"].ids).is_sorted()


def test_pixels_are_written_once_into_the_snapshots_own_shards(lake, digits, tmp_path):
    """Without rejects, the stage's single pass fills the snapshot's image shards in place (rows arrive in
    the table's order, spread over several shards); the snapshot is byte-identical to writing the
    in-memory arrays."""
    from sluice.snapshot import write_snapshot
    from transform.export import assemble, assemble_to_disk, read_members, read_pixels

    images, labels = digits
    rows = image_rows(images[:60])
    put_images(lake, rows.slice(30, 30))
    put_images(lake, rows.slice(0, 30))  # a second file: batches arrive out of image_id order
    ids = rows.column("image_id").to_pylist()
    lake.overwrite("dataset", dataset_rows(ids, labels[:60], splits=[SPLIT_OF[i % 5] for i in range(60)]))
    version = lake.version("images")
    table = read_members(lake, lake.version("dataset"))
    want, classes, _ = assemble(table, read_pixels(lake, version, table["image_id"].to_list()), (32, 32, 3))
    (tmp_path / "work").mkdir()
    got, got_classes, rejects, staged = assemble_to_disk(lake, version, table, (32, 32, 3), tmp_path / "work", shard_rows=7)
    assert rejects == [] and staged is not None and got_classes == classes
    assert len(list(staged.glob("train-*.images.npy"))) > 2
    for split, arrays in want.items():
        assert np.array_equal(np.asarray(got[split].images), arrays.images) and got[split].ids == arrays.ids
    mine = write_snapshot(tmp_path / "mine", got, classes, shard_rows=7, images_in=staged)
    plain = write_snapshot(tmp_path / "plain", want, classes, shard_rows=7)
    assert mine["content_hash"] == plain["content_hash"] and mine["splits"] == plain["splits"]
    assert not list(staged.glob("*.npy"))  # moved, not copied


def test_on_a_dask_scheduler_the_snapshot_is_byte_identical(filled, make_params, tmp_path, dask_cluster, monkeypatch,
                                                            caplog):
    """With compute.scheduler_address the pixel pass runs as tasks (one process without one): the same
    content hash; where the workers cannot see the shards they send the rows here, with a warning."""
    import dataclasses

    import transform.export as stage

    local, _, _ = export(filled, tmp_path / "local", make_params({"export": {"shard_rows": 64}}))
    cluster = make_params({"export": {"shard_rows": 64},
                           "compute": {"scheduler_address": dask_cluster.scheduler.address}})
    tasks, _, _ = export(filled, tmp_path / "tasks", cluster)
    assert tasks["content_hash"] == local["content_hash"] and tasks["splits"] == local["splits"]
    fill_on_dask = stage.fill_on_dask

    def elsewhere(client, lake, version, plan, *args, **kwargs):  # the workers' plan names a folder they cannot see
        return fill_on_dask(client, lake, version, dataclasses.replace(plan, folder=tmp_path / "not-here"), *args,
                            **kwargs)

    monkeypatch.setattr(stage, "fill_on_dask", elsewhere)
    sent, _, _ = export(filled, tmp_path / "sent", cluster)
    assert sent["content_hash"] == local["content_hash"]
    assert "cannot write the snapshot's shards" in caplog.text
