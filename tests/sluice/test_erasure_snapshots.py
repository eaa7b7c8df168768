"""Erasure across dataset versions: the DVC cache objects of tagged snapshots that hold an erased image are
found and, with --purge-snapshots, deleted (cache and remote); checkout of such a version is refused in one
line; --verify finds nothing. A hand-laid DVC cache (fast) and a real `dvc repro` + remote (slow)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.sluice.test_erasure import KEY, SIZE, build_lake, files_holding
from tests.sluice.test_versions import BIN, MAKE_LAKE, Repo, _cache_put, _git, _init_repo, moto_s3  # noqa: F401


def _snapshot_of(folder: Path, made: dict, rows: list[int]) -> dict:
    from sluice.snapshot import SplitArrays, write_snapshot

    images = np.stack([np.frombuffer(made["pixels"][i], np.uint8).reshape(SIZE, SIZE, 3) for i in rows])
    arrays = SplitArrays(images, np.zeros(len(rows), np.int64), np.ones(len(rows), np.float32),
                         [made["ids"][i] for i in rows])
    return write_snapshot(folder, {"train": arrays}, ["cat"], {"table_versions": {"dataset": 1}}, shard_rows=2)


def _commit_snapshot(repo: Path, tag: str, manifest: dict) -> None:
    """What `dvc repro` + `dvc commit` leave for an export stage: cache objects, a .dir listing, dvc.lock."""
    snap = repo / "data/dataset"
    listing = [{"md5": _cache_put(repo, f.read_bytes()), "relpath": f.name} for f in sorted(snap.iterdir())]
    dir_md5 = _cache_put(repo, json.dumps(listing).encode(), ".dir")
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"export": {"cmd": "x", "outs": [
        {"path": "data/dataset", "md5": dir_md5}]}}}))
    (repo / "data/manifests").mkdir(parents=True, exist_ok=True)
    (repo / "data/manifests/export.json").write_text(json.dumps(manifest))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", tag)
    _git(repo, "tag", tag)


def test_purge_deletes_the_snapshot_objects_and_checkout_refuses_the_version(tmp_path, run_cli):
    repo = tmp_path / "repo"
    _init_repo(repo)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/data/dataset\n/lake/\n")
    params = {"lake": {"root": "lake"}, "export": {"out_dir": "data/dataset"}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    from sluice.lake import Lake

    made = build_lake(Lake(str(repo / "lake")))
    _commit_snapshot(repo, "v1", _snapshot_of(repo / "data/dataset", made, [0, 1, 2, 3]))
    _commit_snapshot(repo, "v2", _snapshot_of(repo / "data/dataset", made, [2, 3, 4]))  # without image 0
    env = {"SLUICE_PSEUDONYM_KEY": KEY, "SLUICE_PARAMS": str(repo / "params.yaml")}
    cache = repo / ".dvc/cache"
    needles = [made["ids"][0].encode(), made["pixels"][0]]
    assert files_holding(cache, needles)

    found = run_cli("erase", "--image-id", made["ids"][0], "--dry-run", cwd=repo, env=env)
    assert found.returncode == 0, found.stderr
    assert "dataset versions holding erased images: v1 (" in found.stdout and "v2" not in found.stdout

    out = run_cli("erase", "--image-id", made["ids"][0], "--purge-snapshots", cwd=repo, env=env)
    assert out.returncode == 0, out.stderr
    assert "dataset versions erased (checkout refuses them): v1" in out.stdout, out.stdout
    assert "the current snapshot (data/dataset) was deleted" not in out.stdout  # the workspace held v2
    assert files_holding(cache, needles) == [] and files_holding(repo / "lake", needles) == []
    assert files_holding(cache, [made["ids"][2].encode()])  # v2's shards are untouched

    refused = run_cli("dataset", "checkout", "v1", cwd=repo, env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "purged by erasure" in refused.stderr and "v1" in refused.stderr
    diffed = run_cli("dataset", "diff", "v1", "v2", cwd=repo, env=env)  # names the erasure, not a missing push
    assert diffed.returncode == 2 and len(diffed.stderr.strip().splitlines()) == 1, diffed.stderr
    assert "purged by erasure" in diffed.stderr and "dvc push" not in diffed.stderr
    ok = run_cli("dataset", "checkout", "v2", cwd=repo, env=env)
    assert ok.returncode == 0, ok.stderr
    listed = {r["version"]: r for r in json.loads(run_cli("dataset", "list", "--format", "json", cwd=repo,
                                                          env=env).stdout)}
    assert listed["v1"]["erased_by"] and listed["v2"]["erased_by"] is None

    verify = run_cli("erase", "--verify", cwd=repo, env=env)
    assert verify.returncode == 0 and "0 hit(s)" in verify.stdout, verify.stdout + verify.stderr


DVC_YAML = """
stages:
  dataset:
    cmd: python make_lake.py
    deps: [make_lake.py]
    params:
      - fixture.yaml:
          - n_images
          - drop_every
    outs:
      - data/manifests/dataset.json:
          cache: false
  export:
    cmd: python -m transform.export
    deps: [data/manifests/dataset.json]
    params: [export, clean.size, lake]
    outs:
      - data/dataset
      - data/manifests/export.json:
          cache: false
"""


def _s3_objects(endpoint: str) -> dict[str, bytes]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="sluice-dvc")
            for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket="sluice-dvc", Key=k)["Body"].read() for k in keys}


@pytest.fixture(params=["local", "s3"])
def remote(request, tmp_path):
    """(dvc remote add arguments, a function listing every remote object's bytes)."""
    if request.param == "local":
        storage = tmp_path / "storage"
        return [str(storage)], [], lambda: {str(p): p.read_bytes() for p in storage.rglob("*") if p.is_file()}
    endpoint = request.getfixturevalue("moto_s3")
    return (["s3://sluice-dvc/cache"], [["endpointurl", endpoint], ["--local", "access_key_id", "testing"],
                                        ["--local", "secret_access_key", "testing"]], lambda: _s3_objects(endpoint))


@pytest.mark.slow
def test_erase_purges_real_dvc_snapshots_from_cache_and_remote(tmp_path, remote):
    url, settings, remote_objects = remote
    repo = Repo(tmp_path / "repo")
    _init_repo(repo.root)
    (repo.root / "make_lake.py").write_text(MAKE_LAKE)
    (repo.root / "dvc.yaml").write_text(DVC_YAML)
    (repo.root / ".gitignore").write_text("/lake/\n")
    (repo.root / "fixture.yaml").write_text(yaml.safe_dump({"n_images": 60, "drop_every": 0}))
    (repo.root / "params.yaml").write_text(yaml.safe_dump({"lake": {"root": "lake"}, "clean": {"size": 32},
                                                           "export": {"out_dir": "data/dataset", "shard_rows": 16}}))
    repo.run("dvc", "init", "-q")
    repo.run("dvc", "remote", "add", "-d", "store", *url)
    for setting in settings:
        repo.run("dvc", "remote", "modify", *setting[:-2], "store", *setting[-2:])
    repo.run("dvc", "repro")
    repo.commit_tag("v1")
    (repo.root / "fixture.yaml").write_text(yaml.safe_dump({"n_images": 60, "drop_every": 7}))
    repo.run("dvc", "repro")
    repo.commit_tag("v2")
    repo.run("dvc", "push")
    ids = (repo.root / "data/dataset/train-00000.ids.txt").read_text().split()
    victim = ids[0]
    pixels = np.load(repo.root / "data/dataset/train-00000.images.npy")[0].tobytes()
    assert any(victim.encode() in data for data in remote_objects().values())
    assert files_holding(repo.root / ".dvc/cache", [victim.encode(), pixels])

    out = repo.sluice("erase", "--image-id", victim, "--purge-snapshots", "--reason", "request 42")
    assert "v1" in out.stdout and "v2" in out.stdout and "was deleted" in out.stdout, out.stdout
    for place in (repo.root / ".dvc/cache", repo.root / "lake", repo.root / "data"):
        assert files_holding(place, [victim.encode(), pixels]) == [], place
    assert not [k for k, data in remote_objects().items() if victim.encode() in data or pixels in data]
    assert remote_objects()  # the other objects are still there
    assert repo.sluice("erase", "--verify").stdout.strip().endswith("0 hit(s) for 1 erasure(s)")
    for tag in ("v1", "v2"):
        refused = repo.sluice("dataset", "checkout", tag, ok=False)
        assert refused.returncode == 2 and "purged by erasure" in refused.stderr
        rebuilt = repo.sluice("dataset", "rebuild", "--version", tag, ok=False)
        assert rebuilt.returncode == 2 and "purged by erasure" in rebuilt.stderr
    maintained = repo.sluice("lake", "maintain", "--retention-hours", "0", ok=False)
    assert maintained.returncode == 0, maintained.stderr
