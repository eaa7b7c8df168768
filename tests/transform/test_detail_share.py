"""The compiled detail share (:mod:`transform.detail_share`) equals dedup's batched one (SciPy's DCT)."""

from __future__ import annotations

import numpy as np

from transform.dedup_match import detail
from transform.detail_share import dct_matrix, detail_share


def test_detail_share_equals_the_batched_spectrum():
    rng = np.random.default_rng(4)
    noisy = rng.integers(0, 256, (4, 32, 32)).astype(np.uint8)
    ramp = np.tile(np.linspace(0, 255, 32), (32, 1))
    smooth = np.stack([ramp, ramp.T, 128 + 60 * np.sin(ramp / 40), np.full((32, 32), 90.0)]).astype(np.uint8)
    grey = np.concatenate([noisy, smooth])
    dct, tmp = dct_matrix(32), np.zeros((32, 32), np.float32)
    got = np.array([detail_share(g, dct, tmp) for g in grey])
    assert np.allclose(got, detail(grey), atol=1e-5)
    assert got[:4].min() > 0.5 and got[4:7].max() < 0.05  # noise is nearly all detail, ramps and a wave none
    mirrored = np.array([detail_share(np.ascontiguousarray(g[:, ::-1]), dct, tmp) for g in grey])
    assert np.allclose(mirrored, got, atol=1e-5)  # a mirror image has the same share (the check relies on it)
