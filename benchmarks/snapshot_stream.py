"""Training input from a snapshot in object storage vs the local memory-mapped snapshot, and the memory
it costs to open a split.

Throughput: one epoch of a rank's training batches (64 images, no augmentation: the reading is what is
measured) through ``train.data.load_data``, in one process, one torch thread:

- baseline: the local snapshot folder, global shuffle (memory-mapped shards, page cache warm);
- the local folder with ``shuffle: shards``;
- the snapshot published (``sluice dataset publish``) to a ``file://`` URL and to a real S3 server on
  loopback (moto, when installed), read shard by shard: each shard fetched whole once an epoch,
  checked against its sha256, at most ``cache_shards`` held.

Memory: the anonymous memory (``RssAnon``: not the page cache, which the kernel reclaims) a fresh
process adds to open the train split and read one batch, before (the split's shards concatenated
into one array, as ``load_split`` did) and now (``ShardedImages``: the shards stay memory-mapped; a
URL holds the shards that batch needed, at most ``cache_shards``).

    python benchmarks/snapshot_stream.py                 # 60,000 images of 32x32
    python benchmarks/snapshot_stream.py --images 6000 --side 224 --shard-rows 1024 --no-s3  # photos
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sluice.config import AugmentParams  # noqa: E402
from sluice.snapshot import SplitArrays, write_snapshot  # noqa: E402
from sluice.snapshot_store import publish  # noqa: E402

NO_AUG = AugmentParams(crop_padding=0, flip=False, rotate_degrees=0, cutout=0)

RSS_CHILD = """
import sys, numpy as np
sys.path.insert(0, {repo!r})
from sluice import snapshot, snapshot_store

def anon_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon:")).split()[1])

mode, where = sys.argv[1], sys.argv[2]
before = anon_kib()
if mode == "concatenated":
    images = np.concatenate([snapshot.load_split(where, "train", shards=[k]).images
                             for k in range(len(snapshot.read_manifest(where)["splits"]["train"]["shards"]))])
else:
    images = snapshot_store.load_split(where, "train").images
batch = snapshot.take_rows(images, np.sort(np.random.default_rng(0).choice(len(images), 64, replace=False)))
print((anon_kib() - before) // 1024 + 0 * int(batch.sum()))
"""


def build(folder: Path, n: int, side: int, shard_rows: int) -> None:
    rng = np.random.default_rng(0)
    split = SplitArrays(rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8), rng.integers(0, 10, n),
                        np.ones(n, np.float32), [f"img{i:07d}" for i in range(n)])
    write_snapshot(folder, {"train": split}, [f"c{i}" for i in range(10)], {"mean": [0.5] * 3, "std": [0.29] * 3},
                   shard_rows=shard_rows)


def epoch_seconds(where: str, shuffle: str, cache: int) -> tuple[float, int]:
    import torch

    from train.data import LoaderSpec, load_data

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data(where, LoaderSpec(batch_size=64, augment=NO_AUG, shuffle=shuffle, cache_shards=cache),
                     splits=("train",))
    seen = sum(len(y) for _, y, _ in data.train)
    return time.perf_counter() - start, seen


def moto_server():
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"})
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(Bucket="bench")
    return proc, "s3://bench/snapshot"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60_000)
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--shard-rows", type=int, default=8192)
    ap.add_argument("--cache-shards", type=int, default=4)
    ap.add_argument("--no-s3", action="store_true", help="skip the S3 row (moto holds objects in Python: slow with large shards)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        local = tmp / "snap"
        build(local, args.images, args.side, args.shard_rows)
        size_mb = sum(p.stat().st_size for p in local.iterdir()) / 1e6
        print(f"snapshot: {args.images} images of {args.side}x{args.side}, {size_mb:.0f} MB in shards of "
              f"{args.shard_rows} rows", flush=True)
        file_url = (tmp / "published").as_uri()
        publish(local, file_url)
        proc, s3_url = (None, None) if args.no_s3 else moto_server()
        results = {}
        try:
            if s3_url:
                publish(local, s3_url)
            epoch_seconds(str(local), "global", args.cache_shards)  # warm the page cache
            runs = [("local, global shuffle (baseline)", str(local), "global"),
                    ("local, shuffle: shards", str(local), "shards"),
                    ("file:// URL, shards fetched", file_url, "auto")]
            if s3_url:
                runs.append(("S3 (moto on loopback), shards fetched", s3_url, "auto"))
            for name, where, shuffle in runs:
                seconds, seen = min((epoch_seconds(where, shuffle, args.cache_shards) for _ in range(2)),
                                    key=lambda r: r[0])
                results[name] = {"seconds": round(seconds, 3), "images_per_s": round(seen / seconds)}
            base = results["local, global shuffle (baseline)"]["seconds"]
            for name, r in results.items():
                print(f"epoch read, {name}: {r['images_per_s']} images/s, {base / r['seconds']:.2f}x the local "
                      f"global-shuffle read ({r['seconds']:.2f} s)")
            child = RSS_CHILD.format(repo=str(Path(__file__).resolve().parents[1]))
            rss = {}
            for mode, where in [("concatenated", str(local)), ("mapped", str(local)), ("mapped", file_url)]:
                out = subprocess.run([sys.executable, "-c", child, mode, where], capture_output=True, text=True,
                                     env=os.environ, check=True)
                rss[f"{mode} {'URL' if '://' in where else 'folder'}"] = int(out.stdout.strip())
            for name, mib in rss.items():
                print(f"memory added to open the train split and read one batch (RssAnon), {name}: {mib} MiB")
            print(f"memory: {rss['concatenated folder'] / max(rss['mapped folder'], 1):.1f}x less with the shards "
                  f"mapped than concatenated (before)")
            results["rss_mib"] = rss
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
