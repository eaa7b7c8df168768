"""Near neighbours in Hamming space: every pair of 64-bit codes within a few bits, without all pairs.

Multi-index hashing: split the 64 bits into ``m`` chunks; two codes within ``t`` bits agree within
``t // m`` bits on at least one chunk, so each chunk's bucket table (probed with every flip of up to
that many bits) yields every candidate, which is then checked on all 64 bits. Tighter, and still
exact (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", 2012): with
t = m * r + a (a < m), only a + 1 chunks need radius r and the other m - a - 1 radius r - 1 (were all
of them farther, the codes would differ in at least (a + 1)(r + 1) + (m - a - 1) r = t + 1 bits), so
those chunks are probed with far fewer flips (:func:`radii`). Used by dedup (window
and perceptual hashes) and its benchmark; ``brute_force_pairs`` is the quadratic baseline.

Real hashes are not uniform (smooth or degenerate images share bit patterns; a DCT hash's DC bit is
always set), so the chunks take interleaved bits (chunk c holds bits c, c+m, c+2m, ...: any partition
keeps the pigeonhole exact) and the plan is priced on the index's *measured* bucket occupancy, with
chunk tables up to ``_TABLE_BITS`` wide, so the bucket scan per query stays small as the index grows.
An index is built once (:class:`HammingIndex`), each chunk table keeping its codes in bucket order, and
probed a block of queries at a time, in the order of their chunk key (neighbouring queries then probe
neighbouring buckets, which the previous query brought into the cache: 1.3-1.5x on the whole search at
30k-90k images); the bucket scan is compiled (:mod:`transform.hamming_scan`) and holds only its hits,
so memory stays bounded even for very heavy buckets.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from transform.hamming_scan import bucket_sort, scan

_PROBE_BLOCK = 8192
_TABLE_BITS = 22  # chunks up to this wide get a direct bucket table (2**22 int32 counts: 16 MiB)
# a probe's cost in scanned bucket entries (fitted to whole searches with the compiled scan: on the 90,792
# images of benchmarks/scale.py's 100k lake 4 chunks (occupancy 543) ran 1.26x faster than 3 (occupancy
# 39), which prices a probe at ~40-50 entries; mostly the cache miss at its bucket, an entry being a
# sequential read); a probe of a sorted table adds two binary searches
_PROBE_COST = 45.0
_SEARCH_PROBE_COST = 200.0
_MAX_PROBES = 1 << 22  # probes (bucket start, count) held at once: 64 MiB


def _probes(bits: int, r: int) -> int:
    from math import comb

    return sum(comb(bits, k) for k in range(r + 1))


def radii(m: int, threshold: int) -> list[int]:
    """Probe radius of each of ``m`` chunks for an exact search within ``threshold`` bits: with
    threshold = m * r + a, the last a + 1 chunks (the narrower ones when 64 is not a multiple of m) get
    r and the others r - 1 (-1: that chunk's table is not needed at all)."""
    r, a = divmod(threshold, m)
    return [r - 1] * (m - a - 1) + [r] * (a + 1)  # chunk 0 holds a DCT hash's always-set DC bit: the fullest


def probed_chunks(m: int, threshold: int) -> list[int]:
    """The chunks whose tables an exact search within ``threshold`` bits needs (radius >= 0)."""
    return [c for c, r in enumerate(radii(m, threshold)) if r >= 0]


def _widths(m: int) -> list[int]:
    return [len(range(c, 64, m)) for c in range(m)]


def plan_chunks(n: int, threshold: int, occupancy=None) -> tuple[int, int]:
    """Pick (chunks m, probe radius r) for multi-index hashing of ``n`` 64-bit codes.

    Split the code into m chunks; two codes within ``threshold`` bits agree within r = threshold // m
    bits on at least one chunk (pigeonhole: otherwise every chunk differs in r+1 or more), and only
    some chunks need that radius, the others one less (:func:`radii`). Cost per query ~ the sum over
    chunks of probes(radius) * (probe cost + expected bucket size), where a probe of a direct table costs
    about as much as scanning 45 bucket entries (two binary searches in a sorted table: 200); the expected
    bucket size is n / 2**chunk_bits for uniform codes, or ``occupancy(m)[c]`` (measured, per chunk:
    a DCT hash's always-set DC bit makes chunk 0 about twice as full as the others) when given.
    Pick the cheapest m.
    """
    best = None
    for m in range(2, 17):  # chunks of 32 down to 4 bits
        probe_cost = _PROBE_COST if -(-64 // m) <= _TABLE_BITS else _SEARCH_PROBE_COST
        measured = occupancy(m) if occupancy is not None and -(-64 // m) <= _TABLE_BITS else None
        cost = 0.0
        for c, (bits, radius) in enumerate(zip(_widths(m), radii(m, threshold))):
            occ = measured[c] if measured is not None else n / 2.0 ** bits
            cost += _probes(bits, radius) * (probe_cost + occ)
        if best is None or cost < best[0]:
            best = (cost, m, threshold // m)
    return best[1], best[2]


def _layout(m: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Bit permutation (new position p takes old bit perm[p], MSB first) and chunk bounds for m chunks:
    chunk c holds the old bits c, c+m, c+2m, ... (interleaved, so no chunk holds only the low DCT terms)."""
    perm = np.concatenate([np.arange(c, 64, m) for c in range(m)])
    edges = np.cumsum([0] + [len(range(c, 64, m)) for c in range(m)])
    return perm, list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _permute(codes: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Codes with their bits permuted (bit p, MSB first, takes old bit perm[p]): one lookup per byte in
    a table of what each byte value contributes (8 lookups instead of 64 shift-and-mask passes),
    compiled (:func:`transform.hamming_scan.permute_bytes`)."""
    from transform.hamming_scan import permute_bytes

    where = np.empty(64, np.int64)
    where[perm] = np.arange(64)  # old bit s (MSB first) lands at new position where[s]
    values = np.arange(256, dtype=np.uint64)
    tables = np.zeros((8, 256), np.uint64)
    for byte in range(8):  # byte 0 holds the least significant bits
        for bit in range(8):
            old = 63 - (8 * byte + bit)  # MSB-first index of this bit
            tables[byte] |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(63 - where[old])
    return permute_bytes(np.ascontiguousarray(codes).view(np.uint64), tables)


def _keys(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Chunk [lo, hi) of each code as an integer (int32 up to 31 bits: half the memory of a table's keys)."""
    return ((codes >> np.uint64(64 - hi)) & np.uint64((1 << (hi - lo)) - 1)).astype(np.int32 if hi - lo < 32 else np.int64)


def plan_for(codes: np.ndarray, threshold: int) -> tuple[int, int]:
    """:func:`plan_chunks` priced on the measured bucket occupancy of ``codes`` (a sample of them)."""
    codes = np.ascontiguousarray(codes).view(np.uint64)
    n = len(codes)
    sample = codes[:: max(1, n // 200_000)]
    def occupancy(m: int) -> list[float]:  # per chunk: expected bucket size met by a query distributed like the codes
        perm, bounds = _layout(m)
        keys = _permute(sample, perm)
        return [float((np.bincount(_keys(keys, lo, hi)).astype(np.float64) ** 2).sum()) / len(sample) ** 2 * n
                for lo, hi in bounds]

    return plan_chunks(n, threshold, occupancy if n else None)


class HammingIndex:
    """Multi-index hash tables over ``index`` codes, probed by blocks of queries (see :meth:`query`)."""

    def __init__(self, index: np.ndarray, threshold: int, plan: tuple[int, int] | None = None):
        """``plan`` (m, r) skips the pricing (a Dask search prices it once for all its workers)."""
        self.codes = np.ascontiguousarray(index).view(np.uint64)
        self.threshold = threshold
        self.m, self.r = plan or plan_for(self.codes, threshold)
        self.perm, bounds = _layout(self.m)
        radius = radii(self.m, threshold)
        chunks = probed_chunks(self.m, threshold)
        self.bounds = [bounds[c] for c in chunks]
        permuted = _permute(self.codes, self.perm)
        self.tables = []
        for c, (lo, hi) in zip(chunks, self.bounds):
            key = _keys(permuted, lo, hi)
            if hi - lo <= _TABLE_BITS:  # direct bucket table: O(1) per probe instead of two binary searches
                count, start, order, codes = bucket_sort(key, self.codes, 1 << (hi - lo))
                table = {"order": order, "codes": codes, "width": hi - lo, "count": count, "start": start}
            else:
                # row numbers as int32 while they fit (118 window codes an image: 18M images): 12 bytes a
                # code per chunk table instead of 16
                order = np.argsort(key, kind="stable").astype(np.int32 if len(key) < 2**31 else np.int64)
                table = {"order": order, "codes": self.codes[order], "width": hi - lo, "sorted": key[order]}
            table["flips"] = np.asarray([0] + [sum(1 << b for b in bits) for k in range(1, radius[c] + 1)
                                               for bits in combinations(range(hi - lo), k)], np.int64)
            self.tables.append(table)
        self.largest_bucket = max((int(t["count"].max()) for t in self.tables if "count" in t), default=0)

    def _probe(self, table: dict, qkey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probe = (qkey[:, None] ^ table["flips"][None, :])
        if "count" in table:
            return table["start"][probe], table["count"][probe]
        first = np.searchsorted(table["sorted"], probe, "left")
        return first, np.searchsorted(table["sorted"], probe, "right") - first

    def query(self, queries: np.ndarray, upper_offset: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query row, index row) pair within the threshold, with its distance, each pair once.
        ``upper_offset``: the queries are index rows offset.. (a self-join): keep only query row + offset
        < index row."""
        queries = np.ascontiguousarray(queries).view(np.uint64)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(self.codes) == 0 or len(queries) == 0:
            return empty
        permuted = _permute(queries, self.perm)
        found_i, found_j = [], []
        for (lo, hi), table in zip(self.bounds, self.tables):
            qkey = _keys(permuted, lo, hi)
            by_key = np.argsort(qkey, kind="stable")  # neighbouring queries probe neighbouring buckets: cache reuse
            step = max(64, min(_PROBE_BLOCK, _MAX_PROBES // len(table["flips"])))  # bounded probe arrays
            for start in range(0, len(queries), step):
                q = by_key[start:start + step]
                first, count = self._probe(table, qkey[q])
                qi, qj = scan(q, first, count, table["codes"], table["order"], queries, self.threshold, upper_offset)
                found_i.append(qi)
                found_j.append(qj)
        if not found_i:
            return empty
        i, j = np.concatenate(found_i), np.concatenate(found_j)
        if len(self.bounds) > 1:  # a pair agreeing on several chunks was found once per chunk
            _, first = np.unique(i * len(self.codes) + j, return_index=True)
            i, j = i[first], j[first]
        return i, j, np.bitwise_count(queries[i] ^ self.codes[j]).astype(np.int64)


def near_pairs(codes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All index pairs (i < j) whose codes differ in <= ``threshold`` bits, with their distance.

    Exact (recall 1.0 against brute force by the pigeonhole argument in :func:`plan_chunks`); work
    grows with the number of candidates, not with n^2.
    """
    i, j, dist = near_pairs_between(codes, codes, threshold, upper=True)
    order = np.lexsort((j, i))
    return i[order], j[order], dist[order]



def near_pairs_touching(codes: np.ndarray, rows: np.ndarray | None, threshold: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`near_pairs` restricted to the pairs with a row of ``rows`` (all pairs when None): the rows'
    codes probe a table of every code, so the work follows the rows, not the whole list (an incremental
    dedup's new images: 0.25 vs 2.2 s over 935k perceptual hashes)."""
    if rows is None:
        return near_pairs(codes, threshold)
    rows = np.asarray(rows, np.int64)
    qi, j, dist = near_pairs_between(codes[rows], codes, threshold)
    i = rows[qi]
    lo, hi, dist = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j], dist[i != j]
    _, first = np.unique(lo * len(codes) + hi, return_index=True)  # a pair of two rows is met twice; sorted
    return lo[first], hi[first], dist[first]


def near_pairs_between(queries: np.ndarray, index: np.ndarray, threshold: int,
                       upper: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query row, index row) pair within ``threshold`` bits, with the distance (unsorted, no
    duplicates). ``upper`` keeps only query row < index row (a self-join of one code list). Bucket
    tables are built on ``index``; queries probe them a block at a time, so memory stays bounded
    however many queries there are."""
    if len(index) == 0 or len(queries) == 0 or (upper and len(index) < 2):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return HammingIndex(index, threshold).query(queries, 0 if upper else None)
def brute_force_pairs(codes: np.ndarray, threshold: int, block: int = 2048,
                      query_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: every pair's Hamming distance, in row blocks (memory-bounded, still n^2 work).

    ``query_rows`` limits the queries to the first rows (each still compared with every code), so a
    benchmark can time a slice of the quadratic work and scale it up.
    """
    codes = np.ascontiguousarray(codes).view(np.uint64)
    stop = len(codes) if query_rows is None else min(query_rows, len(codes))
    out_i, out_j = [], []
    for start in range(0, stop, block):
        rows = codes[start:min(start + block, stop)]
        d = np.bitwise_count(rows[:, None] ^ codes[None, :])
        i, j = np.nonzero(d <= threshold)
        i += start
        keep = i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
    i, j = (np.concatenate(out_i), np.concatenate(out_j)) if out_i else (np.zeros(0, np.int64),) * 2
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64)
