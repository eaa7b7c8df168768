"""Peak memory of ingest and clean on large photos: batches cut at ``batch_bytes`` vs batches of rows only.

A folder of ``--photos`` JPEGs of ~2.5 MB (2400x1800 photo-like scenes with sensor noise, so they neither
compress away nor look blank) goes through the real stages (``python -m ingest.public``, then
``python -m transform.clean``, each in its own process, a fresh lake per configuration): with the
default ``ingest.batch_bytes`` and ``clean.batch_bytes`` (64 MiB) and, as the baseline, with batches
bounded by rows alone (what both stages did before: the whole folder is one ingest batch of 2,000 rows,
and clean's tasks carry 256 images each). Prints each stage's peak RSS (``/usr/bin/time``'s maximum
resident set size: the largest process, Dask workers included) and the ratios, and the wall times
(noise on a shared host; the point is memory).

    python benchmarks/large_photos.py [--photos 200]
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
    noise = rng.integers(-24, 25, (1800, 2400, 3)).astype(np.int16)
    total = 0
    for k in range(n):
        scene = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((2400, 1800), Image.BILINEAR)
        photo = np.clip(np.asarray(scene, np.int16) + np.roll(noise, 7 * k, axis=1), 0, 255).astype(np.uint8)
        path = root / "train" / f"class{k % 2}" / f"img{k:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(path, quality=95)  # as phones save
        total += path.stat().st_size
    return total


def stages(work: Path, photos: Path, name: str, batch_bytes: int) -> dict[str, tuple[float, float]]:
    """{stage: (seconds, peak RSS in MiB)} of ingest then clean over ``photos`` into a fresh lake."""
    params = work / f"{name}.yaml"
    params.write_text(yaml.safe_dump({
        "lake": {"root": str(work / f"lake-{name}")},
        "paths": {"manifests": str(work / f"manifests-{name}")},
        "ingest": {"batch_rows": 2000, "batch_bytes": batch_bytes,
                   "sources": [{"name": "photos", "kind": "image_folder", "path": str(photos)}]},
        "clean": {"batch_bytes": batch_bytes}}))
    out = {}
    for stage, module in (("ingest", "ingest.public"), ("clean", "transform.clean")):
        done = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", module], cwd=work,
                              env={"SLUICE_PARAMS": str(params), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True)
        found = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
        if done.returncode or not found:
            raise SystemExit(f"{stage} failed ({name}):\n{done.stderr[-2000:]}")
        out[stage] = (float(found.group(1)), int(found.group(2)) / 1024)
        print(f"  {name}: " + next((line for line in done.stderr.splitlines() if " to images " in line or "new " in line), "")
              .strip())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from sluice.params_data import CleanParams, IngestParams

    default = IngestParams().batch_bytes
    assert CleanParams().batch_bytes == default
    with tempfile.TemporaryDirectory(prefix="sluice-large-photos-") as tmp:
        work = Path(tmp)
        size = make_photos(work / "photos", args.photos)
        print(f"{args.photos} JPEGs, {size / 1e6:.0f} MB")
        ours = stages(work, work / "photos", "batch-bytes", default)
        base = stages(work, work / "photos", "rows-only", 1 << 62)
        for stage in ours:
            (t, m), (bt, bm) = ours[stage], base[stage]
            print(f"{stage}: peak {m:,.0f} MiB with batch_bytes {default >> 20} MiB vs {bm:,.0f} MiB in batches of rows "
                  f"only: {bm / m:.2f}x less memory (time {t:.1f} vs {bt:.1f} s)")


if __name__ == "__main__":
    main()
