"""Near-duplicate pairs with a nearly detail-free image, found by the check that judges them.

A pair with a nearly detail-free image (an upscaled scan, a smooth scene: less than ``min_detail`` of
its variance outside the 8x8 lowest DCT frequencies) is accepted when the Pearson correlation of the
two plain grey thumbnails reaches ``min_correlation`` (:mod:`transform.dedup`): the window hashes'
shift and crop tolerance plays no part in that verdict. Found through the window hashes, such pairs
cost ~N^2: the hashes of smooth images cluster (unrelated smooth scenes fall within 10 bits at one
of the 300 alignments 120x as often as uniform codes): 1.45M candidates at 100k synthetic images for
3,373 accepted. So they are searched in the correlation's own geometry, exactly:

- With z the thumbnail minus its mean, scaled to unit norm, Pearson(a, b) = <z_a, z_b>, so a pair
  reaches c exactly when |z_a - z_b| <= r = sqrt(2 (1 - c)) (0.063 at 0.998).
- The orthonormal DCT keeps distances, and dropping coordinates only shortens them: a pair that
  reaches c is within r on its ``DIMS`` lowest coefficients. A k-d tree over those coefficients finds
  every such pair (a superset; the correlation is then computed on the whole thumbnails).
- A partner of a detail-free image holds at most (sqrt(min_detail) + r)^2 of its variance in the high
  frequencies (the triangle inequality on that part of z), so only images under that bound go in the
  tree; only one image of each set of exact copies (theirs are exact pairs already).

Exact: every pair that reaches the correlation is found, hashes or not, unless an image has more than
``max_per_image`` images within r on the coefficients; it then keeps its closest ones there, and how
many images and pairs that cut is counted (``stats``), as the window search does. ``mirrored`` finds
the pairs whose one image reaches the correlation with the other flipped left to right the same way:
a flip keeps every coefficient but negates those of odd horizontal frequency, so the mirror image's
point is the image's point with those signs changed, queried in the same tree.
"""

from __future__ import annotations

import numpy as np

# coefficients in the tree: on benchmarks/scale.py's 1M lake 8 give the candidates of 16 (1.09 an image, self
# included) in a third of the time; 6 twice as many, 4 a hundred times (a k-d tree slows with dimensions)
DIMS = 8
BLOCK = 8192  # images queried at once (their neighbour arrays: BLOCK x (max_per_image + 2) entries)
SLACK = 1e-3  # relative radius margin: float32 coefficients against the exact float64 correlation


def radius(min_correlation: float) -> float:
    """The distance between two unit vectors whose inner product is ``min_correlation``."""
    return float(np.sqrt(2.0 * (1.0 - min_correlation)))


def partner_bound(min_detail: float, min_correlation: float) -> float:
    """The most high-frequency share an image correlated ``min_correlation`` with a detail-free one has."""
    return float((np.sqrt(min_detail) + radius(min_correlation)) ** 2)


def plain_pairs(plain: np.ndarray, detail: np.ndarray, low: np.ndarray, exact: np.ndarray, min_detail: float,
                min_correlation: float, max_per_image: int | None = None, new: np.ndarray | None = None,
                stats: dict | None = None, on_progress=None, mirrored: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) with an image whose ``detail`` is below ``min_detail`` whose plain thumbnails
    correlate at least ``min_correlation``, with that correlation; pairs of exact copies (the same
    ``exact`` class) are left out. ``low``: each thumbnail's lowest coefficients
    (:func:`transform.dedup_match.spectrum`). With ``new`` (row numbers) only pairs with a new image.
    ``stats`` gets ``plain_candidates`` and ``plain_pairs`` (accepted), and adds to ``capped_images`` /
    ``capped_pairs_dropped``. ``on_progress(n)`` is called as n of the images (or of the ``new`` ones)
    are done: at once for those with too much detail to take part, then a block at a time. With
    ``mirrored``, the pairs whose correlation reaches it with one image flipped left to right (scored so)."""
    from scipy.spatial import cKDTree

    from transform.dedup_match import LOW_FREQUENCIES, plain_correlation

    stats = {} if stats is None else stats
    for key in ("plain_candidates", "plain_pairs", "capped_images", "capped_pairs_dropped"):
        stats.setdefault(key, 0)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    first = np.zeros(len(exact), bool)
    first[np.unique(exact, return_index=True)[1]] = True
    pool = np.flatnonzero(first & (detail < partner_bound(min_detail, min_correlation) * (1 + SLACK)))
    done = on_progress or (lambda n: None)
    if not (detail[pool] < min_detail).any():
        done(len(plain) if new is None else len(new))
        return empty
    points = low[pool].astype(np.float64)
    tree = cKDTree(points)
    queries = points * np.array([-1.0 if v % 2 else 1.0 for _, v in LOW_FREQUENCIES[:points.shape[1]]]) \
        if mirrored else points
    reach = radius(min_correlation) * (1 + SLACK) + 1e-6
    asked = np.arange(len(pool)) if new is None else np.flatnonzero(np.isin(pool, new))
    rank = np.empty(len(pool), np.int64)
    rank[tree.indices] = np.arange(len(pool))
    asked = asked[np.argsort(rank[asked])]  # in the tree's leaf order: neighbouring queries share its nodes (3x at 1M)
    done((len(plain) if new is None else len(new)) - len(asked))
    pairs = [(empty[0], empty[0])]
    for start in range(0, len(asked), BLOCK):
        pairs.append(_neighbours(tree, queries, asked[start:start + BLOCK], reach, max_per_image, stats))
        done(len(asked[start:start + BLOCK]))
    a, b = (pool[np.concatenate([pair[c] for pair in pairs])] for c in (0, 1))
    key = np.unique(np.minimum(a, b) * len(plain) + np.maximum(a, b))
    i, j = key // len(plain), key % len(plain)
    smooth = detail < min_detail
    i, j = i[smooth[i] | smooth[j]], j[smooth[i] | smooth[j]]
    stats["plain_candidates"] += len(i)
    score = _mirrored_correlation(plain, i, j) if mirrored else plain_correlation(plain, i, j)
    ok = score >= min_correlation
    stats["plain_pairs"] += int(ok.sum())
    return i[ok], j[ok], score[ok]


def _mirrored_correlation(plain: np.ndarray, i: np.ndarray, j: np.ndarray, block: int = 4096) -> np.ndarray:
    """Pearson correlation of ``plain[i]`` with ``plain[j]`` flipped left to right, per pair."""
    out = np.empty(len(i), np.float32)
    for start in range(0, len(i), block):
        a = plain[i[start:start + block]].reshape(-1, plain[0].size).astype(np.float64)
        b = plain[j[start:start + block]][:, :, ::-1].reshape(-1, plain[0].size).astype(np.float64)
        a -= a.mean(axis=1, keepdims=True)
        b -= b.mean(axis=1, keepdims=True)
        norm = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-9)
        out[start:start + block] = (a * b).sum(axis=1) / norm
    return out


def _neighbours(tree, points: np.ndarray, mine: np.ndarray, reach: float, cap: int | None, stats: dict
                ) -> tuple[np.ndarray, np.ndarray]:
    """(image, neighbour) for the query ``points`` of the tree points ``mine`` and the tree points within
    ``reach`` of each, at most ``cap`` (the closest) per image; the images over the cap and the pairs it
    cut go to ``stats``."""
    if cap is None:
        lists = tree.query_ball_point(points[mine], reach)
        rows = np.repeat(mine, [len(found) for found in lists])
        near = np.fromiter((p for found in lists for p in found), np.int64, len(rows))
        return rows[near != rows], near[near != rows]
    dist, near = tree.query(points[mine], k=min(len(points), cap + 2), distance_upper_bound=reach)
    dist, near = dist.reshape(len(mine), -1), near.reshape(len(mine), -1)
    hit = np.isfinite(dist) & (near != mine[:, None])
    over = hit.sum(axis=1) > cap
    if over.any():
        within = tree.query_ball_point(points[mine[over]], reach, return_length=True)
        stats["capped_images"] += int(over.sum())
        stats["capped_pairs_dropped"] += int(np.maximum(within - 1 - cap, 1).sum())
        hit &= np.cumsum(hit, axis=1) <= cap
    return np.broadcast_to(mine[:, None], hit.shape)[hit], near[hit]
