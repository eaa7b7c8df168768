"""Dedup's pairs with a detail-free image: found by their plain correlation (a k-d tree over the
thumbnails' lowest DCT coefficients, ``transform.dedup_plain``) vs found by the window-hash search
and then checked on the same correlation (the way dedup found them before; named baseline).

The images are benchmarks/scale.py's smooth random scenes (48 px, most of them detail-free as dedup
measures it), a tenth of them near copies (faint noise, or a JPEG re-encode). Both ways judge a pair
by the same rule (plain correlation >= 0.998 with a detail-free image, exact copies aside), so the
tree must find every pair the hash search accepts (it also finds the pairs whose hashes were too far
apart); both are timed in this process, the same run. The baseline searched every image (the
window hashes also served the pairs of images with detail, which dedup now searches alone).

    python benchmarks/dedup_plain.py                   # 20,000 and 60,000 images
    python benchmarks/dedup_plain.py --sizes 100000
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import ratio_line  # noqa: E402
from scale import _scene  # noqa: E402

from transform.dedup import MIN_DETAIL, TINY_MIN_CORRELATION  # noqa: E402
from transform.dedup_match import plain_correlation, spectrum, thumbnails  # noqa: E402
from transform.dedup_plain import DIMS, plain_pairs  # noqa: E402
from transform.dedup_search import candidates  # noqa: E402

SIDE = 48


def scenes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, SIDE, SIDE, 3), np.uint8)
    for k in range(n):
        if k % 10 == 9:  # a near copy of an earlier image
            original = out[int(rng.integers(0, k))]
            if k % 20 == 9:
                buf = io.BytesIO()
                Image.fromarray(original).save(buf, "JPEG", quality=int(rng.integers(70, 95)))
                out[k] = np.asarray(Image.open(buf).convert("RGB"))
            else:
                out[k] = np.clip(original + rng.normal(0, 1.5, original.shape), 0, 255).astype(np.uint8)
            continue
        out[k] = np.asarray(_scene(rng, SIDE, SIDE))
    return out


def by_tree(plain: np.ndarray) -> tuple[set, dict]:
    stats: dict = {}
    share, low = spectrum(plain, DIMS)
    i, j, _ = plain_pairs(plain, share, low, np.arange(len(plain)), MIN_DETAIL, TINY_MIN_CORRELATION, 256,
                          stats=stats)
    return set(zip(i.tolist(), j.tolist())), stats


def by_window_hashes(thumbs: np.ndarray, plain: np.ndarray) -> tuple[set, dict]:
    stats: dict = {}
    smooth = spectrum(plain)[0] < MIN_DETAIL
    a, b, _, _ = candidates(thumbs, 10, 256, stats=stats)
    a, b = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    a, b = np.unique(np.stack([a, b]), axis=1)  # a pair comes at several alignments; its plain check is one
    mine = smooth[a] | smooth[b]
    a, b = a[mine], b[mine]
    ok = plain_correlation(plain, a, b) >= TINY_MIN_CORRELATION
    stats["plain_candidates"] = len(a)
    return set(zip(a[ok].tolist(), b[ok].tolist())), stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 60_000])
    args = ap.parse_args()
    for n in args.sizes:
        px = scenes(n)
        thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
        smooth = int((spectrum(plain)[0] < MIN_DETAIL).sum())
        t0 = time.perf_counter()
        ours, ours_stats = by_tree(plain)
        t1 = time.perf_counter()
        theirs, their_stats = by_window_hashes(thumbs, plain)
        t2 = time.perf_counter()
        missed = theirs - ours
        print(f"{n:,} images ({smooth:,} detail-free): tree {len(ours):,} pairs from "
              f"{ours_stats['plain_candidates']:,} candidates; window hashes {len(theirs):,} pairs from "
              f"{their_stats['plain_candidates']:,} candidates; pairs only the hashes found: {len(missed)}; "
              f"only the tree: {len(ours - theirs)}")
        print(ratio_line(f"detail-free pairs at {n:,} images", t1 - t0, "window-hash search + plain check",
                         t2 - t1))
        if missed:
            raise SystemExit(f"the tree missed {len(missed)} pairs the window hashes found")


if __name__ == "__main__":
    main()
