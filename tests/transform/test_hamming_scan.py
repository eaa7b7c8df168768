"""The compiled bucket scan: the same hits as comparing every probed entry by hand, whatever the output
buffer's size (rows that do not fit are rescanned whole, a row larger than the buffer grows it), and
the self-join's upper-triangle filter; and the counting sort that builds a direct table."""

from __future__ import annotations

import numpy as np
import pytest

from transform.hamming_scan import bucket_sort, scan


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 2**63, 500, dtype=np.int64).view(np.uint64)
    table[250:] = table[:250] ^ rng.integers(0, 2**6, 250).astype(np.uint64)  # near copies: hits
    order = rng.permutation(len(table)).astype(np.int64)
    bucket_codes = table[order]
    queries = table.copy()
    rows = np.arange(len(queries), dtype=np.int64)
    # a row's probes are distinct buckets: disjoint runs (thirds of the table)
    first = (np.arange(3) * 166 + rng.integers(0, 66, (len(rows), 3))).astype(np.int64)
    count = rng.integers(0, 100, (len(rows), 3)).astype(np.int64)
    return rows, first, count, bucket_codes, order, queries


def _by_hand(rows, first, count, bucket_codes, order, queries, threshold, upper_offset=None):
    hits = set()
    for a, row in enumerate(rows):
        for f in range(first.shape[1]):
            for p in range(first[a, f], first[a, f] + count[a, f]):
                j = order[p]
                if upper_offset is not None and row + upper_offset >= j:
                    continue
                if int(np.bitwise_count(queries[row] ^ bucket_codes[p])) <= threshold:
                    hits.add((int(row), int(j)))
    return hits


@pytest.mark.parametrize("capacity", [1, 3, 1 << 16])
@pytest.mark.parametrize("upper_offset", [None, 0])
def test_scan_finds_every_hit_whatever_the_buffer(capacity, upper_offset):
    problem = _problem()
    i, j = scan(*problem, threshold=20, upper_offset=upper_offset, capacity=capacity)
    got = list(zip(i.tolist(), j.tolist()))
    expected = _by_hand(*problem, threshold=20, upper_offset=upper_offset)
    assert len(expected) > 50  # the near copies are met
    assert len(got) == len(set(got))  # a rescanned row is not written twice
    assert set(got) == expected


def test_scan_of_nothing():
    rows, first, count, bucket_codes, order, queries = _problem()
    i, j = scan(rows[:0], first[:0], count[:0], bucket_codes, order, queries, threshold=10)
    assert len(i) == len(j) == 0


def test_bucket_sort_is_a_stable_argsort_with_the_bucket_bounds():
    rng = np.random.default_rng(7)
    for n, buckets in ((0, 16), (1, 16), (5_000, 64), (20_000, 1 << 16)):
        keys = rng.integers(0, buckets // 2, n).astype(np.int32)  # half the buckets stay empty
        codes = rng.integers(0, 2**63, n, dtype=np.int64).view(np.uint64)
        count, start, order, sorted_codes = bucket_sort(keys, codes, buckets)
        want = np.argsort(keys, kind="stable")
        assert order.dtype == np.int32 and np.array_equal(order, want)
        assert np.array_equal(sorted_codes, codes[want])
        assert np.array_equal(count, np.bincount(keys, minlength=buckets))
        assert np.array_equal(start, np.cumsum(count) - count)
