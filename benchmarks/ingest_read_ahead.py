"""Image-folder ingest with files read ahead on threads vs one file at a time, from a cold page cache.

The same folder lands in a new lake each run through ``ingest.public`` (read, hash, merge-insert,
quarantine), once with the source's ``read_threads: 1`` (the baseline: one read at a time, the disk
idle while the process hashes and commits) and once with the default (4), alternated ``--repeat``
times; the median of each. Before every run the page cache is dropped (``/proc/sys/vm/drop_caches``,
as root), so the files come from the disk as a folder larger than memory, or on a share, would; where
that is not allowed the runs are warm and the script says so (then both read from memory and the
ratio is about 1).

The folder: ``--files`` incompressible files of photo sizes (log-normal, median ``--median-kb``),
named .jpg (ingest lands bytes; decoding is the clean stage's), or ``--folder`` of your own.

    python benchmarks/ingest_read_ahead.py                 # 3,000 files, median 300 KB
    python benchmarks/ingest_read_ahead.py --folder ~/photos --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int, median_kb: int) -> int:
    rng = np.random.default_rng(0)
    total = 0
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        size = int(min(20e6, rng.lognormal(np.log(median_kb * 1024), 0.8)))
        (d / f"{i:06d}.jpg").write_bytes(rng.bytes(size))
        total += size
    return total


def drop_cache() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def ingest_once(folder: Path, work: Path, threads: int | None) -> float:
    shutil.rmtree(work / "lake", ignore_errors=True)
    source = {"name": "photos", "kind": "image_folder", "path": str(folder)}
    if threads is not None:
        source["read_threads"] = threads
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({"lake": {"root": str(work / "lake")}, "ingest": {"sources": [source]}}))
    env = {**os.environ, "SLUICE_PARAMS": str(params), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ingest.public"], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--median-kb", type=int, default=300)
    ap.add_argument("--folder", type=Path, help="an image folder of your own instead of the generated one")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-read-ahead-"))
    try:
        folder = args.folder
        if folder is None:
            folder = work / "photos"
            total = make_folder(folder, args.files, args.median_kb)
            print(f"folder: {args.files:,} files, {total / 1e9:.2f} GB (median {args.median_kb} KB)")
        cold = drop_cache()
        print("page cache dropped before every run" if cold else
              "could not drop the page cache (not root): warm runs, where both sides read from memory")
        runs: dict[str, list[float]] = {"one": [], "ahead": []}
        for _ in range(args.repeat):
            for name, threads in (("one", 1), ("ahead", None)):
                drop_cache()
                runs[name].append(ingest_once(folder, work, threads))
        one, ahead = statistics.median(runs["one"]), statistics.median(runs["ahead"])
        print(f"runs (s): read_threads 1 {[round(t, 2) for t in runs['one']]}, "
              f"default {[round(t, 2) for t in runs['ahead']]}")
        print(ratio_line("ingest, files read ahead on 4 threads", ahead, "one file at a time (read_threads: 1)", one))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
