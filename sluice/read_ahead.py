"""Reading files ahead of their consumer: ``fn`` over items on a few threads, results in the items' order.

Ingest reads every file once, then hashes and commits it. One thread reading one file at a time leaves
the disk idle while the process hashes and commits, and keeps one request in flight where an SSD, a
RAID or a network share serves many at once; with the files not in the page cache (a folder larger than
memory, a share) reading was the larger half of ingest. Here up to ``threads`` reads run while the
consumer works, and the results come back in order, so everything downstream (batches, commits, the
quarantine, a rerun) is exactly what one thread gives.

Memory stays bounded: the reads held ahead of the consumer are capped at ``budget`` bytes, judged by the
largest result seen so far (``size(result)``): small photos are read many at a time, 50 MB scans one
or two at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered(fn: Callable[[T], R], items: Iterable[T], threads: int = 8, budget: int = 64 << 20,
            size: Callable[[R], int] = lambda result: 0) -> Iterator[R]:
    """``fn(item)`` for each of ``items``, in order, computed up to ``threads`` at a time ahead of the
    consumer, with at most ``budget`` bytes (by ``size``) of results held ahead; ``threads`` 1 (or
    less) runs them one at a time in the caller's thread. An exception ``fn`` raises reaches the
    consumer at that item, as it would without threads; closing the iterator early cancels the reads
    not started (those running finish first)."""
    if threads <= 1:
        yield from map(fn, items)
        return
    largest = 0
    pending: deque = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="read-ahead") as pool:
        try:
            for item in items:
                # ahead: ``threads`` while nothing is known, then as many of the largest seen as fit the budget
                ahead = threads if largest == 0 else max(1, min(4 * threads, budget // largest))
                while len(pending) >= ahead:
                    result = pending.popleft().result()
                    largest = max(largest, size(result))
                    yield result
                    ahead = max(1, min(4 * threads, budget // max(largest, 1)))
                pending.append(pool.submit(fn, item))
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
