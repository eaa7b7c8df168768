"""A Dask client for every stage, from the ``compute`` section of params.

By default a ``LocalCluster`` of worker processes sized to the machine (the CPUs this process may
use, cgroup limits included) on 127.0.0.1; with ``compute.scheduler_address`` (or
``SLUICE_DASK_SCHEDULER``) the same code runs on an existing cluster instead. The dashboard address
is printed when there is one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sluice.config import ComputeParams
from sluice.errors import ConfigError


def local_workers(compute: ComputeParams) -> int:
    """Worker processes for a LocalCluster: ``n_workers``, or one per ``threads_per_worker`` CPUs."""
    from dask.system import CPU_COUNT

    return compute.n_workers or max(1, CPU_COUNT // compute.threads_per_worker)


@contextmanager
def dask_client(compute: ComputeParams, *, stage: str = "dask") -> Iterator["distributed.Client"]:  # noqa: F821
    """Yield a connected ``distributed.Client``; the cluster (if we started it) is closed on exit."""
    from distributed import Client, LocalCluster

    if compute.scheduler_address:
        try:
            client = Client(compute.scheduler_address, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"compute.scheduler_address: cannot reach a Dask scheduler at "
                              f"{compute.scheduler_address} ({err.__class__.__name__}); start one or unset it") from None
        try:
            workers = len(client.nthreads())
            print(f"[{stage}] dask: connected to {compute.scheduler_address} ({workers} workers)"
                  + _dashboard(client), file=sys.stderr)
            yield client
        finally:
            client.close()
        return

    n = local_workers(compute)
    cluster = LocalCluster(n_workers=n, threads_per_worker=compute.threads_per_worker,
                           memory_limit=compute.memory_limit, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            print(f"[{stage}] dask: LocalCluster {n} workers x {compute.threads_per_worker} threads"
                  + _dashboard(client), file=sys.stderr)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def total_threads(client) -> int:
    """Threads across the cluster's workers (at least 1), to size how much work to keep in flight."""
    return max(1, sum(client.nthreads().values()))


def _dashboard(client) -> str:
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:  # the scheduler serves no dashboard without it
        return "; no dashboard (install bokeh for one)"
    try:
        link = client.dashboard_link
    except Exception:  # no dashboard (bokeh not installed, or disabled on the scheduler)
        return ""
    return f"; dashboard {link}" if link else ""
