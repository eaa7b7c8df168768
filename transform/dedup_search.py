"""Dedup's candidate search: window hashes of every pair of images within ``dedup.near_threshold`` bits.

Each image has 75 query-window codes and 4 indexed-window codes (:mod:`transform.dedup_match`; 4 more
of its mirror image with ``mirrored``); a pair is a candidate when some query window of one is within
the threshold of some indexed window of the other. Multi-index hash tables
(:class:`transform.hamming.HammingIndex`) are built on the query codes and probed by the indexed codes
a block of images at a time; each block's hits are reduced to one per pair at once.

On Dask each block of images is a task: a worker builds the index once (the first of the search's
tasks it runs) and probes it with each block it is given; the driver reduces each block's hits as
they arrive, in order, exactly as the local path does (same candidates, tested), with at most two
blocks per worker thread in flight, so its memory does not grow with the hits of the whole search.

The candidates are filed by their lower row's bucket (``BUCKET_ROWS`` images) as blocks arrive, in
their narrowest types; after the search each bucket is reduced to one candidate per pair, and
:func:`match` verifies a bucket at a time and keeps only the pairs that reach the caller's floor (at
1M images every candidate at once was a 15 GB sort). Heavy buckets (near-uniform scans, icons, logos)
make an image meet very many candidates: ``max_per_image`` keeps its closest ones (by distance, then
row) and counts the rest in ``stats`` (reported by the stage, never silent).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from transform.dedup_codes import WindowCodes, fill
from transform.dedup_match import _C, CENTRE, INDEX_WINDOWS, WINDOWS, Window, aligned_scores, probe_windows, window_codes

BLOCK = 8192  # images whose indexed windows probe the tables at once (bounded memory; 1,024 ran 1.25x slower: fewer neighbouring probes share the cache)
BUCKET_ROWS = 1 << 16  # lower rows per bucket of the pair reduction and verification (bounded driver memory)
VERIFY_BLOCK = 32_768  # candidate pairs a verification task scores (Dask path)
_INDEX: dict = {}  # in a Dask worker process: the running search's index, by search token (_block_hits)
_INDEX_LOCK = threading.Lock()


def _reduce(by: np.ndarray, to: np.ndarray, by_w: np.ndarray, to_w: np.ndarray, dist: np.ndarray,
            max_per_image: int | None, stats: dict) -> tuple[np.ndarray, ...]:
    """Window hits (image ``by``'s probe window ``by_w`` near image ``to``'s query window ``to_w``) -> the
    closest hit per (by, to) and side (as it is or mirrored: ``by_w`` of MIRRORED_WINDOWS), and with
    ``max_per_image`` at most that many per ``by`` image (its closest)."""
    keep = by != to
    stats["window_hits"] += int(keep.sum())
    by, to, by_w, to_w, dist = by[keep], to[keep], by_w[keep], to_w[keep], dist[keep]
    side = by_w >= len(INDEX_WINDOWS)
    order = np.lexsort((by_w, to_w, dist, side, to, by))  # per (by, to, side): the closest hash first
    if len(order):
        o, w, f = by[order], to[order], side[order]
        order = order[np.r_[True, (o[1:] != o[:-1]) | (w[1:] != w[:-1]) | (f[1:] != f[:-1])]]
    if max_per_image is not None and len(order):
        ranked = order[np.lexsort((to[order], dist[order], by[order]))]
        starts = np.r_[True, by[ranked][1:] != by[ranked][:-1]]
        rank = np.arange(len(ranked)) - np.flatnonzero(starts)[np.cumsum(starts) - 1]
        over = rank >= max_per_image
        stats["capped_images"] += int(len(np.unique(by[ranked][over])))
        stats["capped_pairs_dropped"] += int(over.sum())
        order = ranked[~over]
    return by[order], to[order], by_w[order], to_w[order], dist[order]


def _reduce_block(probing: np.ndarray, ii: np.ndarray, qi: np.ndarray, dist: np.ndarray,
                  max_per_image: int | None, stats: dict, table_rows: np.ndarray, m: int) -> np.ndarray:
    """Hits of the ``probing`` images' ``m`` probe windows (``ii``) in the query-window table (``qi``, over
    the images ``table_rows``) -> (5, pairs) owner (of the query window), other, window, ref, dist;
    capped per probing image."""
    k = len(WINDOWS)
    other, owner, ref, window, dist = _reduce(probing[ii // m], table_rows[qi // k], ii % m, qi % k, dist,
                                              max_per_image, stats)
    return _packed(owner, other, window, ref, dist)


def _packed(owner, other, window, ref, dist) -> tuple[np.ndarray, ...]:
    """A block's candidates in the narrowest types (12 bytes a pair, not 40: the driver holds every
    candidate pair of the search, ~10^8 at 1M images)."""
    rows = np.int32 if max(owner.max(initial=0), other.max(initial=0)) < 2**31 else np.int64
    return owner.astype(rows), other.astype(rows), window.astype(np.int16), ref.astype(np.int8), dist.astype(np.int8)


def _closest_per_pair(parts: list[tuple[np.ndarray, ...]], n: int) -> tuple[np.ndarray, ...]:
    """One candidate per unordered pair and side (a pair met from both sides keeps its closest hash; as it
    is and mirrored are verified apart), in the order of (lower row, higher row)."""
    if not parts:
        parts = [_packed(*(np.zeros(0, np.int64),) * 5)]
    owner, other, window, ref, dist = (np.concatenate([p[c] for p in parts]) for c in range(5))
    parts.clear()
    key = (np.minimum(owner, other).astype(np.int64) * n + np.maximum(owner, other)) * 2 + (ref >= len(INDEX_WINDOWS))
    order = np.lexsort((ref, window, owner, dist, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]] if len(order) else order
    return owner[first], other[first], window[first], ref[first]


class PairBuckets:
    """Candidate pairs filed by their lower row's bucket as the search's blocks arrive, so that the
    one-per-pair reduction (:meth:`reduced`) and the verification run a bucket at a time."""

    def __init__(self, n: int, rows: int = BUCKET_ROWS):
        self.n, self.rows = n, rows
        self.parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(max(1, -(-n // rows)))]

    def add(self, packed: tuple[np.ndarray, ...]) -> None:
        if len(self.parts) == 1:
            self.parts[0].append(packed)
            return
        low = np.minimum(packed[0], packed[1]) // self.rows
        order = np.argsort(low, kind="stable")
        bounds = np.searchsorted(low[order], np.arange(len(self.parts) + 1))
        for b, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
            if stop > start:
                self.parts[b].append(tuple(c[order[start:stop]] for c in packed))

    def reduced(self) -> list[tuple[np.ndarray, ...]]:
        """Each bucket's closest candidate per pair (owner, other, window, ref), its blocks' parts freed
        as it is reduced; concatenated in order they are :func:`candidates`' result."""
        return [_closest_per_pair(parts, self.n) for parts in self.parts]


def _block_hits(token: str, table_codes: np.ndarray, thumbs: np.ndarray, threshold: int, plan: tuple[int, int],
                windows: list[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Dask task: one block's ``windows`` codes probe the search's index over ``table_codes``. The
    first task of a search (``token``) to run in a worker process builds the index, the next ones probe
    it: a worker builds it once, and a block's hits are those of the local search."""
    from transform.hamming import HammingIndex

    with _INDEX_LOCK:
        if token not in _INDEX:
            _INDEX.clear()  # an earlier search's index
            _INDEX[token] = HammingIndex(table_codes, threshold, plan=plan)
        index = _INDEX[token]
    return index.query(window_codes(thumbs, windows).ravel())


def _forget_index() -> None:
    """Run on every worker when a search ends: its index is not kept between searches or stage runs."""
    with _INDEX_LOCK:
        _INDEX.clear()


def _hits(table_codes: np.ndarray, thumbs: np.ndarray, rows: np.ndarray, windows: list[Window], max_bits: int,
          block: int, stats: dict, client=None, done=None):
    """Yield (probing rows, (probe code row, table row, distance)) for blocks of ``rows``, in order: the
    codes of their ``windows`` probe multi-index tables over ``table_codes``. Locally one index is built
    and probed ``block`` images at a time; with ``client`` each block is a task (:func:`_block_hits`,
    each worker building the index once), at most two per worker thread in flight, so the driver holds
    one block's hits at a time however many images there are."""
    from transform.hamming import HammingIndex, plan_for

    done = done or (lambda n: None)
    if client is None or len(rows) == 0:
        table = HammingIndex(table_codes, max_bits)
        stats.update(search_chunks=table.m, search_radius=table.r, largest_bucket=table.largest_bucket)
        for start in range(0, len(rows), block):
            probing = rows[start:start + block]
            yield probing, table.query(window_codes(thumbs[probing], windows).ravel())
            done(len(probing))
        return
    from sluice.compute import total_threads

    plan = plan_for(table_codes, max_bits)
    stats.update(search_chunks=plan[0], search_radius=plan[1], largest_bucket=None)
    shared = client.scatter(table_codes, broadcast=True)
    starts, running = deque(range(0, len(rows), block)), deque()
    stats["search_tasks"] = stats.get("search_tasks", 0) + len(starts)
    try:
        while starts or running:
            while starts and len(running) < 2 * total_threads(client):
                start = starts.popleft()
                share = client.scatter(thumbs[rows[start:start + block]])
                running.append((start, client.submit(_block_hits, shared.key, shared, share, max_bits, plan, windows,
                                                     pure=False)))
            start, future = running.popleft()
            hits = future.result()
            future.release()
            probing = rows[start:start + block]
            yield probing, hits
            done(len(probing))
    finally:
        for _, future in running:
            future.cancel()
        client.run(_forget_index)
        shared.release()


def candidates(thumbs: np.ndarray, max_bits: int, max_per_image: int | None = None, block: int = BLOCK,
               stats: dict | None = None, client=None, on_progress=None, bucket_rows: int = BUCKET_ROWS,
               mirrored: bool = False) -> tuple[np.ndarray, ...]:
    """Unordered candidate pairs (a, b, query window of a, indexed window of b): the closest hashes per
    pair, in (lower row, higher row) order; ``stats`` gets the search plan and what a cap dropped;
    ``on_progress(n)`` is called as the search finishes with n images (a block)."""
    return _joined(candidate_buckets(thumbs, max_bits, max_per_image, block, stats, client, on_progress,
                                     bucket_rows=bucket_rows, mirrored=mirrored))


def candidates_touching(thumbs: np.ndarray, new: np.ndarray, max_bits: int, max_per_image: int | None = None,
                        block: int = BLOCK, stats: dict | None = None, client=None, on_progress=None,
                        bucket_rows: int = BUCKET_ROWS, mirrored: bool = False) -> tuple[np.ndarray, ...]:
    """The candidates of :func:`candidates` that involve at least one of the ``new`` rows: what a full
    search adds when those images join the others (an incremental dedup run). Two searches, both probed
    by the new images only: every image's query windows by their indexed windows, and every image's
    indexed windows by their query windows; the cost grows with len(new) x the table, not with N^2.
    The same candidates as :func:`candidates` restricted to pairs with a new image, as long as the cap
    does not bind (here an older image's cap counts only its candidates among one block of new images).
    With ``client`` both searches are Dask tasks, as in :func:`candidates`."""
    return _joined(candidate_buckets(thumbs, max_bits, max_per_image, block, stats, client, on_progress, new=new,
                                     bucket_rows=bucket_rows, mirrored=mirrored))


def _held(codes: WindowCodes | None, which: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if codes is None:
        return None, None
    return (codes.windows, codes.have_windows) if which == "windows" else (codes.probes, codes.have_probes)


def _joined(buckets: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([b[c] for b in buckets]) for c in range(4))


def candidate_buckets(thumbs: np.ndarray, max_bits: int, max_per_image: int | None = None, block: int = BLOCK,
                      stats: dict | None = None, client=None, on_progress=None, new: np.ndarray | None = None,
                      bucket_rows: int = BUCKET_ROWS, among: np.ndarray | None = None, mirrored: bool = False,
                      codes: WindowCodes | None = None) -> list[tuple[np.ndarray, ...]]:
    """:func:`candidates` (or with ``new``, :func:`candidates_touching`) as a list of buckets of
    ``bucket_rows`` lower rows, each (a, b, window, ref) in pair order. With ``among`` (increasing row
    numbers; ``new`` among them) only those images take part. With ``mirrored`` every image is also
    probed by its mirror image's windows (``ref`` >= len(INDEX_WINDOWS): the pair matched with ``b``
    mirrored). ``codes``: the images' window codes known already (kept between runs), filled in as computed."""
    probes = probe_windows(mirrored)
    n = len(thumbs)
    rows = np.arange(n) if among is None else np.asarray(among, np.int64)
    stats = {} if stats is None else stats
    stats.update(window_hits=0, capped_images=0, capped_pairs_dropped=0, search_tasks=0)
    buckets = PairBuckets(n, bucket_rows)
    if new is None:
        for probing, hits in _hits(fill(*_held(codes, "windows"), thumbs, WINDOWS, rows, client), thumbs, rows, probes,
                                   max_bits, block, stats, client, on_progress):
            buckets.add(_reduce_block(probing, *hits, max_per_image, stats, rows, len(probes)))
        return buckets.reduced()
    k, m = len(WINDOWS), len(probes)
    new = np.asarray(new, np.int64)
    done = on_progress or (lambda n: None)
    if n == 0 or len(new) == 0:
        return buckets.reduced()
    probed = [0]  # images probed by the two searches together; progress reports half of it (exactly len(new))

    def progress(r: int) -> None:
        probed[0] += r
        done(probed[0] // 2 - (probed[0] - r) // 2)
    for probing, hits in _hits(fill(*_held(codes, "windows"), thumbs, WINDOWS, rows, client), thumbs, new, probes,
                               max_bits, block, stats, client, progress):
        buckets.add(_reduce_block(probing, *hits, max_per_image, stats, rows, m))
    for probing, (qq, ii, dist) in _hits(fill(*_held(codes, "probes"), thumbs, probes, rows, client), thumbs, new, WINDOWS,
                                         max_bits, block, stats, client, progress):
        other, owner, ref, window, dist = _reduce(rows[ii // m], probing[qq // k], ii % m, qq % k, dist,
                                                  max_per_image, stats)
        buckets.add(_packed(owner, other, window, ref, dist))  # reduced as the full search does, per other
    return buckets.reduced()


def verify(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, window: np.ndarray, ref: np.ndarray,
           plain: np.ndarray | None = None, client=None, block: int | None = None, on_progress=None,
           floor: float = -2.0, shared: list | None = None, min_band: float = -2.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`transform.dedup_match.aligned_scores` of every candidate pair (``floor``, ``min_band``: see there),
    ``block`` (default ``VERIFY_BLOCK``) pairs at a time (``on_progress(n)`` after each); with ``client``, one Dask task per block (the thumbnails sent to
    every worker once, or ``shared``: :func:`_scatter`'s, for several calls; at most two tasks per worker
    thread in flight), so the driver holds the pairs and their scores, never the pixel work. With ``shared``
    the pairs' rows index the scattered thumbnails (``thumbs`` and ``plain`` may then be None), and every
    pair is scored on the workers."""
    done = on_progress or (lambda n: None)
    block = block or VERIFY_BLOCK
    if len(a) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int8)
    if client is None or (shared is None and len(a) <= block):
        parts = []
        for start in range(0, len(a), block):
            sl = slice(start, start + block)
            parts.append(aligned_scores(thumbs, a[sl], b[sl], window[sl], ref[sl], plain=plain, floor=floor,
                                        min_band=min_band))
            done(len(parts[-1][0]))
        if not parts:
            return aligned_scores(thumbs, a, b, window, ref, plain=plain, floor=floor, min_band=min_band)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    from sluice.compute import total_threads

    shared = shared or _scatter(client, thumbs, plain)
    window_size, in_flight, parts = 2 * total_threads(client), deque(), []
    for start in range(0, len(a), block):
        sl = slice(start, start + block)
        in_flight.append(client.submit(aligned_scores, shared[0], a[sl], b[sl], window[sl], ref[sl],
                                       plain=shared[1], floor=floor, min_band=min_band, pure=False))
        while len(in_flight) > window_size:
            parts.append(in_flight.popleft().result())
            done(len(parts[-1][0]))
    for future in in_flight:
        parts.append(future.result())
        done(len(parts[-1][0]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
          mirrored: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_buckets`' pairs, all at once."""
    parts = list(match_buckets(thumbs, max_bits, extra, plain, max_per_image, stats, client, log, new, floor, among,
                               bucket_rows, min_band, mirrored))
    return tuple(np.concatenate([part[c] for part in parts]) for c in range(4))


def match_buckets(thumbs: np.ndarray, max_bits: int, extra: tuple[np.ndarray, np.ndarray] | None = None,
                  plain: np.ndarray | None = None, max_per_image: int | None = None, stats: dict | None = None,
                  client=None, log=None, new: np.ndarray | None = None, floor: float = -2.0,
                  among: np.ndarray | None = None, bucket_rows: int = BUCKET_ROWS, min_band: float = -2.0,
                  mirrored: bool = False, codes: WindowCodes | None = None):
    """Yield, a bucket of ``bucket_rows`` lower rows at a time, the candidate pairs (i < j, in that
    order) of equalised thumbnails with their verification score and geometry (0 aligned, 1 shifted,
    2 cropped, 3 cropped and shifted; + MIRRORED with ``mirrored``, for a pair that matched with one
    image flipped left to right); the caller applies the score threshold, a bucket at a time, so
    that it need not hold the pairs it rejects. ``extra`` pairs (from another signal, e.g. the stored
    whole-image perceptual hash) are verified too. The candidate search (:func:`candidate_buckets`) and
    the verification (:func:`verify`) run on ``client``'s Dask workers when one is given; with ``log``,
    each reports its progress there (sluice.progress.Meter). With ``new`` (row numbers) only pairs with a
    new image are searched (its cost follows the new images). ``floor``: the lowest score the caller
    accepts (see :func:`transform.dedup_match.aligned_scores`): pairs verified below it are not yielded,
    only counted (``stats["below_floor"]``); ``min_band``: the band-pass detail correlation such a pair
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
    if extra is not None and len(extra[0]):
        _add_extra(buckets, *extra, bucket_rows)
    meter = _meter(log, "pixel verification", sum(len(bucket[0]) for bucket in buckets), "pairs")
    shared, held = None, None
    if client is not None and sum(len(bucket[0]) for bucket in buckets) > VERIFY_BLOCK:
        # the workers get the searched images' thumbnails only (at 1M: 0.4 GB each instead of 1.9 GB), where
        # that saves enough to pay for the driver's copy of them (not in a lake of photos: nearly all searched)
        held = np.asarray(among, np.int64) if among is not None and len(among) <= 0.75 * len(thumbs) else None
        shared = _scatter(client, thumbs if held is None else thumbs[held],
                          plain if held is None or plain is None else plain[held])
    stats["below_floor"] = 0
    for number, (a, b, window, ref) in enumerate(buckets):
        buckets[number] = None  # freed as it is verified
        va, vb = (a, b) if held is None else (np.searchsorted(held, a), np.searchsorted(held, b))
        scores, geometry = verify(thumbs if held is None else None, va, vb, window, ref,
                                  plain=plain if held is None else None, client=client,
                                  on_progress=meter and meter.update, floor=floor, shared=shared, min_band=min_band)
        keep = ~(scores < floor)
        stats["below_floor"] += int((~keep).sum())
        i, j = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        scores, geometry = scores[keep], geometry[keep]
        order = np.lexsort((-scores, j, i))  # a pair met twice (window and extra) keeps its higher score
        i, j, scores, geometry = i[order], j[order], scores[order], geometry[order]
        first = np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])] if len(i) else np.zeros(0, bool)
        yield i[first], j[first], scores[first], geometry[first]
    if meter:
        meter.close()


def _add_extra(buckets: list, i: np.ndarray, j: np.ndarray, bucket_rows: int) -> None:
    """Append the ``extra`` pairs to their lower row's bucket, verified from the centre window."""
    centre = WINDOWS.index(Window(_C, _C, CENTRE))
    low = np.minimum(i, j) // bucket_rows
    for number, (a, b, window, ref) in enumerate(buckets):
        mine = low == number
        buckets[number] = (np.concatenate([a, i[mine].astype(a.dtype)]), np.concatenate([b, j[mine].astype(b.dtype)]),
                           np.concatenate([window, np.full(int(mine.sum()), centre, window.dtype)]),
                           np.concatenate([ref, np.zeros(int(mine.sum()), ref.dtype)]))
