"""The bucket scan of multi-index hashing, compiled (numba).

A probe of :class:`transform.hamming.HammingIndex` names a run of a chunk table's bucket-sorted codes;
every code in the run is compared with the query on all 64 bits. On real data that is billions of
comparisons for a few hundred thousand hits (CIFAR-10's 60k images: ~9e9 for ~2e5), so the scan is
the search's whole cost. In NumPy each scanned entry cost several passes over gathered temporaries
(repeat, index, XOR, popcount, compress: ~50 ns an entry); here it is one sequential read and a
popcount, and only the hits are written. Each bucket is first counted by a branch-free loop that the
compiler vectorises (LLVM's ctpop on 4 codes at a time with AVX2); only a bucket holding a hit is
read again to write it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _popcount(typingctx, x):
    """LLVM's ctpop of a uint64: one instruction, and vectorisable inside a loop (NumPy's bitwise_count
    is not available in compiled code)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@njit(inline="always")
def _near_in(code, bucket_codes, lo, hi, threshold):
    """How many of ``bucket_codes[lo:hi]`` are within ``threshold`` bits of ``code``: a branch-free
    reduction the compiler vectorises (hits are rare, so most buckets are read by this pass alone)."""
    near = 0
    for p in range(lo, hi):
        near += np.int64(_popcount(code ^ bucket_codes[p]) <= threshold)
    return near


@njit(nogil=True, cache=True)
def _scan(rows, first, count, bucket_codes, order, queries, threshold, upper_offset, out_i, out_j, start):
    """Hits of queries ``rows[start:]``: query row r's probe f covers ``bucket_codes[first[r, f]:][:count[r, f]]``
    (``order`` maps a position there to its index row). Writes (query row, index row) into ``out_i/out_j``
    and returns (hits written, the next row to scan): a row whose hits do not fit is left whole for the
    next call (with ``upper_offset`` >= 0 only index rows > query row + offset count)."""
    n = 0
    cap = len(out_i)
    limit = np.uint64(threshold)  # unsigned, as the popcount: a mixed comparison would go through floats
    for a in range(start, len(rows)):
        row = rows[a]
        code = queries[row]
        written = n
        for f in range(first.shape[1]):
            lo = first[a, f]
            hi = lo + count[a, f]
            if _near_in(code, bucket_codes, lo, hi, limit) == 0:
                continue
            for p in range(lo, hi):
                if _popcount(code ^ bucket_codes[p]) <= limit:
                    j = order[p]
                    if upper_offset >= 0 and row + upper_offset >= j:
                        continue
                    if n == cap:
                        return written, a
                    out_i[n] = row
                    out_j[n] = j
                    n += 1
    return n, len(rows)


def scan(rows: np.ndarray, first: np.ndarray, count: np.ndarray, bucket_codes: np.ndarray, order: np.ndarray,
         queries: np.ndarray, threshold: int, upper_offset: int | None = None,
         capacity: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Every (query row, index row) within ``threshold`` bits among the probed buckets (see :func:`_scan`),
    written ``capacity`` hits at a time (grown when one row alone has more): memory follows the hits,
    never the scanned entries."""
    cap = capacity
    out_i, out_j = np.empty(cap, np.int64), np.empty(cap, np.int64)
    got_i, got_j = [], []
    start = 0
    offset = -1 if upper_offset is None else int(upper_offset)
    while start < len(rows):
        n, nxt = _scan(rows, first, count, bucket_codes, order, queries, threshold, offset, out_i, out_j, start)
        got_i.append(out_i[:n].copy())
        got_j.append(out_j[:n].copy())
        if nxt < len(rows) and nxt == start and n == 0:  # one row's hits alone exceed the buffer
            cap *= 4
            out_i, out_j = np.empty(cap, np.int64), np.empty(cap, np.int64)
        start = nxt
    if not got_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(got_i), np.concatenate(got_j)


# ---------------------------------------------------------------------------- building the tables
@njit(nogil=True, cache=True)
def _permute_bytes(codes, tables, out):
    """``out[k]`` = the OR over the 8 bytes b of ``codes[k]`` of ``tables[b, byte value]``: a bit
    permutation by byte lookups, one pass over the codes (NumPy made 8 passes of 5 temporaries)."""
    for k in range(len(codes)):
        code = codes[k]
        value = np.uint64(0)
        for b in range(8):
            value |= tables[b, (code >> np.uint64(8 * b)) & np.uint64(255)]
        out[k] = value


def permute_bytes(codes: np.ndarray, tables: np.ndarray) -> np.ndarray:
    out = np.empty(len(codes), np.uint64)
    _permute_bytes(np.ascontiguousarray(codes, np.uint64), tables, out)
    return out


@njit(nogil=True, cache=True)
def _bucket_sort(keys, codes, count, start, order, sorted_codes):
    for k in range(len(keys)):
        count[keys[k]] += 1
    total = 0
    for b in range(len(count)):
        start[b] = total
        total += count[b]
    at = start.copy()
    for k in range(len(keys)):  # rows in increasing order: stable, as argsort(kind="stable")
        p = at[keys[k]]
        order[p] = k
        sorted_codes[p] = codes[k]
        at[keys[k]] = p + 1


def bucket_sort(keys: np.ndarray, codes: np.ndarray, buckets: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A direct table by counting sort: (count and start of each of ``buckets`` keys, the rows in key
    order (stable; int32 while they fit), the codes in that order). One pass to count, one to place:
    no comparison sort, no separate gather."""
    n = len(keys)
    count, start = np.zeros(buckets, np.int64), np.empty(buckets, np.int64)
    order = np.empty(n, np.int32 if n < 2**31 else np.int64)
    sorted_codes = np.empty(n, np.uint64)
    _bucket_sort(np.ascontiguousarray(keys), np.ascontiguousarray(codes, np.uint64), count, start, order, sorted_codes)
    return count, start, order, sorted_codes
