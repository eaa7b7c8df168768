"""Export and verified checkout vs their plain baselines.

1. Export: gold ``dataset`` + silver ``images`` (Delta, through the catalog) -> sharded snapshot
   (``transform.export.export``: pinned versions, join, sort by image_id, shards, content hash),
   against the plainest way to get the same pixels onto disk: ``pyarrow.parquet.read_table`` of the
   same pixels as one plain Parquet file + one ``np.save``. Target: >= 0.5x (the snapshot also joins,
   sorts, shards and hashes).
2. Verified restore: ``sluice.checkout.copy_verified`` (copy + md5 of every file, as
   ``sluice dataset checkout`` does) + the sha256 content hash, against its floor: md5 + sha256 of
   the same bytes already in memory. Target: >= 0.8x (copying adds little to the two hash passes).
   The ratio to an unverified ``shutil.copytree`` is printed too: that is what verification costs.

3. With ``--tasks``: the export with its pixel pass as Dask tasks (a running 2-worker LocalCluster given
   as ``compute.scheduler_address``, as on a cluster) against the same export in one process (the
   default), and tasks whose workers cannot see the shards (they send their rows to the driver) against
   tasks writing in place; the same bytes asserted.

    python benchmarks/export.py [--rows 50000] [--quick] [--tasks]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, ratio_line  # noqa: E402

from sluice.config import parse_params  # noqa: E402
from sluice.imaging import Geometry, record_geometry  # noqa: E402
from sluice.lake import Lake  # noqa: E402
from sluice.snapshot import content_hash  # noqa: E402
from sluice.checkout import copy_verified  # noqa: E402
from transform.export import export  # noqa: E402


def synthetic(rows: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8)
    ids = [f"{i:064x}" for i in rng.permutation(rows * 4)[:rows]]
    images = pa.table({
        "image_id": ids, "width": [32] * rows, "height": [32] * rows, "mode": ["RGB"] * rows,
        "pixels": pa.array([p.tobytes() for p in pixels], pa.binary()), "pixel_hash": ids,
        "phash": np.arange(rows, dtype=np.int64), "run_id": ["bench"] * rows,
    })
    labels = rng.integers(0, 10, rows)
    splits = np.array(["train", "train", "train", "train", "train", "train", "train", "train", "val", "test"])[
        rng.integers(0, 10, rows)]
    dataset = pa.table({
        "image_id": ids, "split": splits, "label": [str(v) for v in labels], "class_index": labels.astype(np.int32),
        "weight": np.ones(rows), "dup_group": ids, "run_id": ["bench"] * rows,
    })
    return images, dataset


class FakeCache:
    """The part of sluice.dvc_store.Cache that copy_verified uses: md5 -> object path."""

    def __init__(self, folder: Path):
        self.objects = {}
        for f in folder.iterdir():
            self.objects[hashlib.md5(f.read_bytes()).hexdigest()] = f

    def path(self, md5: str) -> Path:
        return self.objects[md5]


def _unshared(run):
    """``run()`` with the workers told a shard folder they cannot see (as on a cluster without a shared disk):
    they send their rows to the driver, which writes them."""
    import dataclasses

    import transform.export as stage

    real = stage.fill_on_dask
    stage.fill_on_dask = lambda client, lake, version, plan, *a, **k: real(
        client, lake, version, dataclasses.replace(plan, folder=plan.folder.parent / "not-on-the-workers"), *a, **k)
    try:
        return run()
    finally:
        stage.fill_on_dask = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 2 repeats")
    parser.add_argument("--tasks", action="store_true", help="also the pixel pass on Dask vs one process")
    args = parser.parse_args()
    rows, repeat = (10_000, 2) if args.quick else (args.rows, 3)
    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-export-"))
    try:
        images, dataset = synthetic(rows)
        lake = Lake(str(tmp / "lake"))
        for start in range(0, rows, 50_000):  # data files of 50k rows, as a lake landed in batches has
            lake.merge_insert("images", images.slice(start, 50_000))
        record_geometry(lake, "images", Geometry(32, 32, "squash"))  # what the clean stage records
        lake.overwrite("dataset", dataset)
        pq.write_table(images.select(["image_id", "pixels"]), tmp / "plain.parquet")
        params = parse_params({"lake": {"root": lake.root}})
        print(f"{rows} images of 32x32x3 ({rows * 3072 / 1e6:.0f} MB of pixels)")

        def ours():
            export(lake, tmp / "snap", params)

        def baseline():
            t = pq.read_table(tmp / "plain.parquet")
            flat = np.frombuffer(t.column("pixels").combine_chunks().buffers()[2], np.uint8)
            np.save(tmp / "plain.npy", flat[: len(t) * 3072].reshape(len(t), 32, 32, 3))

        t_ours, t_base = best_of(ours, repeat), best_of(baseline, repeat)
        print(f"export: {rows / t_ours:,.0f} images/s; plain Parquet -> np.save: {rows / t_base:,.0f} images/s")
        print(ratio_line("export vs plain Parquet read + np.save", t_ours, "plain", t_base, target=0.5))

        if args.tasks:
            from distributed import LocalCluster

            hashes = set()
            t_one = best_of(lambda: hashes.add(export(lake, tmp / "snap", params)[0]["content_hash"]), repeat)
            with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
                on_dask = parse_params({"lake": {"root": lake.root}, "compute": {"scheduler_address": cluster.scheduler_address}})
                t_tasks = best_of(lambda: hashes.add(export(lake, tmp / "snap", on_dask)[0]["content_hash"]), repeat)
                t_sent = best_of(lambda: hashes.add(_unshared(lambda: export(lake, tmp / "snap", on_dask))[0]["content_hash"]),
                                 repeat)
            assert len(hashes) == 1, "the tasks wrote other bytes"
            print(ratio_line("export, pixel pass as tasks on a running 2-worker LocalCluster vs one process", t_tasks,
                             "one process", t_one))
            print(ratio_line("export, tasks that cannot see the shards (rows sent to the driver) vs tasks writing "
                             "in place", t_sent, "in place", t_tasks))

        snap = tmp / "snap"
        cache = FakeCache(snap)
        files = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in snap.iterdir()}

        def verified():
            shutil.rmtree(tmp / "restore", ignore_errors=True)
            (tmp / "restore").mkdir()
            assert not copy_verified(cache, files, tmp / "restore")
            content_hash(tmp / "restore")

        def plain_copy():
            shutil.rmtree(tmp / "restore", ignore_errors=True)
            shutil.copytree(snap, tmp / "restore")

        blobs = [f.read_bytes() for f in sorted(snap.iterdir())]

        def hashing_floor():
            for blob in blobs:
                hashlib.md5(blob).digest()
                hashlib.sha256(blob).digest()

        t_ver, t_copy, t_hash = best_of(verified, repeat), best_of(plain_copy, repeat), best_of(hashing_floor, repeat)
        mb = sum(len(b) for b in blobs) / 1e6
        print(f"verified restore: {mb / t_ver:,.0f} MB/s; unverified copytree: {mb / t_copy:,.0f} MB/s; "
              f"md5 + sha256 in memory: {mb / t_hash:,.0f} MB/s")
        print(ratio_line("verified restore vs its hashing floor (md5 + sha256 of the bytes in memory)", t_ver,
                         "hashing floor", t_hash, target=0.8))
        print(ratio_line("verified restore vs unverified shutil.copytree", t_ver, "copytree", t_copy))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
