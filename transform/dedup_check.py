"""Dedup's pixel check of the candidate pairs (:mod:`transform.dedup_search`), a bucket of pairs at a time.

Each candidate (a pair and side, at each of its closest window hits: ``dedup_search.ALIGNMENTS``) is scored
by the aligned correlation of :func:`transform.dedup_match.aligned_scores`; a pair keeps the alignment with
the most to spare over what its geometry needs. On Dask the pairs are scored by tasks of ``VERIFY_BLOCK``
pairs, the thumbnails sent to every worker once, at most two tasks per worker thread in flight, so the
driver holds the pairs and their scores, never the pixel work.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from transform.dedup_codes import WindowCodes
from transform.dedup_match import _C, CENTRE, INDEX_WINDOWS, WINDOWS, Window, aligned_scores
from transform.dedup_search import BUCKET_ROWS, candidate_buckets

VERIFY_BLOCK = 32_768  # candidate pairs a verification task scores (Dask path)
# a pair's further alignments are checked only where its closest one fell short of the score it needs by at
# most this much (CIFAR-10: 97% of the pairs the further alignments find, for 1.06x the checks of one
# alignment instead of 1.12x; those that fell further short were rarely saved: docs/transform.md)
RETRY_WITHIN = 0.3


def verify(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, window: np.ndarray, ref: np.ndarray,
           plain: np.ndarray | None = None, client=None, block: int | None = None, on_progress=None,
           floor: float = -2.0, shared: list | None = None, min_band: float = -2.0, head: np.ndarray | None = None,
           required=None, stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`transform.dedup_match.aligned_scores` of the candidate pairs (``floor``, ``min_band``: see there),
    ``block`` (default ``VERIFY_BLOCK``) pairs at a time (``on_progress(n)`` after each); with ``client``, one Dask task per block (the thumbnails sent to
    every worker once, or ``shared``: :func:`_scatter`'s, for several calls; at most two tasks per worker
    thread in flight), so the driver holds the pairs and their scores, never the pixel work. With ``shared``
    the pairs' rows index the scattered thumbnails (``thumbs`` and ``plain`` may then be None), and every
    pair is scored on the workers. With ``head`` (the rows that are a pair and side's closest alignment, each
    followed by its further ones) every head row is scored, and a further row only where its head fell short
    of ``required(geometry)`` (default ``floor``) by at most ``RETRY_WITHIN`` (counted in
    ``stats["further_alignments"]``; the others score -2): decided within a block, which never splits a
    pair's rows, so the check stays one stream of tasks."""
    done = on_progress or (lambda n: None)
    block = block or VERIFY_BLOCK
    stats = {} if stats is None else stats
    stats.setdefault("further_alignments", 0)
    if len(a) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int8)
    need = required or (lambda g: np.full(len(g), floor, np.float32))
    starts = np.arange(0, len(a), block)
    if head is not None:  # blocks start at a head row: a pair's alignments are decided in one task
        at = np.flatnonzero(head)
        starts = np.unique(at[np.minimum(np.searchsorted(at, starts), len(at) - 1)])
    bounds = [slice(start, stop) for start, stop in zip(starts, np.r_[starts[1:], len(a)])]
    parts = []

    def collect(part: tuple) -> None:
        parts.append(part)
        stats["further_alignments"] += part[2]
        done(len(part[0]))
    if client is None or (shared is None and len(a) <= block):
        for sl in bounds:
            collect(_scored(thumbs, a[sl], b[sl], window[sl], ref[sl], plain, floor, min_band,
                            None if head is None else head[sl], need))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    from sluice.compute import total_threads

    shared = shared or _scatter(client, thumbs, plain)
    window_size, in_flight = 2 * total_threads(client), deque()
    for sl in bounds:
        in_flight.append(client.submit(_scored, shared[0], a[sl], b[sl], window[sl], ref[sl], shared[1], floor,
                                       min_band, None if head is None else head[sl], need, pure=False))
        while len(in_flight) > window_size:
            collect(in_flight.popleft().result())
    for future in in_flight:
        collect(future.result())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _scored(thumbs, a, b, window, ref, plain, floor, min_band, head, need) -> tuple[np.ndarray, np.ndarray, int]:
    """One block of :func:`verify`: (scores, geometry, further alignments checked)."""
    if head is None:
        return (*aligned_scores(thumbs, a, b, window, ref, plain=plain, floor=floor, min_band=min_band), 0)
    scores, geometry = np.full(len(a), -2.0, np.float32), np.zeros(len(a), np.int8)

    def check(rows: np.ndarray) -> None:
        scores[rows], geometry[rows] = aligned_scores(thumbs, a[rows], b[rows], window[rows], ref[rows], plain=plain,
                                                      floor=floor, min_band=min_band)
    check(np.flatnonzero(head))
    first = np.maximum.accumulate(np.where(head, np.arange(len(a)), 0))  # each row's head
    short = scores[first] - need(geometry[first])
    retry = np.flatnonzero(~head & (short < 0) & (short >= -RETRY_WITHIN))
    check(retry)
    return scores, geometry, len(retry)


def _scatter(client, thumbs: np.ndarray, plain: np.ndarray | None) -> list:
    """The thumbnails (and plain ones) on every worker, for verification tasks."""
    if plain is None:
        return [client.scatter(thumbs, broadcast=True, hash=False), None]
    return client.scatter([thumbs, plain], broadcast=True, hash=False)


def _meter(log, desc: str, total: int, unit: str):
    if log is None:
        return None
    from sluice.progress import Meter

    return Meter(log, desc, total, unit)


def match(thumbs: np.ndarray, max_bits: int, extra: tuple[np.ndarray, np.ndarray] | None = None,
          plain: np.ndarray | None = None, max_per_image: int | None = None, stats: dict | None = None,
          client=None, log=None, new: np.ndarray | None = None, floor: float = -2.0,
          among: np.ndarray | None = None, bucket_rows: int = BUCKET_ROWS, min_band: float = -2.0,
          mirrored: bool = False, required=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_buckets`' pairs, all at once."""
    parts = list(match_buckets(thumbs, max_bits, extra, plain, max_per_image, stats, client, log, new, floor, among,
                               bucket_rows, min_band, mirrored, required=required))
    return tuple(np.concatenate([part[c] for part in parts]) for c in range(4))


def match_buckets(thumbs: np.ndarray, max_bits: int, extra: tuple[np.ndarray, np.ndarray] | None = None,
                  plain: np.ndarray | None = None, max_per_image: int | None = None, stats: dict | None = None,
                  client=None, log=None, new: np.ndarray | None = None, floor: float = -2.0,
                  among: np.ndarray | None = None, bucket_rows: int = BUCKET_ROWS, min_band: float = -2.0,
                  mirrored: bool = False, codes: WindowCodes | None = None, required=None):
    """Yield, a bucket of ``bucket_rows`` lower rows at a time, the candidate pairs (i < j, in that
    order) of equalised thumbnails with their verification score and geometry (0 aligned, 1 shifted,
    2 cropped, 3 cropped and shifted; + MIRRORED with ``mirrored``, for a pair that matched with one
    image flipped left to right); the caller applies the score threshold, a bucket at a time, so
    that it need not hold the pairs it rejects. ``extra`` pairs (from another signal, e.g. the stored
    whole-image perceptual hash) are verified too. The candidate search (:func:`candidate_buckets`) and
    the verification (:func:`verify`) run on ``client``'s Dask workers when one is given; with ``log``,
    each reports its progress there (sluice.progress.Meter). With ``new`` (row numbers) only pairs with a
    new image are searched (its cost follows the new images). ``floor``: the lowest score the caller
    accepts (see :func:`transform.dedup_match.aligned_scores`): pairs verified below it at every alignment are
    not yielded, only counted (``stats["below_floor"]``); ``required(geometry)``: the score a pair of that
    geometry needs (default ``floor``): a pair whose closest alignment falls short of it by at most ``RETRY_WITHIN``
    is checked at its further ones too (counted in ``stats["further_alignments"]``) and keeps the best;
    ``min_band``: the band-pass detail correlation such a pair
    needs too (see :func:`transform.dedup_match.aligned_scores`). With ``among`` (increasing row numbers, ``new`` and the
    ``extra`` pairs among them) only those images are searched. ``codes``: see :func:`candidate_buckets`."""
    stats = {} if stats is None else stats
    searched = len(thumbs) if among is None else len(among)
    meter = _meter(log, "candidate search", searched if new is None else len(new), "img")
    buckets = candidate_buckets(thumbs, max_bits, max_per_image, stats=stats, client=client,
                                on_progress=meter and meter.update, new=new, bucket_rows=bucket_rows, among=among,
                                mirrored=mirrored, codes=codes)
    if meter:
        meter.close()
    searched_rows = [len(bucket[0]) for bucket in buckets]  # each bucket's window candidates, before the extra pairs
    if extra is not None and len(extra[0]):
        _add_extra(buckets, *extra, bucket_rows)
    heads = [_heads(bucket, rows) for bucket, rows in zip(buckets, searched_rows)]
    meter = _meter(log, "pixel verification", sum(len(bucket[0]) for bucket in buckets), "candidates")
    shared, held = None, None
    if client is not None and sum(len(bucket[0]) for bucket in buckets) > VERIFY_BLOCK:
        # the workers get the searched images' thumbnails only (at 1M: 0.4 GB each instead of 1.9 GB), where
        # that saves enough to pay for the driver's copy of them (not in a lake of photos: nearly all searched)
        held = np.asarray(among, np.int64) if among is not None and len(among) <= 0.75 * len(thumbs) else None
        shared = _scatter(client, thumbs if held is None else thumbs[held],
                          plain if held is None or plain is None else plain[held])
    stats["below_floor"] = stats["further_alignments"] = 0
    need = required or (lambda g: np.full(len(g), floor, np.float32))
    for number, ((a, b, window, ref), head) in enumerate(zip(buckets, heads)):
        buckets[number] = None  # freed as it is verified
        va, vb = (a, b) if held is None else (np.searchsorted(held, a), np.searchsorted(held, b))
        scores, geometry = verify(thumbs if held is None else None, va, vb, window, ref,
                                  plain=plain if held is None else None, client=client,
                                  on_progress=meter and meter.update, floor=floor, shared=shared, min_band=min_band,
                                  head=head, required=need, stats=stats)
        i, j = np.minimum(a, b), np.maximum(a, b)
        pairs = len(np.unique(i.astype(np.int64) * len(thumbs) + j))
        keep = ~(scores < floor)
        i, j, scores, geometry = i[keep], j[keep], scores[keep], geometry[keep]
        # a pair verified at several alignments (and from the extra pairs) keeps the one with the most to
        # spare over what its geometry needs
        order = np.lexsort((-scores, -(scores - need(geometry)), j, i))
        i, j, scores, geometry = i[order], j[order], scores[order], geometry[order]
        first = np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])] if len(i) else np.zeros(0, bool)
        stats["below_floor"] += pairs - int(first.sum())
        yield i[first], j[first], scores[first], geometry[first]
    if meter:
        meter.close()


def _heads(bucket: tuple[np.ndarray, ...], searched: int) -> np.ndarray:
    """Which rows of a bucket are a pair and side's closest alignment (its first row: the search files them
    closest first) or an extra pair (the rows from ``searched`` on)."""
    a, b, _, ref = bucket
    key = (np.minimum(a, b).astype(np.int64) << 32 | np.maximum(a, b)) * 2 + (ref >= len(INDEX_WINDOWS))
    return np.r_[True, key[1:] != key[:-1]] | (np.arange(len(a)) >= searched) if len(a) else np.zeros(0, bool)


def _add_extra(buckets: list, i: np.ndarray, j: np.ndarray, bucket_rows: int) -> None:
    """Append the ``extra`` pairs to their lower row's bucket, verified from the centre window."""
    centre = WINDOWS.index(Window(_C, _C, CENTRE))
    low = np.minimum(i, j) // bucket_rows
    for number, (a, b, window, ref) in enumerate(buckets):
        mine = low == number
        buckets[number] = (np.concatenate([a, i[mine].astype(a.dtype)]), np.concatenate([b, j[mine].astype(b.dtype)]),
                           np.concatenate([window, np.full(int(mine.sum()), centre, window.dtype)]),
                           np.concatenate([ref, np.zeros(int(mine.sum()), ref.dtype)]))
