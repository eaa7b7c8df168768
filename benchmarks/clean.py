"""Clean-stage throughput: images/s per worker vs a plain single-process PIL loop, and 1 vs 2 workers.

Builds a temporary lake whose ``raw_images`` hold ``--images`` encoded images (PNG and JPEG, 24..64
pixels, a few percent defective), then measures:

- baseline: a plain Python loop over the same bytes, doing the same per-image work with PIL (open,
  load, EXIF transpose, RGB, resize to 32x32, sha256 of the pixels, ``imagehash.phash``, mean/std),
  reading nothing from and writing nothing to Delta;
- the clean stage end to end (read Delta, Dask tasks, write silver + quarantine) on a LocalCluster
  with 1 worker and with 2 workers (cluster start-up excluded).

Per-worker throughput is images per CPU-second of the worker processes against images per CPU-second of
the baseline loop, so other load on a shared machine does not skew it; the 1 vs 2 worker figure is wall
clock and only meaningful with two idle cores (the load average is printed next to it).

A second row does the same for photos: ``--photos`` 1024x768 JPEGs normalized to a 160 px center crop
(``clean.size: 160``, ``clean.resize: center_crop``), against a plain PIL loop doing the same work
(full decode, EXIF transpose, RGB, ``ImageOps.fit`` to 160x160 bicubic, hashes, stats). Both are CPU
time in one process (the stage's per-image work, ``clean_batch``), plus the stage end to end on 1 worker.

    python benchmarks/clean.py             # 6,000 images, 300 photos
    python benchmarks/clean.py --quick     # 1,500 images, 100 photos
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import tempfile
import time
from datetime import datetime, timezone

import numpy as np


def make_images(count: int, seed: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        side = int(rng.integers(24, 65))
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, format="JPEG" if k % 3 == 0 else "PNG", **({"quality": 90} if k % 3 == 0 else {}))
        data = buf.getvalue()
        if k % 40 == 0:
            data = data[: len(data) // 2]  # truncated
        out.append(data)
    return out


def plain_loop(contents: list[bytes]) -> int:
    """The baseline: what one would write without the pipeline."""
    import imagehash
    from PIL import Image, ImageOps

    ok = 0
    for data in contents:
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
            im = ImageOps.exif_transpose(im).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
        except Exception:
            continue
        px = np.asarray(im, np.uint8)
        hashlib.sha256(px.tobytes()).hexdigest()
        imagehash.phash(im)
        px.mean(), px.std()
        ok += 1
    return ok


def make_photos(count: int, seed: int) -> list[bytes]:
    """1024x768 JPEGs with photo-like structure (smooth shapes plus sensor noise), quality 90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((1024, 768), Image.Resampling.BICUBIC), np.int16)
        noisy = np.clip(smooth + rng.integers(-6, 7, smooth.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def plain_photo_loop(contents: list[bytes], side: int = 160) -> int:
    """The photo baseline: full decode, then the same steps as the clean stage, written plainly."""
    import imagehash
    from PIL import Image, ImageOps

    for data in contents:
        im = Image.open(io.BytesIO(data))
        im.load()
        im = ImageOps.fit(ImageOps.exif_transpose(im).convert("RGB"), (side, side), Image.Resampling.BICUBIC)
        px = np.asarray(im, np.uint8)
        hashlib.sha256(px.tobytes()).hexdigest()
        imagehash.phash(im)
        px.mean(), px.std()
    return len(contents)


def photo_rows(count: int, seed: int) -> list[str]:
    """The photo rows: per-image work in one process vs the plain loop, and the stage on 1 worker."""
    from sluice.config import CleanParams
    from transform.clean import clean_batch

    photos = make_photos(count, seed)
    t0 = time.process_time()
    plain_photo_loop(photos)
    base_cpu = time.process_time() - t0
    cfg = CleanParams(size=160, resize="center_crop")
    t0 = time.process_time()
    table, rejects = clean_batch([str(k) for k in range(count)], photos, cfg)
    batch_cpu = time.process_time() - t0
    assert table.num_rows == count and not rejects, rejects[:3]
    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/lake"
        land(root, photos)
        wall1, cpu1 = stage_run(root, 1, {"size": 160, "resize": "center_crop"})
    return [f"photos, {count:,} JPEGs 1024x768 -> 160x160 center crop:",
            f"  baseline, plain PIL loop (full decode + ImageOps.fit): {count / base_cpu:7,.0f} img per CPU-s",
            f"  clean_batch, one process:                             {count / batch_cpu:7,.0f} img per CPU-s => "
            f"{base_cpu / batch_cpu:.2f}x the baseline",
            f"  clean stage, 1 worker:                                {count / cpu1:7,.0f} img per worker CPU-s => "
            f"{base_cpu / cpu1:.2f}x the baseline  ({count / wall1:,.1f} img/s wall, Delta I/O included)"]


def land(root: str, contents: list[bytes]) -> None:
    import pyarrow as pa

    from sluice.lake import Lake

    now = datetime.now(timezone.utc)
    n = len(contents)
    Lake(root).append("raw_images", pa.table({
        "image_id": [hashlib.sha256(c).hexdigest() for c in contents], "content": pa.array(contents, pa.binary()),
        "source": ["bench"] * n, "source_uri": [f"bench/{k}" for k in range(n)],
        "fetched_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")), "run_id": ["bench"] * n}))


def stage_run(root: str, workers: int, clean: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds summed over the workers) of one clean-stage run on a fresh LocalCluster."""
    from distributed import Client, LocalCluster

    from sluice.config import parse_params
    from transform.clean import run

    params = parse_params({"lake": {"root": root}, "clean": clean or {}})
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(int, 0).result()  # workers up before the clock starts, the stage's modules imported
        client.run(importlib.import_module, "transform.clean")
        cpu = lambda: sum(client.run(time.process_time).values())
        cpu0, t0 = cpu(), time.perf_counter()
        run(params, client)
        return time.perf_counter() - t0, cpu() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--photos", type=int, default=300, help="1024x768 JPEGs for the photo row (0: skip it)")
    ap.add_argument("--quick", action="store_true", help="1,500 images, 100 photos")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    count = 1500 if args.quick else args.images
    photos = min(args.photos, 100) if args.quick else args.photos
    contents = make_images(count, args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    plain_loop(contents)
    base_wall, base_cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/lake"
        land(root, contents)
        wall1, cpu1 = stage_run(root, 1)
        wall2, cpu2 = stage_run(root, 2)
    load = os.getloadavg()[0]
    print(f"clean stage, {count:,} images (PNG/JPEG 24..64 px, 2.5% truncated); {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"  baseline, plain single-process PIL loop: {count / base_cpu:8,.0f} img per CPU-s  ({count / base_wall:,.0f} img/s wall)")
    print(f"  clean stage, 1 worker:                   {count / cpu1:8,.0f} img per worker CPU-s => "
          f"{base_cpu / cpu1:.2f}x the baseline per worker  ({count / wall1:,.0f} img/s wall, Delta I/O included)")
    print(f"  clean stage, 2 workers:                  {count / cpu2:8,.0f} img per worker CPU-s; "
          f"{count / wall2:,.0f} img/s wall => {wall1 / wall2:.2f}x 1 worker ({wall1 / wall2 / 2:.0%} scaling efficiency)")
    if photos:
        print("\n".join(photo_rows(photos, args.seed)))


if __name__ == "__main__":
    main()
