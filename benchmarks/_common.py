"""Helpers shared by the benchmark scripts: best-of-N timing and a ratio line."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 3, setup=None) -> float:
    """Minimum wall time of ``fn()`` over ``repeat`` runs (the least noisy estimate on a shared box)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ratio_line(name: str, ours: float, baseline_name: str, baseline: float, target: float | None = None,
               higher_is_better: bool = True) -> str:
    """``name: X.XXx <baseline>`` where > 1 means ours is faster (time ratio baseline/ours)."""
    r = baseline / ours if higher_is_better else ours / baseline
    verdict = "" if target is None else ("  [meets target >= %.2fx]" % target if r >= target else "  [BELOW target >= %.2fx]" % target)
    return f"{name}: {r:.2f}x {baseline_name} (ours {ours:.3f}s, baseline {baseline:.3f}s){verdict}"
