"""Pairs with a detail-free image are found by the plain correlation that judges them: exactly the
pairs a brute-force comparison of every pair finds, in a full and in an incremental search; exact copies
left out; a heavy cluster capped at the closest and counted; the coefficients' distance never exceeds
the unit vectors' (what makes the search exact)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transform.dedup_match import detail, spectrum, thumbnails
from transform.dedup_plain import DIMS, partner_bound, plain_pairs, radius

MIN_DETAIL, CORRELATION = 0.035, 0.998


def smooth_and_sharp(n: int, seed: int) -> np.ndarray:
    """Smooth scenes (most below MIN_DETAIL) with faint-noise copies, and textured images with copies."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 4 == 3:
            out.append(np.clip(out[-1] + rng.normal(0, 1.5, out[-1].shape), 0, 255).astype(np.uint8))
            continue
        coarse = rng.integers(0, 256, (3 + k % 4, 3 + k % 5, 3), dtype=np.uint8)
        im = np.asarray(Image.fromarray(coarse).resize((32, 32), Image.Resampling.BICUBIC), np.float32)
        noise = 40 if k % 7 == 0 else 3  # every seventh one textured
        out.append(np.clip(im + rng.normal(0, noise, im.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _unit(plain: np.ndarray) -> np.ndarray:
    z = plain.reshape(len(plain), -1).astype(np.float64)
    z -= z.mean(axis=1, keepdims=True)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def brute_force(plain: np.ndarray, share: np.ndarray, exact: np.ndarray, mirrored: bool = False) -> set[tuple[int, int]]:
    corr = _unit(plain) @ _unit(plain[:, :, ::-1] if mirrored else plain).T
    i, j = np.nonzero(np.triu(corr >= CORRELATION, 1))
    keep = ((share[i] < MIN_DETAIL) | (share[j] < MIN_DETAIL)) & (exact[i] != exact[j])
    return set(zip(i[keep].tolist(), j[keep].tolist()))


@pytest.fixture(scope="module")
def data():
    plain = thumbnails(smooth_and_sharp(600, seed=3), equalise=False)
    share, low = spectrum(plain, DIMS)
    return plain, share, low, np.arange(len(plain))


def test_finds_exactly_the_pairs_of_a_brute_force_comparison(data):
    plain, share, low, exact = data
    stats = {}
    i, j, score = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256, stats=stats)
    truth = brute_force(plain, share, exact)
    assert len(truth) > 50 and set(zip(i.tolist(), j.tolist())) == truth
    assert np.all(i < j) and np.all(score >= CORRELATION)
    assert (share < MIN_DETAIL).sum() > 300 and stats["capped_images"] == 0
    assert stats["plain_candidates"] >= len(truth)


def test_incremental_finds_the_pairs_with_a_new_image(data):
    plain, share, low, exact = data
    new = np.arange(450, 600)
    i, j, _ = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256, new=new)
    truth = {(a, b) for a, b in brute_force(plain, share, exact) if a >= 450 or b >= 450}
    assert truth and set(zip(i.tolist(), j.tolist())) == truth


def test_exact_copies_are_left_out(data):
    plain, share, low, _ = data
    exact = np.arange(len(plain))
    exact[3] = exact[2]  # 2 and 3 a near pair, now one exact class
    i, j, _ = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256)
    assert (2, 3) not in set(zip(i.tolist(), j.tolist()))
    assert set(zip(i.tolist(), j.tolist())) == brute_force(plain, share, exact)


def test_heavy_cluster_is_capped_at_the_closest_and_counted():
    rng = np.random.default_rng(1)
    base = smooth_and_sharp(2, seed=9)[1].astype(np.float32)
    px = np.stack([np.clip(base + rng.normal(0, 0.6, base.shape), 0, 255).astype(np.uint8) for _ in range(40)])
    plain = thumbnails(px, equalise=False)
    share, low = spectrum(plain, DIMS)
    stats = {}
    i, j, _ = plain_pairs(plain, share, low, np.arange(40), MIN_DETAIL, CORRELATION, 3, stats=stats)
    assert stats["capped_images"] == 40 and stats["capped_pairs_dropped"] == 40 * (39 - 3)
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse import coo_matrix
    assert connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(40, 40)), directed=False)[0] == 1
    assert len(i) <= 40 * 3


def test_coefficient_distance_bounds_the_correlation_and_detail_is_unchanged(data):
    plain, share, low, _ = data
    z = plain.reshape(len(plain), -1).astype(np.float64)
    z -= z.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    a, b = np.arange(0, 599), np.arange(1, 600)
    full = np.linalg.norm(z[a] - z[b], axis=1)
    assert np.all(np.linalg.norm(low[a].astype(np.float64) - low[b], axis=1) <= full * (1 + 1e-4) + 1e-6)
    assert np.allclose(np.sqrt(np.maximum(2 - 2 * (z[a] * z[b]).sum(axis=1), 0)), full)
    assert np.array_equal(detail(plain), share)
    assert radius(CORRELATION) == pytest.approx(0.0632, abs=1e-4) and partner_bound(MIN_DETAIL, CORRELATION) > MIN_DETAIL


def test_mirrored_finds_exactly_the_pairs_that_correlate_with_one_image_flipped():
    """Every fifth smooth scene is followed by its mirror image: found by the mirrored search (the
    same pairs as a brute force against the flipped thumbnails, full and incremental) and not by the
    search as it is; an image is never paired with its own mirror image."""
    px = smooth_and_sharp(400, seed=5)
    px[5::10] = px[4::10][:, :, ::-1]
    plain = thumbnails(px, equalise=False)
    share, low = spectrum(plain, DIMS)
    exact = np.arange(len(plain))
    i, j, score = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256, mirrored=True)
    truth = brute_force(plain, share, exact, mirrored=True)
    found = set(zip(i.tolist(), j.tolist()))
    planted = {(k - 1, k) for k in range(5, 400, 10) if share[k] < MIN_DETAIL}
    assert len(planted) > 10 and planted <= truth and found == truth and np.all(score >= CORRELATION)
    as_is = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256)
    assert not planted & set(zip(as_is[0].tolist(), as_is[1].tolist()))
    new = np.arange(300, 400)
    i, j, _ = plain_pairs(plain, share, low, exact, MIN_DETAIL, CORRELATION, 256, new=new, mirrored=True)
    assert set(zip(i.tolist(), j.tolist())) == {(a, b) for a, b in truth if a >= 300 or b >= 300}
