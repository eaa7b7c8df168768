"""Dedup's per-image input: the sketch clean stored in ``images`` vs computing it from the pixels.

Every dedup run (full or incremental) needs each image's 32x32 grey thumbnail, greyscale flag and mean
colour. The clean stage now stores them (``images.thumb``, ``greyscale``, ``mean_rgb``; 1 KB an image),
so dedup reads those columns; the named baseline is what dedup did before and still does for rows
cleaned before the columns existed: read every pixel and compute the sketch (the same function,
``transform.dedup._sketches``, on a copy of the lake with the sketch columns null). Both give identical
arrays (checked). Real photo content (tiles of scikit-learn's sample photographs), at 32 px (CIFAR-like)
and 224 px (photos); best of ``--repeat`` runs each, one process, same run.

    python benchmarks/dedup_sketch.py [--small 20000] [--large 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_pairs import sample_tiles  # noqa: E402

from sluice import thumbnails  # noqa: E402
from sluice.catalog import TABLES  # noqa: E402
from sluice.lake import Lake  # noqa: E402
from transform.clean import phash_batch  # noqa: E402
from transform.dedup import _sketches  # noqa: E402


def build(root: Path, count: int, side: int) -> tuple[Lake, np.ndarray]:
    """An ``images`` table of ``count`` photo tiles at ``side`` px, as the clean stage writes it."""
    lake = Lake(str(root))
    for start in range(0, count, 1000):
        px = np.stack(sample_tiles(min(1000, count - start), side, seed=start))
        px[:, 0, 0, 0] = np.arange(len(px)) % 256  # distinct pixels, hence distinct ids
        ids = [hashlib.sha256(p.tobytes() + str(start + k).encode()).hexdigest() for k, p in enumerate(px)]
        thumb, grey, mean_rgb = thumbnails.sketch(px)
        flat = px.reshape(len(px), -1).astype(np.float32)
        n = len(px)
        lake.append("images", pa.table({
            "image_id": ids, "width": pa.array([side] * n, pa.int32()), "height": pa.array([side] * n, pa.int32()),
            "mode": ["RGB"] * n, "format": ["JPEG"] * n, "pixels": pa.array([p.tobytes() for p in px], pa.binary()),
            "pixel_hash": [hashlib.sha256(p.tobytes()).hexdigest() for p in px],
            "phash": pa.array(phash_batch(px), pa.int64()), "mean": pa.array(flat.mean(axis=1), pa.float32()),
            "std": pa.array(flat.std(axis=1), pa.float32()), "dup_group": pa.nulls(n, pa.string()),
            "is_canonical": pa.nulls(n, pa.bool_()), "run_id": ["bench"] * n, "faces_blurred": pa.nulls(n, pa.int16()),
            "thumb": pa.array([t.tobytes() for t in thumb], pa.binary()), "greyscale": pa.array(grey, pa.bool_()),
            "mean_rgb": pa.array(mean_rgb.tolist(), TABLES["images"].schema.field("mean_rgb").type),
        }, schema=TABLES["images"].schema), run_id="bench")
    ids = np.sort(np.asarray(lake.read("images", ["image_id"]).column(0).to_pylist(), dtype=object))
    return lake, ids


def without_sketches(lake: Lake, root: Path) -> Lake:
    """A copy of ``lake`` as an older clean stage left it: the sketch columns null."""
    old = Lake(str(shutil.copytree(lake.root, root)))
    table = old.read("images")
    for name in ("thumb", "greyscale", "mean_rgb"):
        table = table.set_column(table.schema.get_field_index(name), name, pa.nulls(table.num_rows, table.schema.field(name).type))
    old.overwrite("images", table, run_id="bench")
    return old


def best(fn, repeat: int) -> tuple[float, tuple]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20_000, help="images at 32 px (default 20,000)")
    parser.add_argument("--large", type=int, default=2_000, help="images at 224 px (default 2,000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-sketch-") as tmp:
        for side, count in ((32, args.small), (224, args.large)):
            lake, ids = build(Path(tmp) / f"lake{side}", count, side)
            old = without_sketches(lake, Path(tmp) / f"old{side}")
            stored_s, stored = best(lambda: _sketches(lake, ids), args.repeat)
            pixels_s, computed = best(lambda: _sketches(old, ids), args.repeat)
            same = all(np.array_equal(a, b) for a, b in zip(stored, computed))
            print(f"{count:,} images at {side} px: stored sketch {stored_s:.2f} s vs from pixels {pixels_s:.2f} s "
                  f"= {pixels_s / stored_s:.1f}x; identical arrays: {same}", flush=True)
            if not same:
                raise SystemExit("the stored sketch differs from the one computed from the pixels")
    print(f"HEADLINE dedup input, stored sketch vs baseline computed from pixels: {pixels_s / stored_s:.1f}x at 224 px")


if __name__ == "__main__":
    main()
