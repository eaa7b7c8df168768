"""Dedup's candidate search: window hashes of every pair of images within ``dedup.near_threshold`` bits.

Each image has 118 query-window codes and 4 indexed-window codes (:mod:`transform.dedup_match`; 4 more
of its mirror image with ``mirrored``); a pair is a candidate when some query window of one is within
the threshold of some indexed window of the other. Multi-index hash tables
(:class:`transform.hamming.HammingIndex`) are built on the query codes and probed by the indexed codes
a block of images at a time; each block's hits are reduced at once to the ``ALIGNMENTS`` closest per pair.

On Dask each block of images is a task: a worker builds the index once (the first of the search's
tasks it runs) and probes it with each block it is given; the driver reduces each block's hits as
they arrive, in order, exactly as the local path does (same candidates, tested), with at most two
blocks per worker thread in flight, so its memory does not grow with the hits of the whole search.

The candidates are filed by their lower row's bucket (``BUCKET_ROWS`` images) as blocks arrive, in
their narrowest types; after the search each bucket is reduced to its closest hits per pair, and
:func:`transform.dedup_check.match` verifies a bucket at a time and keeps only the pairs that reach the caller's floor (at
1M images every candidate at once was a 15 GB sort). Heavy buckets (near-uniform scans, icons, logos)
make an image meet very many candidates: ``max_per_image`` keeps its closest ones (by distance, then
row) and counts the rest in ``stats`` (reported by the stage, never silent).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from transform.dedup_codes import WindowCodes, fill
from transform.dedup_match import INDEX_WINDOWS, WINDOWS, Window, probe_windows, window_codes

BLOCK = 8192  # images whose indexed windows probe the tables at once (bounded memory; 1,024 ran 1.25x slower: fewer neighbouring probes share the cache)
BUCKET_ROWS = 1 << 16  # lower rows per bucket of the pair reduction and verification (bounded driver memory)
# window hits kept per pair and side, the closest hashes first: the closest hash is not always the alignment
# that holds, so the check tries the next ones where the closest falls short (transform/dedup_check.py)
ALIGNMENTS = 4
_INDEX: dict = {}  # in a Dask worker process: the running search's index, by search token (_block_hits)
_INDEX_LOCK = threading.Lock()


def _reduce(by: np.ndarray, to: np.ndarray, by_w: np.ndarray, to_w: np.ndarray, dist: np.ndarray,
            max_per_image: int | None, stats: dict) -> tuple[np.ndarray, ...]:
    """Window hits (image ``by``'s probe window ``by_w`` near image ``to``'s query window ``to_w``) -> the
    ``ALIGNMENTS`` closest hits per (by, to) and side (as it is or mirrored: ``by_w`` of MIRRORED_WINDOWS),
    and with ``max_per_image`` at most that many (by, to) pairs per ``by`` image (its closest), every hit of a
    pair dropped with it."""
    keep = by != to
    stats["window_hits"] += int(keep.sum())
    by, to, by_w, to_w, dist = by[keep], to[keep], by_w[keep], to_w[keep], dist[keep]
    side = by_w >= len(INDEX_WINDOWS)
    order = np.lexsort((by_w, to_w, dist, side, to, by))  # per (by, to, side): the closest hash first
    if len(order):
        o, w, f = by[order], to[order], side[order]
        starts = np.r_[True, (o[1:] != o[:-1]) | (w[1:] != w[:-1]) | (f[1:] != f[:-1])]
        closest, kept = order[starts], np.ones(int(starts.sum()), bool)
        if max_per_image is not None:
            ranked = np.lexsort((to[closest], dist[closest], by[closest]))
            b = by[closest][ranked]
            over = ranked[_rank_in_runs(np.r_[True, b[1:] != b[:-1]]) >= max_per_image]
            stats["capped_images"] += int(len(np.unique(by[closest][over])))
            stats["capped_pairs_dropped"] += len(over)
            kept[over] = False
        order = order[(_rank_in_runs(starts) < ALIGNMENTS) & kept[np.cumsum(starts) - 1]]
    return by[order], to[order], by_w[order], to_w[order], dist[order]


def _rank_in_runs(starts: np.ndarray) -> np.ndarray:
    """Each row's place in its run of rows (a run begins where ``starts`` is True)."""
    return np.arange(len(starts)) - np.flatnonzero(starts)[np.cumsum(starts) - 1]


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
    """The ``ALIGNMENTS`` closest hashes per unordered pair and side (whichever image's windows they came
    from; as it is and mirrored are verified apart), in the order of (lower row, higher row), the closest
    first."""
    if not parts:
        parts = [_packed(*(np.zeros(0, np.int64),) * 5)]
    owner, other, window, ref, dist = (np.concatenate([p[c] for p in parts]) for c in range(5))
    parts.clear()
    key = (np.minimum(owner, other).astype(np.int64) * n + np.maximum(owner, other)) * 2 + (ref >= len(INDEX_WINDOWS))
    order = np.lexsort((ref, window, owner, dist, key))
    if len(order):  # a hit met twice (an incremental run's two searches, both images new) counts once
        k, o, w, r = key[order], owner[order], window[order], ref[order]
        order = order[np.r_[True, (k[1:] != k[:-1]) | (o[1:] != o[:-1]) | (w[1:] != w[:-1]) | (r[1:] != r[:-1])]]
        order = order[_rank_in_runs(np.r_[True, key[order][1:] != key[order][:-1]]) < ALIGNMENTS]
    return owner[order], other[order], window[order], ref[order]


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
        """Each bucket's closest candidates per pair (owner, other, window, ref), its blocks' parts freed
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
    shared = client.scatter(table_codes, broadcast=True, hash=False)
    starts, running = deque(range(0, len(rows), block)), deque()
    stats["search_tasks"] = stats.get("search_tasks", 0) + len(starts)
    try:
        while starts or running:
            while starts and len(running) < 2 * total_threads(client):
                start = starts.popleft()
                share = client.scatter(thumbs[rows[start:start + block]], hash=False)
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
