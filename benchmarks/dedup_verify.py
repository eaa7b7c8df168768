"""Dedup's pixel verification: the compiled aligned correlation vs the NumPy one it replaced.

Headline: CPU time per candidate pair of ``transform.dedup_match.aligned_scores`` (a pair's query
window aligned to the other's indexed window at 9 positions, then the correlation of the whole overlap,
on the equalised and the plain thumbnails: what dedup runs on every candidate) against the named
baseline, the NumPy implementation dedup used before (dense interpolation matrices and batched
products, blocks of 4,096 pairs; kept as the reference in ``tests/transform/test_aligned_ncc.py``), on
the same pairs in the same process; the scores must agree within 1e-4. Then the check as dedup runs it,
with its floor (``dedup.min_correlation``: the plain thumbnails' correlation is only computed where the
equalised one reaches it), against the same compiled check without the floor; the accept decisions must
be the same. One thread, CPU seconds.

Pairs: thumbnails of CIFAR-10 photos (``~/data/cifar10``, see ../shared/DATASETS.md) when present, else
scikit-learn's sample-photo tiles; each pair is an image and either an edited copy (shifted or cropped)
or another image, at every combination of query and indexed window.

    python benchmarks/dedup_verify.py                # 20,000 pairs
    python benchmarks/dedup_verify.py --pairs 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transform"))
    from dedup_search import thumbs_of
    from test_aligned_ncc import reference

    from sluice.params_data import DedupParams
    from transform.dedup_match import INDEX_WINDOWS, OVERLAID, WINDOWS, aligned_scores, thumbnails
    from transform.overlay_band import OVERLAY_GATE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20_000)
    ap.add_argument("--images", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    thumbs, what = thumbs_of(args.images, args.seed)
    # edited copies: the thumbnails shifted by 1-3 px (rolled) and a 20/24 crop; plain = the same thumbnails
    shifted = np.roll(thumbs, rng.integers(1, 4), axis=2)
    n = len(thumbs)
    every = np.concatenate([thumbs, shifted])
    plain = thumbnails(np.repeat(every[..., None], 3, axis=3), equalise=False)
    a = rng.integers(0, n, args.pairs)
    b = np.where(rng.random(args.pairs) < 0.5, a + n, rng.integers(0, n, args.pairs))
    window = rng.integers(0, len(WINDOWS), args.pairs)
    ref = rng.integers(0, len(INDEX_WINDOWS), args.pairs)
    aligned_scores(every, a[:10], b[:10], window[:10], ref[:10], plain=plain)  # compile or load the cached kernel

    def timed(fn):
        start = time.process_time()
        out = fn()
        return time.process_time() - start, out

    t_ours, (ours, _) = timed(lambda: aligned_scores(every, a, b, window, ref, plain=plain))
    t_base, parts = timed(lambda: [reference(every, a[s:s + 4096], b[s:s + 4096], window[s:s + 4096],
                                             ref[s:s + 4096], plain=plain) for s in range(0, len(a), 4096)])
    base = np.concatenate([p[0] for p in parts])
    diff = float(np.abs(ours - base).max()) if len(a) else 0.0
    print(f"pixel verification of {len(a):,} candidate pairs ({what}), equalised and plain thumbnails:")
    print(f"  compiled: {t_ours / len(a) * 1e6:6.1f} CPU us a pair   NumPy (baseline): {t_base / len(a) * 1e6:6.1f} "
          f"CPU us a pair")
    print(f"  speedup vs the NumPy verification: {t_base / t_ours:.1f}x   largest score difference: {diff:.1e}")
    floor = DedupParams().min_correlation
    t_floor, (floored, _) = timed(lambda: aligned_scores(every, a, b, window, ref, plain=plain, floor=floor,
                                                         overlays=False))
    same = bool(np.array_equal(floored >= floor, ours >= floor))
    print(f"  with dedup's floor (the plain check only where the equalised score reaches min_correlation {floor}; "
          f"{(ours >= floor).mean():.1%} of these pairs do): {t_floor / len(a) * 1e6:6.1f} CPU us a pair -> "
          f"{t_ours / t_floor:.2f}x vs the compiled check without it   same decisions: {'yes' if same else 'NO'}")
    t_band, (banded, geometry) = timed(lambda: aligned_scores(every, a, b, window, ref, plain=plain, floor=floor))
    lifted = (geometry & OVERLAID) > 0
    print(f"  as dedup runs it, with overlays (pairs short of the floor by at most {OVERLAY_GATE} also scored without "
          f"their worst band: {lifted.mean():.1%} of these pairs; {int((banded[lifted] >= floor).sum())} of them reach "
          f"the floor): {t_band / len(a) * 1e6:6.1f} CPU us a pair -> {t_band / t_floor:.2f}x the check without them")
    if diff > 1e-4 or not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
