"""Near neighbours in Hamming space: every pair of 64-bit codes within a few bits, without all pairs.

Multi-index hashing: split the 64 bits into ``m`` chunks; two codes within ``t`` bits agree within
``t // m`` bits on at least one chunk, so each chunk's bucket table (probed with every flip of up to
that many bits) yields every candidate, which is then checked on all 64 bits. Used by dedup (window
and perceptual hashes) and its benchmark; ``brute_force_pairs`` is the quadratic baseline.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

_PROBE_BLOCK = 8192
_TABLE_BITS = 20  # chunks up to this wide get a direct bucket table (8 MiB at 20 bits)
_PROBE_COST = 8.0


def plan_chunks(n: int, threshold: int) -> tuple[int, int]:
    """Pick (chunks m, probe radius r) for multi-index hashing of ``n`` 64-bit codes.

    Split the code into m chunks; two codes within ``threshold`` bits agree within r = threshold // m
    bits on at least one chunk (pigeonhole: otherwise every chunk differs in r+1 or more). Cost per
    query ~ m * probes(r) * (probe cost + n / 2**chunk_bits) under uniform codes, where a probe (two
    binary searches) costs about as much as verifying 8 candidates, a table lookup a quarter of that;
    pick the cheapest m.
    """
    from math import comb

    best = None
    for m in range(2, 17):  # chunks of 32 down to 4 bits
        bits = 64 // m
        r = threshold // m
        probes = sum(comb(bits, k) for k in range(r + 1))
        probe_cost = _PROBE_COST / 4 if bits <= _TABLE_BITS else _PROBE_COST
        cost = m * probes * (probe_cost + n / 2.0 ** bits)
        if best is None or cost < best[0]:
            best = (cost, m, r)
    return best[1], best[2]


def _chunk_bounds(m: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, 64, m + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def near_pairs(codes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All index pairs (i < j) whose codes differ in <= ``threshold`` bits, with their distance.

    Exact (recall 1.0 against brute force by the pigeonhole argument in :func:`plan_chunks`); work
    grows with the number of candidates, not with n^2.
    """
    i, j, _ = near_pairs_between(codes, codes, threshold, upper=True)
    pairs = np.unique(np.stack([i, j], axis=1), axis=0) if len(i) else np.zeros((0, 2), np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    codes = np.ascontiguousarray(codes).view(np.uint64)
    return i, j, np.bitwise_count(codes[i] ^ codes[j]).astype(np.int64)


def near_pairs_between(queries: np.ndarray, index: np.ndarray, threshold: int,
                       upper: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query row, index row) pair within ``threshold`` bits, with the distance (unsorted, no
    duplicates unless the index holds equal codes). ``upper`` keeps only query row < index row (a
    self-join of one code list). Bucket tables are built on ``index``; queries probe them a block at a
    time, so memory stays bounded however many queries there are."""
    queries = np.ascontiguousarray(queries).view(np.uint64)
    codes = np.ascontiguousarray(index).view(np.uint64)
    n = len(codes)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n == 0 or len(queries) == 0 or (upper and n < 2):
        return empty
    m, r = plan_chunks(n, threshold)
    found_i, found_j = [], []
    for lo, hi in _chunk_bounds(m):
        width = hi - lo
        shift, mask = np.uint64(64 - hi), np.uint64((1 << width) - 1)
        key, qkey = ((codes >> shift) & mask).astype(np.int64), ((queries >> shift) & mask).astype(np.int64)
        order = np.argsort(key, kind="stable")
        sorted_keys = key[order]
        if width <= _TABLE_BITS:  # direct bucket table: O(1) per probe instead of two binary searches
            bucket_count = np.bincount(key, minlength=1 << width)
            bucket_start = np.cumsum(bucket_count) - bucket_count
        flips = np.asarray([0] + [sum(1 << b for b in bits) for k in range(1, r + 1)
                                  for bits in combinations(range(width), k)], np.int64)
        for start in range(0, len(queries), _PROBE_BLOCK):  # bounded memory: one block of queries at a time
            q = np.arange(start, min(start + _PROBE_BLOCK, len(queries)), dtype=np.int64)
            probe = (qkey[q, None] ^ flips[None, :]).ravel()
            if width <= _TABLE_BITS:
                first, count = bucket_start[probe], bucket_count[probe]
            else:
                first = np.searchsorted(sorted_keys, probe, "left")
                count = np.searchsorted(sorted_keys, probe, "right") - first
            total = int(count.sum())
            if total == 0:
                continue
            qi = np.repeat(np.repeat(q, len(flips)), count)
            offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
            qj = order[np.repeat(first, count) + offset]
            if upper:
                keep = qi < qj
                qi, qj = qi[keep], qj[keep]
            close = np.bitwise_count(queries[qi] ^ codes[qj]) <= threshold
            found_i.append(qi[close])
            found_j.append(qj[close])
    if not found_i:
        return empty
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    if m > 1:  # a pair agreeing on several chunks was found once per chunk
        key = i * n + j
        _, first = np.unique(key, return_index=True)
        i, j = i[first], j[first]
    return i, j, np.bitwise_count(queries[i] ^ codes[j]).astype(np.int64)


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
