"""Near-duplicate search over 100,000 perceptual hashes: multi-index hashing vs brute-force Hamming.

Headline: speed of ``transform.hamming.near_pairs`` against the named baseline, brute-force pairwise
Hamming distance (numpy XOR + popcount over every pair, in row blocks), and recall against it.

The baseline's cost is exactly linear in the rows it queries, so by default it is timed on
``--baseline-rows`` query rows against all codes and scaled up (``--full`` runs it on every row);
both sides are single-threaded and timed in CPU seconds of this process, so other load on a shared
machine does not skew the ratio;
recall is measured on the same query rows. Also measured: perceptual hashing of 32x32 images,
``transform.clean.phash_batch`` vs ``imagehash.phash`` on the same images.

The labelled benchmark (``benchmarks/dedup_pairs.py`` builds it from real photos: CIFAR-10 when
``~/data/cifar10`` is there, else scikit-learn's sample photographs) runs the whole near-duplicate
pass (thumbnails, both hash signals, search, verification) at 32 px and 128 px and prints precision
and recall per edit type at the params.yaml defaults, a precision/recall curve over
``dedup.min_correlation``, and the baseline ``imagehash.phash`` + brute-force Hamming at the
threshold that reaches the same precision, with images/s per core of both passes.

    python benchmarks/dedup.py            # 100,000 hashes, threshold 6; labelled set of 300 originals
    python benchmarks/dedup.py --quick    # 20,000 hashes; 100 originals
    python benchmarks/dedup.py --labelled-only  # the labelled set alone
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core: images/s per core
    os.environ.setdefault(_var, "1")

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
    from transform.hamming import brute_force_pairs, near_pairs, plan_chunks

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


def _ours(images: np.ndarray, cfg) -> tuple:
    """The pairs the stage accepts at the defaults ``cfg`` (and the CPU seconds that took, thumbnails
    included), and a function giving those it accepts at another ``min_correlation`` (the same thumbnails):
    each is a run of the stage's own matching, since where a pair's closest alignment falls short of the
    bar decides whether its further ones are checked."""
    from transform.clean import phash_batch
    from transform.dedup import near_edges
    from transform.dedup_match import thumbnails

    t0 = time.process_time()
    thumbs, plain = thumbnails(images), thumbnails(images, equalise=False)
    args = (thumbs, plain, phash_batch(images), np.array([hash(a.tobytes()) for a in images]), cfg.near_threshold)

    def accepted_at(min_correlation: float) -> tuple[np.ndarray, np.ndarray]:
        i, j, _, _, _ = near_edges(*args, min_correlation, cfg.moved_margin, mirrored=cfg.mirrored,
                                   min_detail_correlation=cfg.min_detail_correlation)
        return i, j
    i, j = accepted_at(cfg.min_correlation)
    return i, j, time.process_time() - t0, accepted_at


def _baseline(images: np.ndarray, max_bits: int):
    import imagehash
    from PIL import Image

    from transform.hamming import brute_force_pairs

    t0 = time.process_time()
    codes = np.array([int(str(imagehash.phash(Image.fromarray(a))), 16) for a in images], np.uint64).view(np.int64)
    i, j = brute_force_pairs(codes, max_bits)
    seconds = time.process_time() - t0
    dist = np.bitwise_count(codes.view(np.uint64)[i] ^ codes.view(np.uint64)[j])
    return i, j, dist, seconds


def _evaluate(data: dict, i: np.ndarray, j: np.ndarray, accepted: np.ndarray) -> dict:
    """Recall per edit type, precision per edit type (its positives vs the hard negatives) and overall
    precision (every accepted pair of the collection; a pair is true when both come from one original)."""
    fam = data["family"]
    found = set(zip(i[accepted].tolist(), j[accepted].tolist()))
    hit = lambda a, b: (min(a, b), max(a, b)) in found
    hn = [hit(a, b) for a, b, kind, _, _ in data["pairs"] if kind == "hard_negative"]
    wrong = fam[i[accepted]] != fam[j[accepted]]
    false_pairs = {(min(a, b), max(a, b)) for a, b in zip(fam[i[accepted]][wrong].tolist(), fam[j[accepted]][wrong].tolist())}
    out = {"overall_precision": float((~wrong).mean()) if accepted.any() else 1.0,
           "hard_negatives_matched": f"{sum(hn)}/{len(hn)}", "false_photo_pairs": len(false_pairs)}
    kinds = sorted({p[2] for p in data["pairs"]} - {"hard_negative"})
    for kind in kinds:
        got = [hit(a, b) for a, b, k, _, _ in data["pairs"] if k == kind]
        tp = sum(got)
        out[kind] = (tp / len(got), tp / max(tp + sum(hn) * len(got) / max(len(hn), 1), 1e-9))
    return out


def _line(name: str, ev: dict) -> str:
    per = "  ".join(f"{k} R {v[0]:.3f} P {v[1]:.3f}" for k, v in ev.items() if isinstance(v, tuple))
    return (f"  {name}: overall precision {ev['overall_precision']:.3f}, hard negatives matched "
            f"{ev['hard_negatives_matched']}, distinct photo pairs matched across originals "
            f"{ev['false_photo_pairs']} (some are CIFAR's own duplicates)\n    {per}")


def bench_labelled(originals: int, distractors: int, seed: int) -> None:
    from dedup_pairs import build

    from sluice.config import DedupParams

    cfg = DedupParams()
    for side in (32, 128):
        data = build(originals, distractors, side, seed)
        n = len(data["images"])
        i, j, t_ours, accepted_at = _ours(data["images"], cfg)
        ours = _evaluate(data, i, j, np.ones(len(i), bool))
        print(f"labelled near-duplicates at {side} px: {n:,} images ({originals} originals x edits, hard negatives, "
              f"{distractors:,} distractors)")
        print(_line(f"sluice dedup (near_threshold {cfg.near_threshold}, min_correlation {cfg.min_correlation}, "
                    f"moved_margin {cfg.moved_margin}, min_detail_correlation {cfg.min_detail_correlation})", ours))
        print("    precision/recall over min_correlation (recall: mean over edit types, min over edit types):")
        for t in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
            ti, tj = accepted_at(t)  # the stage run at that bar (pairs with a detail-free image: their own)
            ev = _evaluate(data, ti, tj, np.ones(len(ti), bool))
            rec = [v[0] for v in ev.values() if isinstance(v, tuple)]
            print(f"      {t:.2f}: precision {ev['overall_precision']:.3f}  recall mean {np.mean(rec):.3f} min {min(rec):.3f}"
                  f"  photo pairs across originals {ev['false_photo_pairs']}")
        bi, bj, dist, t_base = _baseline(data["images"], 20)
        pick = None
        for bits in range(21):
            ev = _evaluate(data, bi, bj, dist <= bits)
            if ev["overall_precision"] >= ours["overall_precision"] or pick is None:
                pick = (bits, ev)
        print(_line(f"imagehash.phash + brute force, Hamming <= {pick[0]} (largest with the same precision)", pick[1]))
        print(f"  full pass, one core: sluice {n / t_ours:,.0f} img/s vs imagehash+brute force {n / t_base:,.0f} img/s "
              f"=> {t_base / t_ours:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of hashes (default 100,000)")
    ap.add_argument("--threshold", type=int, default=6, help="Hamming threshold (default 6, as params.yaml)")
    ap.add_argument("--baseline-rows", type=int, default=10_000, help="query rows the brute force is timed on")
    ap.add_argument("--full", action="store_true", help="run the brute force on every row (minutes)")
    ap.add_argument("--quick", action="store_true", help="20,000 hashes, 2,000 images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labelled-only", action="store_true", help="only the labelled near-duplicate benchmark")
    args = ap.parse_args()
    n = 20_000 if args.quick else args.n
    if not args.labelled_only:
        bench_search(n, args.threshold, None if args.full else args.baseline_rows, args.seed)
        bench_hashing(2_000 if args.quick else 5_000, args.seed)
    bench_labelled(100 if args.quick else 300, 1_000 if args.quick else 5_000, args.seed)


if __name__ == "__main__":
    main()
