"""Near-duplicate search over 100,000 perceptual hashes: multi-index hashing vs brute-force Hamming.

Headline: speed of ``transform.dedup.near_pairs`` against the named baseline, brute-force pairwise
Hamming distance (numpy XOR + popcount over every pair, in row blocks), and recall against it.

The baseline's cost is exactly linear in the rows it queries, so by default it is timed on
``--baseline-rows`` query rows against all codes and scaled up (``--full`` runs it on every row);
both sides are single-threaded and timed in CPU seconds of this process, so other load on a shared
machine does not skew the ratio;
recall is measured on the same query rows. Also measured: perceptual hashing of 32x32 images,
``transform.clean.phash_batch`` vs ``imagehash.phash`` on the same images.

    python benchmarks/dedup.py            # 100,000 hashes, threshold 6
    python benchmarks/dedup.py --quick    # 20,000 hashes
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def planted(n: int, copies: int, threshold: int, seed: int) -> np.ndarray:
    """Uniform 64-bit codes with ``copies`` near-copies at 1..threshold+2 flipped bits (some beyond reach)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, n, dtype=np.uint64)
    src = rng.choice(n - copies, copies, replace=False)
    for k, s in enumerate(src):
        flips = rng.choice(64, rng.integers(1, threshold + 3), replace=False)
        codes[n - copies + k] = codes[s] ^ np.uint64(sum(1 << int(b) for b in flips))
    return rng.permutation(codes).view(np.int64)


def bench_search(n: int, threshold: int, baseline_rows: int | None, seed: int) -> None:
    from transform.dedup import brute_force_pairs, near_pairs, plan_chunks

    codes = planted(n, n // 50, threshold, seed)
    m, r = plan_chunks(n, threshold)
    t0 = time.process_time()
    i, j, _ = near_pairs(codes, threshold)
    t_index = time.process_time() - t0

    rows = n if baseline_rows is None else min(baseline_rows, n)
    # brute force for the first `rows` query rows against every code (each pair once: j > i)
    t0 = time.process_time()
    bi, bj = brute_force_pairs(codes, threshold, query_rows=rows)
    t_brute_part = time.process_time() - t0
    # the full baseline's work: sum over rows of (n - row - 1) pairs; the part did sum over the first `rows`
    pairs_total = n * (n - 1) / 2
    pairs_part = rows * n - rows * (rows + 1) / 2
    t_brute = t_brute_part * pairs_total / pairs_part
    truth = set(zip(bi.tolist(), bj.tolist()))
    found = set((a, b) for a, b in zip(i.tolist(), j.tolist()) if a < rows)
    recall = len(truth & found) / max(len(truth), 1)
    sanity = brute_force_pairs(codes[:2000], threshold)[0].size == near_pairs(codes[:2000], threshold)[0].size
    print(f"near-duplicate search, {n:,} hashes, Hamming <= {threshold} (multi-index: {m} chunks, probe radius {r})")
    print(f"  multi-index hashing: {t_index:8.2f} CPU s, {len(i):,} pairs")
    how = "measured" if rows == n else f"timed on {rows:,} query rows, scaled to all {pairs_total:,.0f} pairs"
    print(f"  brute-force Hamming: {t_brute:8.2f} CPU s ({how})")
    print(f"  speedup vs brute force: {t_brute / t_index:.1f}x   recall vs brute force: {recall:.4f} "
          f"({len(truth):,} pairs in the checked rows)   [exactness self-check: {'ok' if sanity else 'MISMATCH'}]")


def bench_hashing(count: int, seed: int) -> None:
    import imagehash
    from PIL import Image

    from transform.clean import phash_batch

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    images = np.stack([np.asarray(Image.fromarray(c).resize((32, 32), Image.Resampling.BILINEAR)) for c in coarse])
    t0 = time.process_time()
    ours = phash_batch(images)
    t_ours = time.process_time() - t0
    t0 = time.process_time()
    theirs = np.array([int(str(imagehash.phash(Image.fromarray(a))), 16) for a in images], np.uint64)
    t_theirs = time.process_time() - t0
    same = float((np.bitwise_count(ours.view(np.uint64) ^ theirs) <= 2).mean())
    print(f"perceptual hashing, {count:,} 32x32 images: phash_batch {count / t_ours:,.0f} img/s vs imagehash.phash "
          f"{count / t_theirs:,.0f} img/s => {t_theirs / t_ours:.1f}x (agree within 2 bits: {same:.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of hashes (default 100,000)")
    ap.add_argument("--threshold", type=int, default=6, help="Hamming threshold (default 6, as params.yaml)")
    ap.add_argument("--baseline-rows", type=int, default=10_000, help="query rows the brute force is timed on")
    ap.add_argument("--full", action="store_true", help="run the brute force on every row (minutes)")
    ap.add_argument("--quick", action="store_true", help="20,000 hashes, 2,000 images")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = 20_000 if args.quick else args.n
    bench_search(n, args.threshold, None if args.full else args.baseline_rows, args.seed)
    bench_hashing(2_000 if args.quick else 5_000, args.seed)


if __name__ == "__main__":
    main()
