"""Multi-index hashing's building blocks: the bit permutation behind the interleaved hash chunks (the
byte-table version moves every bit where the definition says: new bit p, MSB first, is old bit
perm[p]), and the per-chunk probe radii (exact for every split of the code and every threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from transform.hamming import HammingIndex, _layout, _permute, brute_force_pairs, plan_for, radii


@pytest.mark.parametrize("m", [2, 3, 4, 6, 11])
def test_permute_moves_each_bit_as_defined(m):
    perm, _ = _layout(m)
    rng = np.random.default_rng(m)
    codes = np.concatenate([rng.integers(-2**63, 2**63 - 1, 500, dtype=np.int64).view(np.uint64),
                            np.uint64(1) << np.arange(64, dtype=np.uint64)])  # every single bit alone too
    bits = np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)  # MSB first
    want = np.ascontiguousarray(np.packbits(bits[:, perm], axis=1)).view(">u8").ravel()
    assert np.array_equal(_permute(codes, perm), want.astype(np.uint64))


def test_radii_cover_the_threshold_exactly():
    for m in range(2, 17):
        for t in range(0, 20):
            r = radii(m, t)
            # two codes farther than r_c bits on every chunk differ in >= sum(r_c + 1) = t + 1 bits
            assert len(r) == m and sum(x + 1 for x in r) == t + 1 and max(r) == t // m


def _clustered(n: int, seed: int) -> np.ndarray:
    """Codes around a few centres (pairs at every distance from 0 to ~20 bits, heavy buckets)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, 12, dtype=np.uint64)
    noise = np.zeros(n, np.uint64)
    flip = rng.uniform(0.0, 0.15, n)
    for b in range(64):
        noise |= (rng.random(n) < flip).astype(np.uint64) << np.uint64(b)
    return (centres[rng.integers(0, 12, n)] ^ noise).view(np.int64)


@pytest.mark.parametrize("threshold", [0, 3, 6, 10, 13])
def test_every_plan_with_tight_radii_finds_exactly_the_brute_force_pairs(threshold):
    codes = _clustered(1500, threshold)
    want = set(zip(*(x.tolist() for x in brute_force_pairs(codes, threshold))))
    assert len(want) > 50
    for m in (2, 3, 4, 5, 6, 8, 11, 16):
        index = HammingIndex(codes, threshold, plan=(m, threshold // m))
        i, j, dist = index.query(codes, 0)
        assert set(zip(i.tolist(), j.tolist())) == want, (m, threshold)
        assert np.array_equal(dist, np.bitwise_count((codes[i] ^ codes[j]).view(np.uint64)))
    assert plan_for(codes, threshold)[0] >= 2


def test_pairs_touching_some_rows_are_those_of_every_pair_with_one_of_them():
    from transform.hamming import near_pairs_touching

    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**63, 300, dtype=np.int64)
    codes = np.concatenate([base, base[:100] ^ (1 << rng.integers(0, 63, 100))])  # 100 pairs 1 bit apart
    codes[350] = codes[120]  # and one exact pair
    i, j = brute_force_pairs(codes, 6)
    rows = np.array([0, 5, 120, 301, 350, 399])
    want = [(a, b) for a, b in zip(i.tolist(), j.tolist()) if a in rows or b in rows]
    ti, tj, dist = near_pairs_touching(codes, rows, 6)
    assert list(zip(ti.tolist(), tj.tolist())) == want and len(want) >= 5  # sorted, each pair once
    assert np.array_equal(dist, np.bitwise_count(codes[ti] ^ codes[tj]))
    ai, aj, _ = near_pairs_touching(codes, None, 6)
    assert np.array_equal(ai, i) and np.array_equal(aj, j)
