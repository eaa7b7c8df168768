"""Dedup's per-image work, done for every image on every run (full or incremental): equalising the
stored thumbnails, their window codes, their spectra, and sorting the hash tables' chunk keys. Each
against the way it was done before, in the same run, with the same results asserted:

- equalise: one compiled pass a thumbnail (histogram, capped counts, table, map) vs the same in NumPy lookup
  tables (a bincount over an int32 copy, (n, 256) tables, a gather) and vs float64 mid-rank values for every pixel;
- window codes and spectra: 1,024 thumbnails a block vs 8,192 and 16,384 (temporaries that leave the
  CPU's cache);
- a hash table (:class:`transform.hamming.HammingIndex`) built by a compiled bit permutation and
  counting sort vs NumPy (8 passes of byte lookups, then per chunk a stable argsort, a gather and a
  bincount), over every image's 75 query-window codes, as an incremental run builds it.

The thumbnails are smooth random scenes with detail (``--images``, default 60,000 as CIFAR-10). Best of
``--repeat`` runs each (the first run of a fresh process also pays for its memory, which favours the
smaller temporaries further; the dedup stage itself pays it once, see docs/scale.md).

    python benchmarks/dedup_kernels.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line  # noqa: E402

from sluice.thumbnails import GRID, LEVEL_CAP, equalise  # noqa: E402
from transform import dedup_match  # noqa: E402
from transform.dedup_match import spectrum, window_codes  # noqa: E402
from transform.hamming import HammingIndex, _keys, _layout, probed_chunks  # noqa: E402


def _capped_weights(hist: np.ndarray) -> np.ndarray:
    """(n, 256) level counts -> what each level counts for under LEVEL_CAP (sluice/_equalise.py's rule, in NumPy
    over all thumbnails at once, the same operations in the same order: the same bytes)."""
    size, cap = float(GRID * GRID), LEVEL_CAP
    occupied = hist > 0
    used = occupied.sum(axis=1)
    a = np.zeros(len(hist))
    total = np.minimum(hist, cap).sum(axis=1)
    solved = total == size
    for step in range(cap):
        under = (occupied & (hist + step < cap)).sum(axis=1)
        now = ~solved & (total + under >= size) & (under > 0)
        a[now] = step + (size - total[now]) / under[now]
        solved |= now
        total = total + under
    weight = np.where(occupied, np.minimum(hist + a[:, None], float(cap)), 0.0)
    even = cap * used <= size
    weight[even] = np.where(occupied[even], size / used[even, None], 0.0)
    return np.where((np.minimum(hist, cap).sum(axis=1) == size)[:, None], hist.astype(np.float64), weight)


def equalise_tables(levels: np.ndarray) -> np.ndarray:
    """The NumPy lookup tables (a bincount over an int32 copy, (n, 256) tables, a gather): the same bytes."""
    n, size = len(levels), levels[0].size
    at = levels.reshape(n, -1).astype(np.int32) + (256 * np.arange(n, dtype=np.int32))[:, None]
    weight = _capped_weights(np.bincount(at.ravel(), minlength=256 * n).reshape(n, 256))
    below = np.concatenate([np.zeros((n, 1)), np.cumsum(weight, axis=1)[:, :-1]], axis=1)
    table = np.clip(np.rint((below + weight / 2.0) * (255.0 / size)), 0, 255).astype(np.uint8)
    return table.ravel()[at].reshape(n, GRID, GRID)


def equalise_per_pixel(levels: np.ndarray) -> np.ndarray:
    """The baseline: every pixel's mid-rank under the capped counts computed in float64, then rounded."""
    n = len(levels)
    flat = levels.reshape(n, -1).astype(np.int64)
    weight = _capped_weights(np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256))
    cdf = np.concatenate([np.zeros((n, 1)), np.cumsum(weight, axis=1)[:, :-1]], axis=1) + weight / 2.0
    eq = np.take_along_axis(cdf, flat, axis=1) * (255.0 / flat.shape[1])
    return np.clip(np.rint(eq), 0, 255).astype(np.uint8).reshape(n, GRID, GRID)


def numpy_tables(codes: np.ndarray, m: int, threshold: int) -> list[tuple[np.ndarray, ...]]:
    """The baseline: the tables' (order, codes, count, start) as NumPy built them."""
    perm, bounds = _layout(m)
    where = np.empty(64, np.int64)
    where[perm] = np.arange(64)
    values = np.arange(256, dtype=np.uint64)
    permuted = np.zeros(len(codes), np.uint64)
    for byte in range(8):
        table = np.zeros(256, np.uint64)
        for bit in range(8):
            table |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(63 - where[63 - (8 * byte + bit)])
        permuted |= table[((codes >> np.uint64(8 * byte)) & np.uint64(255)).astype(np.intp)]
    out = []
    for lo, hi in (bounds[c] for c in probed_chunks(m, threshold)):
        key = _keys(permuted, lo, hi)
        order = np.argsort(key, kind="stable").astype(np.int32)
        count = np.bincount(key, minlength=1 << (hi - lo)).astype(np.int64)
        out.append((order, codes[order], count, np.cumsum(count) - count))
    return out


def scenes(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random grey scenes with some detail: 8x8 noise upscaled plus finer noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8)).astype(np.float32).repeat(4, axis=1).repeat(4, axis=2)
    return np.clip(coarse * 0.8 + rng.normal(0, 20, (n, GRID, GRID)), 0, 255).astype(np.uint8)


def in_blocks(fn, data: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([fn(data[s:s + block]) for s in range(0, len(data), block)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    plain = scenes(args.images)
    thumbs = equalise(plain)
    print(f"{args.images:,} thumbnails of {GRID}x{GRID}")

    assert np.array_equal(in_blocks(equalise, plain, 8192), in_blocks(equalise_per_pixel, plain, 8192))
    ours = best_of(lambda: in_blocks(equalise, plain, 8192), args.repeat)
    base = best_of(lambda: in_blocks(equalise_per_pixel, plain, 8192), args.repeat)
    print(ratio_line("equalise (8,192 a batch, as dedup reads them)", ours, "float64 mid-rank per pixel", base))
    assert np.array_equal(in_blocks(equalise, plain, 8192), in_blocks(equalise_tables, plain, 8192))
    tables = best_of(lambda: in_blocks(equalise_tables, plain, 8192), args.repeat)
    print(ratio_line("equalise, compiled", ours, "NumPy lookup tables per thumbnail", tables))

    assert np.array_equal(window_codes(thumbs, block=1024), window_codes(thumbs, block=8192))
    ours = best_of(lambda: window_codes(thumbs, block=1024), args.repeat)
    base = best_of(lambda: window_codes(thumbs, block=8192), args.repeat)
    print(ratio_line("window codes, 75 query windows (blocks of 1,024)", ours, "blocks of 8,192", base))

    def spectra(block: int):
        dedup_match.DETAIL_BLOCK = block
        return spectrum(plain, 8)

    small, large = spectra(1024), spectra(16_384)
    assert all(np.array_equal(a, b) for a, b in zip(small, large))
    ours = best_of(lambda: spectra(1024), args.repeat)
    base = best_of(lambda: spectra(16_384), args.repeat)
    print(ratio_line("spectra (blocks of 1,024)", ours, "blocks of 16,384", base))

    codes = window_codes(thumbs, block=1024).ravel().view(np.uint64)
    index = HammingIndex(codes, 10)  # also compiles (or loads) the kernels
    want = numpy_tables(codes, index.m, 10)
    assert all(np.array_equal(t[name], w) for t, ws in zip(index.tables, want)
               for name, w in zip(("order", "codes", "count", "start"), ws))
    ours = best_of(lambda: HammingIndex(codes, 10, plan=(index.m, index.r)), args.repeat)
    base = best_of(lambda: numpy_tables(codes, index.m, 10), args.repeat)
    print(ratio_line(f"hash tables over {len(codes):,} query-window codes ({index.m} chunks), compiled counting sort",
                     ours, "NumPy argsort + gather + bincount", base))

if __name__ == "__main__":
    main()
