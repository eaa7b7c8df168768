"""Dedup's per-image work, done for every image on every run (full or incremental): equalising the
stored thumbnails, their window codes, their spectra, and sorting the hash tables' chunk keys. Each
against the way it was done before, in the same run, with the same results asserted:

- equalise: one lookup table per thumbnail vs float64 mid-rank values for every pixel;
- window codes and spectra: 1,024 thumbnails a block vs 8,192 and 16,384 (temporaries that leave the
  CPU's cache);
- table keys: a chunk of <= 16 bits sorted as uint16 (NumPy's radix sort) vs as int32.

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

from sluice.thumbnails import GRID, equalise  # noqa: E402
from transform import dedup_match  # noqa: E402
from transform.dedup_match import spectrum, window_codes  # noqa: E402
from transform.hamming import _keys  # noqa: E402


def equalise_per_pixel(levels: np.ndarray) -> np.ndarray:
    """The baseline: the mid-rank of every pixel computed in float64, then rounded."""
    n = len(levels)
    flat = levels.reshape(n, -1).astype(np.int64)
    hist = np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256)
    cdf = np.cumsum(hist, axis=1) - hist / 2.0
    eq = np.take_along_axis(cdf, flat, axis=1) * (255.0 / flat.shape[1])
    return np.clip(np.rint(eq), 0, 255).astype(np.uint8).reshape(n, GRID, GRID)


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

    key = _keys(window_codes(thumbs[: min(len(thumbs), 60_000)], block=1024).ravel().view(np.uint64), 0, 16)
    assert np.array_equal(np.argsort(key.astype(np.uint16), kind="stable"), np.argsort(key, kind="stable"))
    ours = best_of(lambda: np.argsort(key.astype(np.uint16), kind="stable"), args.repeat)
    base = best_of(lambda: np.argsort(key, kind="stable"), args.repeat)
    print(ratio_line(f"sorting a hash table's {len(key):,} 16-bit chunk keys as uint16 (radix)", ours, "as int32", base))


if __name__ == "__main__":
    main()
