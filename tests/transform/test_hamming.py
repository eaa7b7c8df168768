"""The bit permutation behind the interleaved hash chunks: the byte-table version moves every bit where
the definition says (new bit p, MSB first, is old bit perm[p])."""

from __future__ import annotations

import numpy as np
import pytest

from transform.hamming import _layout, _permute


@pytest.mark.parametrize("m", [2, 3, 4, 6, 11])
def test_permute_moves_each_bit_as_defined(m):
    perm, _ = _layout(m)
    rng = np.random.default_rng(m)
    codes = np.concatenate([rng.integers(-2**63, 2**63 - 1, 500, dtype=np.int64).view(np.uint64),
                            np.uint64(1) << np.arange(64, dtype=np.uint64)])  # every single bit alone too
    bits = np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)  # MSB first
    want = np.ascontiguousarray(np.packbits(bits[:, perm], axis=1)).view(">u8").ravel()
    assert np.array_equal(_permute(codes, perm), want.astype(np.uint64))
