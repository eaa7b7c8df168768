"""The Dask client helper: LocalCluster sized to the machine, or an existing scheduler."""

from __future__ import annotations

import socket

import pytest

from sluice.compute import dask_client, local_workers, total_threads
from sluice.config import ComputeParams, parse_params
from sluice.errors import ConfigError


def test_local_workers_sized_to_the_machine():
    from dask.system import CPU_COUNT

    assert local_workers(ComputeParams()) == CPU_COUNT
    assert local_workers(ComputeParams(threads_per_worker=CPU_COUNT * 2)) == 1
    assert local_workers(ComputeParams(n_workers=3)) == 3


def test_local_cluster_runs_tasks_in_worker_processes(capsys):
    import os

    with dask_client(ComputeParams(n_workers=1, memory_limit="512MiB"), stage="t") as client:
        assert total_threads(client) == 1
        assert client.submit(os.getpid, pure=False).result() != os.getpid()
        address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    assert "[t] dask: LocalCluster 1 workers x 1 threads" in capsys.readouterr().err


def test_existing_scheduler_by_address_and_env(monkeypatch, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        monkeypatch.setenv("SLUICE_DASK_SCHEDULER", cluster.scheduler_address)
        params = parse_params({})
        assert params.compute.scheduler_address == cluster.scheduler_address
        with dask_client(params.compute, stage="t") as client:
            assert total_threads(client) == 2 and client.submit(sum, [1, 2]).result() == 3
        assert f"connected to {cluster.scheduler_address} (1 workers)" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_config_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"cannot reach a Dask scheduler at tcp://127.0.0.1:{port}"):
        with dask_client(ComputeParams(scheduler_address=f"tcp://127.0.0.1:{port}")):
            pass
