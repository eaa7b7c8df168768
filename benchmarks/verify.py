"""Snapshot verification before training: the cached fast path vs the full content hash.

Writes a synthetic snapshot (``--rows`` 32x32x3 images), then times ``sluice.snapshot.content_hash``
(reads every byte: what a full check costs) against ``verify_snapshot`` once a full check has recorded
every file's size, mtime and inode (a stat per file). The first call is also shown: the full hash
plus the record, against the plain full hash.

    python benchmarks/verify.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, ratio_line  # noqa: E402

from sluice.snapshot import SplitArrays, content_hash, verify_snapshot, write_snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-verify-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    try:
        rng = np.random.default_rng(0)
        n = args.rows
        split = SplitArrays(rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                            np.ones(n, np.float32), [f"{i:064x}" for i in range(n)])
        folder = work / "snap"
        write_snapshot(folder, {"train": split}, [str(c) for c in range(10)], shard_rows=8192)
        size = sum(p.stat().st_size for p in folder.iterdir())
        full = best_of(lambda: content_hash(folder), 3)
        cache = work / "cache"
        first = best_of(lambda: verify_snapshot(folder), 3, setup=lambda: shutil.rmtree(cache, ignore_errors=True))
        verify_snapshot(folder)
        fast = best_of(lambda: verify_snapshot(folder), 5)
        print(f"snapshot: {n} images, {size / 1e6:.0f} MB in {len(list(folder.iterdir()))} files")
        print(ratio_line("first verify_snapshot (full hash + record)", first, "content_hash", full))
        print(ratio_line("verify_snapshot, unchanged files (cached fast path)", fast, "content_hash", full))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
