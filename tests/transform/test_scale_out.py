"""Scale-out, for real: a separate ``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1 and the
lake on an S3-compatible server (moto) on 127.0.0.1 give the same tables as the local default; a worker
killed mid-stage costs nothing (its tasks are rescheduled) and a rerun gives the same tables."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from sluice.lake import Lake

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.args}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """moto S3 + dask scheduler + 2 workers, each its own process on loopback."""
    log = tmp_path_factory.mktemp("services")
    procs: dict[str, subprocess.Popen] = {}

    def start(name, args, port=None):
        out = open(log / f"{name}.log", "w")
        procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=log)
        if port:
            wait_port(port, procs[name])

    s3_port, sched_port = free_port(), free_port()
    try:
        start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], s3_port)
        start("scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(sched_port),
                            "--no-dashboard"], sched_port)
        address = f"tcp://127.0.0.1:{sched_port}"
        for w in ("w1", "w2"):
            start(w, [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                      "--nworkers", "1", "--no-dashboard", "--name", w, "--memory-limit", "1GiB"])
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        import boto3

        endpoint = f"http://127.0.0.1:{s3_port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="lake")
        storage = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        yield {"address": address, "storage": storage, "procs": procs, "log": log}
    finally:
        for proc in reversed(procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def tables(lake: Lake) -> dict[str, pl.DataFrame]:
    q = pl.from_arrow(lake.read("quarantine", columns=["row_key", "stage", "reason"]))
    return {
        "images": pl.from_arrow(lake.read("images")).drop("run_id").sort("image_id"),
        "dataset": pl.from_arrow(lake.read("dataset")).drop("run_id").sort("image_id"),
        "quarantine": q.filter(pl.col("stage").is_in(["clean", "dataset"])).sort(pl.all()),
        "image_groups": pl.from_arrow(lake.read("image_groups")).drop("run_id").sort("image_id"),
    }


def stage(module: str, params_file: Path, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module], cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "SLUICE_PARAMS": str(params_file), **env})


def test_cluster_and_s3_lake_match_local_and_survive_a_killed_worker(services, demo_dir, demo_copy, tmp_path,
                                                                      demo_params_for, write_given_labels):
    import yaml

    from ingest.public import run as ingest
    from sluice.config import load_params_file
    from transform.dataset import run as dataset

    dataset(demo_params_for(demo_dir, demo_copy))
    local = tables(Lake(str(demo_copy)))

    raw = demo_params_for(demo_dir, "s3://lake/sluice", clean={"batch_images": 16}).model_dump(mode="json")
    raw["lake"]["storage_options"] = services["storage"]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    env = {"SLUICE_DASK_SCHEDULER": services["address"]}
    s3_params = load_params_file(params_file)
    lake = Lake.from_params(s3_params)
    ingest(s3_params)
    errs = {}
    for module in ("transform.clean", "transform.dedup"):
        proc = stage(module, params_file, tmp_path, env)
        _, errs[module] = proc.communicate(timeout=600)
        assert proc.returncode == 0, errs[module]
    for module in errs:  # dedup's candidate search ran on the cluster too (one task per hash chunk and share)
        assert f"connected to {services['address']} (2 workers)" in errs[module], module
    write_given_labels(lake)
    dataset(s3_params)
    remote = tables(lake)
    for name in local:
        assert remote[name].height > 0 and remote[name].equals(local[name]), name
    # export's pixel pass as tasks on the cluster (the workers share this machine's disk): the same snapshot
    from transform.export import export

    want, _, _ = export(Lake(str(demo_copy)), tmp_path / "local-snapshot", demo_params_for(demo_dir, demo_copy))
    proc = stage("transform.export", params_file, tmp_path, env)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"connected to {services['address']} (2 workers)" in err
    got = json.loads((tmp_path / raw["export"]["out_dir"] / "manifest.json").read_text())
    assert got["content_hash"] == want["content_hash"] and got["counts"] == want["counts"]

    # kill a worker while clean runs: its tasks move to the other worker, the stage completes
    from distributed import Client

    with Client(services["address"]) as watcher:
        proc = stage("transform.clean", params_file, tmp_path, env)
        deadline = time.monotonic() + 300
        while not any(watcher.processing().values()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "clean finished before the worker could be killed"
        services["procs"]["w1"].kill()
        out, err = proc.communicate(timeout=600)
        assert len(watcher.nthreads()) == 1  # the killed worker really left the cluster
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    proc = stage("transform.dedup", params_file, tmp_path, env)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    after = tables(lake)
    assert after["images"].equals(remote["images"]) and after["quarantine"].equals(remote["quarantine"])
    assert after["image_groups"].equals(remote["image_groups"])  # same groups on the one worker left
    manifest = json.loads((tmp_path / "data/manifests/clean.json").read_text())
    assert manifest["reconcile"]["images"] == remote["images"].height
