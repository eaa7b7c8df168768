"""Dedup's window-hash candidate search on real photos, against two baselines measured in the same run.

Headline: CPU time of ``transform.dedup_search.candidates`` (75 query windows and 4 indexed windows an
image, Hamming <= ``dedup.near_threshold``) against two named baselines, on the same thumbnails in the
same process, all three required to give the same candidates:

- **classic multi-index hashing**: every hash chunk probed at radius ``t // m`` (the search before the
  per-chunk radii of :func:`transform.hamming.radii`) and the indexed windows of 1,024 images probing
  the tables at a time (before: 8,192);
- **NumPy bucket scan**: the search with its bucket scan in NumPy (every scanned entry expanded into
  gathered temporaries, as dedup did before the compiled scan).

One thread each, CPU seconds, so other load on a shared machine skews the ratios little.

Images: CIFAR-10 (``~/data/cifar10/{train,test}/<class>/*.jpg``, see ../shared/DATASETS.md) when it is
there, else scikit-learn's sample-photo tiles (far fewer distinct scenes: a harder, more clustered case).

    python benchmarks/dedup_search.py                 # 20,000 images
    python benchmarks/dedup_search.py --images 60000  # all of CIFAR-10 (the NumPy baseline takes ~8 min)
    python benchmarks/dedup_search.py --no-numpy      # the classic-MIH baseline only
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np


def numpy_scan(rows, first, count, bucket_codes, order, queries, threshold, upper_offset=None):
    """The baseline: every probed entry expanded with NumPy (repeat, gather, XOR, popcount, compress)."""
    f, c = first.ravel(), count.ravel()
    total = int(c.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    qi = np.repeat(np.repeat(rows, first.shape[1]), c)
    pos = np.repeat(f, c) + np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
    qj = order[pos]
    if upper_offset is not None:
        keep = qi + upper_offset < qj
        qi, qj, pos = qi[keep], qj[keep], pos[keep]
    close = np.bitwise_count(queries[qi] ^ bucket_codes[pos]) <= threshold
    return qi[close], qj[close]


def thumbs_of(count: int, seed: int) -> tuple[np.ndarray, str]:
    from dedup_pairs import CIFAR, sample_tiles
    from transform.dedup_match import thumbnails

    files = sorted(CIFAR.glob("*/*/*.jpg")) if CIFAR.is_dir() else []
    if files:
        from PIL import Image

        pick = np.random.default_rng(seed).choice(len(files), min(count, len(files)), replace=False)
        px = np.stack([np.asarray(Image.open(files[k]).convert("RGB").resize((32, 32))) for k in sorted(pick)])
        return thumbnails(px), f"CIFAR-10 ({len(pick):,} of {len(files):,} images)"
    return thumbnails(np.stack(sample_tiles(count, 32, seed))), f"scikit-learn sample-photo tiles ({count:,})"


def timed(fn) -> tuple[float, tuple]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> None:
    import transform.hamming as hamming
    from sluice.params_data import DedupParams
    from transform.dedup_search import candidates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy-scan baseline")
    args = ap.parse_args()
    threshold = DedupParams().near_threshold
    thumbs, what = thumbs_of(args.images, args.seed)
    candidates(thumbs[:50], threshold)  # compile (or load the cached kernel) outside the timing
    compiled, tight = hamming.scan, hamming.radii
    stats: dict = {}
    t_ours, ours = timed(lambda: candidates(thumbs, threshold, stats=stats))
    hamming.radii = lambda m, t: [t // m] * m
    try:
        t_classic, classic = timed(lambda: candidates(thumbs, threshold, block=1024))
    finally:
        hamming.radii = tight
    results = [("classic multi-index hashing (every chunk at radius t // m, blocks of 1,024 images)", t_classic, classic)]
    if not args.no_numpy:
        hamming.scan = numpy_scan
        try:
            results.append(("NumPy bucket scan", *timed(lambda: candidates(thumbs, threshold))))
        finally:
            hamming.scan = compiled
    print(f"window-hash candidate search, {what}, Hamming <= {threshold}: {len(ours[0]):,} candidates (a pair and side at up to 4 alignments) "
          f"({stats['search_chunks']} chunks, radii {hamming.radii(stats['search_chunks'], threshold)})")
    print(f"  this search: {t_ours:8.1f} CPU s")
    same_all = True
    for name, t_base, base in results:
        same = all(np.array_equal(a, b) for a, b in zip(ours, base))
        same_all &= same
        print(f"  baseline {name}: {t_base:8.1f} CPU s -> {t_base / t_ours:.2f}x   same candidates: {'yes' if same else 'NO'}")
    if not same_all:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
