"""The compiled pixel verification (:mod:`transform.aligned_ncc`) scores every pair as the NumPy
implementation it replaced (kept here as the reference: dense interpolation matrices, batched products)."""

from __future__ import annotations

import numpy as np
import pytest

from transform.dedup_match import (CENTRE, GRID, INDEX_WINDOWS, LOW_DETAIL, MIRRORED, MIRRORED_WINDOWS,
                                   MOVED_DETAIL_MARGIN, STRETCHED, WINDOWS, ZOOM_SIZE, ZOOMED, aligned_scores, detail,
                                   thumbnails)


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, src - 1)
    hi = np.clip(lo + 1, 0, src - 1)
    w = np.clip(pos - lo, 0, 1)
    m = np.zeros((dst, src), np.float32)
    m[np.arange(dst), lo] += 1 - w
    m[np.arange(dst), hi] += w
    return m


_RESIZE = {s: _resize_matrix(s, CENTRE) for s in {side for w in WINDOWS for side in (w.size, w.rows)}}


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-3)


def _axis_weights(offset, ref, scale):
    u = np.arange(GRID)[None, :]
    pos = offset[:, None] + (u - ref[:, None] + 0.5) * scale[:, None] - 0.5
    inside = (pos >= -0.5) & (pos <= GRID - 0.5)
    pos = np.clip(pos, 0, GRID - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), GRID - 2)
    frac = (pos - lo).astype(np.float32)
    weights = np.zeros((len(offset), GRID, GRID), np.float32)
    n_idx, u_idx = np.nonzero(np.ones_like(pos, bool))
    weights[n_idx, u_idx, lo.ravel()] += (1 - frac).ravel()
    weights[n_idx, u_idx, lo.ravel() + 1] += frac.ravel()
    return weights, inside


def _overlap_ncc(ta, tb, x, y, vx, vy, scale_x, scale_y, min_band=-2.0):
    """The overlap correlation; with ``min_band`` (one per pair) lowered to the band-pass one where that is below it."""
    wy, in_y = _axis_weights(y, vy, scale_y)
    wx, in_x = _axis_weights(x, vx, scale_x)
    warped = wy @ ta.astype(np.float32) @ wx.transpose(0, 2, 1)
    mask = (in_y[:, :, None] & in_x[:, None, :]).astype(np.float32)
    count = np.maximum(mask.sum(axis=(1, 2), keepdims=True), 1)
    tb = tb.astype(np.float32)
    ma = warped - (warped * mask).sum(axis=(1, 2), keepdims=True) / count
    mb = tb - (tb * mask).sum(axis=(1, 2), keepdims=True) / count
    num = (ma * mb * mask).sum(axis=(1, 2))
    den = np.sqrt((ma * ma * mask).sum(axis=(1, 2)) * (mb * mb * mask).sum(axis=(1, 2)))
    out = num / np.maximum(den, 1e-3)
    if np.any(min_band > -1):
        band = _band_ncc(warped, tb, in_y, in_x)
        out = np.where(band < min_band, np.minimum(out, band), out)
    return out


def _band_ncc(warped, tb, in_y, in_x):
    """3x3 box blur (edges clamped), Laplacian of step 2, correlation over the overlap 3 px in."""
    def band(x):
        p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        blur = sum(p[:, 1 + dy:1 + dy + GRID, 1 + dx:1 + dx + GRID] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        c = blur[:, 2:-2, 2:-2]
        return 4 * c - blur[:, :-4, 2:-2] - blur[:, 4:, 2:-2] - blur[:, 2:-2, :-4] - blur[:, 2:-2, 4:]
    la, lb = band(warped), band(tb)  # pixels 2..GRID-3
    inner_y = in_y[:, :-6] & in_y[:, 6:]  # pixel u (3..GRID-4) with u-3 and u+3 inside
    inner_x = in_x[:, :-6] & in_x[:, 6:]
    mask = (inner_y[:, :, None] & inner_x[:, None, :]).astype(np.float64)
    la, lb = la[:, 1:-1, 1:-1].astype(np.float64), lb[:, 1:-1, 1:-1].astype(np.float64)
    n = np.maximum(mask.sum(axis=(1, 2)), 1)
    sa, sb = (la * mask).sum(axis=(1, 2)), (lb * mask).sum(axis=(1, 2))
    cov = (la * lb * mask).sum(axis=(1, 2)) - sa * sb / n
    va = np.maximum((la * la * mask).sum(axis=(1, 2)) - sa * sa / n, 0)
    vb = np.maximum((lb * lb * mask).sum(axis=(1, 2)) - sb * sb / n, 0)
    return cov / np.maximum(np.sqrt(va * vb), 1e-3)


def reference(thumbs, a, b, window, ref, plain=None, min_band=-2.0, index=INDEX_WINDOWS):
    """The NumPy aligned_scores this module replaced (scores and chosen positions); ``ref`` indexes ``index``."""
    best = np.full(len(a), -2.0, np.float32)
    bx, by = np.zeros(len(a), np.int64), np.zeros(len(a), np.int64)
    sl = np.arange(len(a))
    for k, r in {(int(k), int(r)) for k, r in zip(window, ref)}:
        rows = sl[(window == k) & (ref == r)]
        w, v = WINDOWS[k], index[r]
        target = _standardise(thumbs[b[rows], v.y:v.y + CENTRE, v.x:v.x + CENTRE].astype(np.float32))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                x, y = min(max(w.x + dx, 0), GRID - w.size), min(max(w.y + dy, 0), GRID - w.rows)
                crop = thumbs[a[rows], y:y + w.rows, x:x + w.size].astype(np.float32)
                if (w.size, w.rows) != (CENTRE, CENTRE):
                    crop = _RESIZE[w.rows] @ crop @ _RESIZE[w.size].T
                s = (_standardise(crop) * target).sum(axis=1)
                better = s > best[rows]
                best[rows[better]], bx[rows[better]], by[rows[better]] = s[better], x, y
    width = np.array([WINDOWS[k].size for k in window], np.int64)
    height = np.array([WINDOWS[k].rows for k in window], np.int64)
    vx = np.array([index[r].x for r in ref], np.int64)
    vy = np.array([index[r].y for r in ref], np.int64)
    moved = (width != CENTRE) | (height != CENTRE) | (bx != vx) | (by != vy)
    share = detail(thumbs if plain is None else plain)
    smooth = np.minimum(share[a], share[b]) < LOW_DETAIL
    bars = np.where(moved & smooth & (min_band > -1), min_band + MOVED_DETAIL_MARGIN, min_band)
    scores = _overlap_ncc(thumbs[a], thumbs[b], bx, by, vx, vy, width / CENTRE, height / CENTRE, bars)
    if plain is not None:
        scores = np.minimum(scores, _overlap_ncc(plain[a], plain[b], bx, by, vx, vy, width / CENTRE, height / CENTRE))
    stretched = width != height
    geometry = (((width != CENTRE) & ~stretched) * 2 + ((bx != vx) | (by != vy))
                + ((width <= ZOOM_SIZE) & ~stretched) * ZOOMED + stretched * STRETCHED).astype(np.int8)
    return scores, geometry


def _pairs(n_images: int, n_pairs: int, seed: int):
    """Thumbnails of smooth random scenes with shifted, cropped and noisy copies, and random pairs over
    every (query window, indexed window) combination, copies and strangers alike."""
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    base = [gaussian_filter(rng.normal(size=(48, 48, 3)), (3, 3, 0)) for _ in range(n_images)]
    imgs = []
    for k, img in enumerate(base):
        img = (img - img.min()) / (np.ptp(img) + 1e-9) * 255
        dy, dx = rng.integers(0, 6, 2)
        crop = img[dy:dy + 40 - k % 3 * 3, dx:dx + 40 - k % 3 * 3]
        imgs.append(np.clip(zoom(crop, (32 / crop.shape[0], 32 / crop.shape[1], 1), order=1)
                            + rng.normal(0, 4 * (k % 2), (32, 32, 3)), 0, 255).astype(np.uint8))
    px = np.stack(imgs)
    px[1::7] = px[0::7][:len(px[1::7])]  # byte-equal pairs score 1
    px[2] = 128  # a flat image (its norm is floored)
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    a, b = rng.integers(0, n_images, n_pairs), rng.integers(0, n_images, n_pairs)
    window = rng.integers(0, len(WINDOWS), n_pairs)
    ref = rng.integers(0, len(INDEX_WINDOWS), n_pairs)
    return thumbs, plain, a, b, window, ref


@pytest.mark.parametrize("with_plain", [False, True])
def test_compiled_scores_equal_the_numpy_reference(with_plain):
    thumbs, plain, a, b, window, ref = _pairs(60, 3000, seed=3)
    got, geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain if with_plain else None)
    want, want_geometry = reference(thumbs, a, b, window, ref, plain=plain if with_plain else None)
    assert got.dtype == np.float32 and len(got) == 3000
    # a refinement position is chosen by the best of 9 correlations: only a tie (float32 against float64 sums)
    # may choose another position, and so another overlap and score
    assert (np.abs(got - want) > 1e-4).mean() < 0.001
    assert (geometry != want_geometry).mean() < 0.002
    same = a == b
    assert same.any() and np.all(got[same & (window == WINDOWS.index(INDEX_WINDOWS[0]))] > 0.999)
    assert got.min() < 0.2 < got.max()  # strangers and copies both present


def test_no_pairs():
    thumbs, plain, *_ = _pairs(5, 1, seed=0)
    empty = np.zeros(0, np.int64)
    scores, geometry = aligned_scores(thumbs, empty, empty, empty, empty, plain=plain)
    assert scores.shape == (0,) and geometry.shape == (0,)


@pytest.mark.parametrize("floor", [0.3, 0.8])
def test_floor_skips_the_plain_check_only_below_it(floor):
    """Pairs whose equalised score reaches the floor keep the full score (the lower of equalised and
    plain); pairs below it keep their equalised score, which is below the floor as the full one is."""
    thumbs, plain, a, b, window, ref = _pairs(60, 3000, seed=5)
    full, full_geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain)
    equalised, _ = aligned_scores(thumbs, a, b, window, ref)
    got, geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain, floor=floor, overlays=False)
    above = equalised >= floor
    assert above.any() and (~above).any()
    assert np.array_equal(got[above], full[above]) and np.array_equal(got[~above], equalised[~above])
    assert np.array_equal(got >= floor, full >= floor)  # the same accept decisions at any threshold >= floor
    assert np.array_equal(geometry, full_geometry)


@pytest.mark.parametrize("floor", [0.3, 0.8])
def test_overlays_only_lift_pairs_short_of_the_floor(floor):
    """With overlays (the default) a pair that reaches the floor keeps its score and geometry; one short of
    it keeps its score too unless its best band left out, less the margin, scores higher: then that (then
    checked for detail and on the plain thumbnails without the same band), with OVERLAID in its geometry."""
    from transform.dedup_match import OVERLAID
    from transform.overlay_band import OVERLAY_MARGIN

    thumbs, plain, a, b, window, ref = _pairs(60, 3000, seed=5)
    without, without_geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain, floor=floor, overlays=False)
    got, geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain, floor=floor)
    lifted = (geometry & OVERLAID) > 0
    assert lifted.any() and np.all(without[lifted] < floor)  # then checked for detail and plain as any pair
    assert np.array_equal(got[~lifted], without[~lifted]) and np.array_equal(geometry[~lifted], without_geometry[~lifted])
    assert np.array_equal(geometry[lifted] - OVERLAID, without_geometry[lifted])
    assert np.all(got[lifted] <= 1 - OVERLAY_MARGIN + 1e-6)


def test_best_band_equals_brute_force():
    """The band of rows or columns whose exclusion leaves the highest correlation, found from prefix sums,
    is the one an exhaustive NumPy search finds, with its correlation."""
    from transform.overlay_band import MIN_BAND, OVERLAY_SHARE, best_band, masked_ncc

    rng = np.random.default_rng(3)
    sums = np.empty((GRID + 1, 5), np.float64)
    for trial in range(20):
        u0, v0 = rng.integers(0, 6, 2)
        u1, v1 = GRID - rng.integers(0, 6, 2)
        wa = rng.normal(100, 30, (GRID, GRID)).astype(np.float32)
        tb = np.clip(wa + rng.normal(0, 10, wa.shape), 0, 255).astype(np.uint8)
        tb[u0 + 3:u0 + 8] = rng.integers(0, 256)  # a caption-like bar somewhere
        got = best_band(wa, tb, u0, u1, v0, v1, sums)
        want = (-2.0, -1, 0, 0)
        for axis, (lo, hi) in enumerate(((u0, u1), (v0, v1))):
            for h in range(MIN_BAND, int((hi - lo) * OVERLAY_SHARE) + 1):
                for e0 in range(lo, hi - h + 1):
                    keep = np.ones((GRID, GRID), bool)
                    (keep.__setitem__((slice(e0, e0 + h), slice(None)), False) if axis == 0
                     else keep.__setitem__((slice(None), slice(e0, e0 + h)), False))
                    keep[:u0], keep[u1:], keep[:, :v0], keep[:, v1:] = False, False, False, False
                    c = np.corrcoef(wa[keep].astype(np.float64), tb[keep].astype(np.float64))[0, 1]
                    if c > want[0] + 1e-9:
                        want = (c, axis, e0, e0 + h)
        assert got[1:] == want[1:] and abs(got[0] - want[0]) < 1e-6, (trial, got, want)
        assert abs(masked_ncc(wa, tb, u0, u1, v0, v1, *got[1:]) - got[0]) < 1e-5
        assert got[1] == 0 and got[2] <= u0 + 3 and got[3] >= u0 + 8  # the bar is what it leaves out


def test_detail_check_equals_the_numpy_reference():
    """With ``min_band`` a pair whose band-pass detail correlates less scores that correlation instead; a
    pair whose alignment was fitted (shifted, cropped, another aspect) with an image of little detail (under
    ``LOW_DETAIL``) needs ``MOVED_DETAIL_MARGIN`` more."""
    thumbs, plain, a, b, window, ref = _pairs(60, 3000, seed=7)
    without, _ = aligned_scores(thumbs, a, b, window, ref, plain=plain)
    got, geometry = aligned_scores(thumbs, a, b, window, ref, plain=plain, min_band=0.5)
    want, want_geometry = reference(thumbs, a, b, window, ref, plain=plain, min_band=0.5)
    assert np.abs(got - want).max() < 1e-3
    assert (geometry != want_geometry).mean() < 0.002
    lowered = got < without - 1e-6
    share = detail(plain)
    smooth = (((geometry & 3) > 0) | ((geometry & STRETCHED) > 0)) & (np.minimum(share[a], share[b]) < LOW_DETAIL)
    bar = np.where(smooth, 0.5 + MOVED_DETAIL_MARGIN, 0.5)
    assert lowered.any() and np.all(got[lowered] < bar[lowered]) and np.all(got <= without + 1e-6)
    assert (lowered & smooth & (got >= 0.5)).any()  # a fitted alignment whose detail would pass one as it is


def test_a_shared_layout_is_not_a_copy():
    """Two different photos of one layout (a bright sky over a dark sea, different detail on it)
    correlate as whole thumbnails; the detail check tells them apart, while a shifted, noisier copy
    keeps its score."""
    rng = np.random.default_rng(11)
    from scipy.ndimage import gaussian_filter

    layout = np.repeat(np.where(np.arange(32) < 16, 200.0, 60.0)[:, None], 32, axis=1)
    layout = gaussian_filter(layout, 2)

    def scene(seed):
        detail = gaussian_filter(np.random.default_rng(seed).normal(size=(36, 36)), 1.2)
        return layout, detail / detail.std() * 12

    base, texture = scene(1)
    other = base + scene(2)[1][2:34, 2:34]
    first = base + texture[2:34, 2:34]
    shifted = base + texture[2:34, 4:36] + rng.normal(0, 3, (32, 32))  # the layout is the same along x
    px = np.stack([np.repeat(np.clip(x, 0, 255).astype(np.uint8)[..., None], 3, axis=2) for x in (first, other, shifted)])
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    a, b = np.array([0, 0]), np.array([1, 2])
    centre = WINDOWS.index(next(w for w in WINDOWS if w.size == CENTRE and w.x == 4 and w.y == 4))
    window, ref = np.array([centre, centre]), np.array([0, 0])
    whole, _ = aligned_scores(thumbs, a, b, window, ref, plain=plain)
    checked, _ = aligned_scores(thumbs, a, b, window, ref, plain=plain, min_band=0.5)
    assert whole[0] >= 0.8 and checked[0] < 0.5  # the stranger: same layout, other detail
    assert checked[1] >= 0.85 and checked[1] == whole[1]  # the copy, shifted 2 px and noisier


def test_plain_correlation_is_pearson_of_the_whole_thumbnails():
    from transform.dedup_match import plain_correlation

    rng = np.random.default_rng(7)
    grey = rng.integers(0, 256, (50, 32, 32)).astype(np.uint8)
    grey[3] = 90  # flat: its norm is floored, its correlation 0
    grey[4] = 255 - grey[5]  # anti-correlated
    grey[6] = grey[7] // 2 + 20  # a linear change of another: correlation 1
    i, j = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    i[:3], j[:3] = [3, 4, 6], [8, 5, 7]
    x, y = grey[i].reshape(len(i), -1).astype(np.float64), grey[j].reshape(len(j), -1).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    want = (x * y).sum(axis=1) / np.maximum(np.linalg.norm(x, axis=1), 1e-3) / np.maximum(np.linalg.norm(y, axis=1), 1e-3)
    got = plain_correlation(grey, i, j)
    assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-5
    assert got[0] == 0 and got[1] < -0.999 and got[2] > 0.999


def test_a_mirrored_ref_compares_the_mirror_image():
    """ref 4..7 (MIRRORED_WINDOWS): the same check as against ``b``'s mirror image stored as a thumbnail
    of its own, with the windows at their mirrored positions; the geometry says it (+ MIRRORED)."""
    thumbs, plain, a, b, window, ref = _pairs(60, 2000, seed=5)
    window[(a == b) & (np.arange(len(a)) % 2 == 0)] = WINDOWS.index(INDEX_WINDOWS[0])  # an image against its mirror image
    n = len(thumbs)
    both = np.ascontiguousarray(np.concatenate([thumbs, thumbs[:, :, ::-1]]))
    both_plain = np.ascontiguousarray(np.concatenate([plain, plain[:, :, ::-1]]))
    got, geometry = aligned_scores(thumbs, a, b, window, ref + len(INDEX_WINDOWS), plain=plain, min_band=0.5)
    want, want_geometry = reference(both, a, b + n, window, ref, plain=both_plain, min_band=0.5, index=MIRRORED_WINDOWS)
    assert np.abs(got - want).max() < 1e-4
    assert (geometry >= MIRRORED).all() and (geometry - MIRRORED != want_geometry).mean() < 0.002
    mirror = (a == b) & (window == WINDOWS.index(INDEX_WINDOWS[0]))
    assert mirror.any() and got[mirror].max() < 0.999  # an image is not its own mirror image
