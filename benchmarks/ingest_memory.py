"""Ingest's peak memory on large photos: batches cut at ``ingest.batch_bytes`` vs batches of rows only.

A folder of ``--photos`` JPEGs of ~3 MB (2400x1800, noisy, so they do not compress away) is ingested
twice by the real stage (``python -m ingest.public``, each in its own process, a fresh lake each time):
with the default ``ingest.batch_bytes`` (64 MiB) and, as the baseline, with batches bounded by
``ingest.batch_rows`` alone (what ingest did before: the whole folder fits in one batch of 2,000 rows).
Prints the peak RSS of each (``/usr/bin/time``'s maximum resident set size) and their ratio, and the
wall times (noise on a shared host; the point is memory).

    python benchmarks/ingest_memory.py [--photos 200]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_photos(root: Path, n: int) -> int:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1800, 2400, 3), dtype=np.uint8)
    total = 0
    for k in range(n):
        photo = np.roll(base, 7 * k, axis=1)
        photo[:40, :40] = k % 256
        path = root / "train" / f"class{k % 2}" / f"img{k:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(path, quality=85)
        total += path.stat().st_size
    return total


def ingest(work: Path, photos: Path, name: str, batch_bytes: int) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of the ingest stage over ``photos`` into a fresh lake."""
    params = work / f"{name}.yaml"
    params.write_text(yaml.safe_dump({
        "lake": {"root": str(work / f"lake-{name}")},
        "ingest": {"batch_rows": 2000, "batch_bytes": batch_bytes,
                   "sources": [{"name": "photos", "kind": "image_folder", "path": str(photos)}]}}))
    done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "ingest.public"], cwd=REPO,
                          env={"SLUICE_PARAMS": str(params), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    found = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"ingest failed ({name}):\n{done.stderr[-2000:]}")
    return float(found.group(1)), int(found.group(2)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from sluice.params_data import IngestParams

    default = IngestParams().batch_bytes
    with tempfile.TemporaryDirectory(prefix="sluice-ingest-memory-") as tmp:
        work = Path(tmp)
        size = make_photos(work / "photos", args.photos)
        print(f"{args.photos} JPEGs, {size / 1e6:.0f} MB")
        ours = ingest(work, work / "photos", "batch-bytes", default)
        base = ingest(work, work / "photos", "rows-only", 1 << 62)
        print(f"batch_bytes {default >> 20} MiB: {ours[0]:.1f} s, peak {ours[1]:,.0f} MiB")
        print(f"baseline, batches of 2,000 rows only: {base[0]:.1f} s, peak {base[1]:,.0f} MiB")
        print(f"peak memory: {base[1] / ours[1]:.2f}x less than the baseline (time {base[0] / ours[0]:.2f}x)")


if __name__ == "__main__":
    main()
