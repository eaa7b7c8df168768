"""sluice.read_ahead: results in order, several at once, bounded, errors where they happen."""

from __future__ import annotations

import threading
import time

import pytest

from sluice.read_ahead import ordered


def test_results_come_in_the_items_order_whatever_order_they_finish_in():
    def slow_first(k: int) -> int:
        time.sleep(0.02 if k % 3 == 0 else 0.0)
        return k * k

    assert list(ordered(slow_first, range(50), threads=4)) == [k * k for k in range(50)]


def test_reads_overlap_up_to_the_thread_count():
    together = threading.Barrier(4, timeout=10)  # broken unless 4 reads run at once
    running, most = [0], [0]
    lock = threading.Lock()

    def read(k: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if k < 4:
            together.wait()
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return k

    assert list(ordered(read, range(24), threads=4)) == list(range(24))
    assert most[0] == 4  # never more than the threads


def test_one_thread_runs_in_the_callers_thread():
    caller = threading.get_ident()
    assert list(ordered(lambda k: threading.get_ident(), range(3), threads=1)) == [caller] * 3


def test_results_held_ahead_stay_within_the_budget():
    """Large results are read few at a time: at most budget // largest ahead once one is seen."""
    started, consumed = [], []

    def read(k: int) -> bytes:
        started.append(k)
        return bytes(1000)
    budget = 3000
    for k, _ in enumerate(ordered(read, range(40), threads=8, budget=budget, size=len)):
        consumed.append(k)
        time.sleep(0.002)  # the consumer is slower: reads would run far ahead without the budget
        if k >= 8:  # past the first reads (made before any size was known)
            assert len(started) - len(consumed) <= budget // 1000 + 1
    assert consumed == list(range(40))


def test_an_error_reaches_the_consumer_at_its_item():
    def read(k: int) -> int:
        if k == 5:
            raise ValueError("bad item 5")
        return k
    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        for value in ordered(read, range(10), threads=3):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_closing_early_stops_reading():
    started = []

    def read(k: int) -> int:
        started.append(k)
        time.sleep(0.01)
        return k
    items = ordered(read, range(1000), threads=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    time.sleep(0.05)
    assert len(started) < 20
