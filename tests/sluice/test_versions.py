"""Dataset versions: diff, lake maintenance that never breaks a tagged version, and (slow) the full
git + DVC workflow in a temporary repository: tag v1, change data and a param, tag v2, check out v1
byte for byte, retrain to v1's metrics, detect a flipped byte in DVC's cache, vacuum safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from sluice.versions import diff

BIN = Path(sys.executable).parent


def test_diff_counts_added_and_removed_per_split_and_class():
    before = {"a": ("train", "0"), "b": ("train", "1"), "c": ("test", "1"), "d": ("val", "0")}
    after = {"a": ("train", "0"), "b": ("val", "1"), "c": ("test", "0"), "e": ("train", "1")}
    rows = {(r["split"], r["class"]): r for r in diff(before, after)}
    assert rows[("train", "0")] == {"split": "train", "class": "0", "before": 1, "after": 1, "added": 0, "removed": 0}
    assert (rows[("train", "1")]["added"], rows[("train", "1")]["removed"]) == (1, 1)  # b left, e came
    assert rows[("val", "1")]["added"] == 1 and rows[("val", "0")]["removed"] == 1
    assert rows[("test", "1")]["removed"] == 1 and rows[("test", "0")]["added"] == 1
    assert [r["split"] for r in diff(before, after)][:2] == ["train", "train"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "test@example.org")
    _git(repo, "config", "user.name", "test")


# ------------------------------------------------------------------------------------------ end to end
MAKE_LAKE = textwrap.dedent('''
    """Fixture stage: a small images + dataset table from the real demo digits."""
    import hashlib, json, sys, yaml
    import numpy as np, pyarrow as pa
    from demo.generate import digit_images
    from sluice.config import load_params
    from sluice.lake import Lake
    from sluice.imaging import Geometry, record_geometry
    from sluice.runs import write_manifest

    cfg = yaml.safe_load(open("fixture.yaml"))
    images, labels = digit_images(0)
    images, labels = images[: cfg["n_images"]], labels[: cfg["n_images"]]
    lake = Lake.from_params(load_params())
    ids = [hashlib.sha256(i.tobytes()).hexdigest() for i in images]
    n = len(ids)
    lake.merge_insert("images", pa.table({
        "image_id": ids, "width": [32] * n, "height": [32] * n, "mode": ["RGB"] * n, "format": ["PNG"] * n,
        "pixels": [i.tobytes() for i in images], "pixel_hash": ids, "phash": list(range(n)), "run_id": ["f"] * n}))
    record_geometry(lake, "images", Geometry(32, 32, "squash"))  # as the clean stage records it
    keep = [k for k in range(n) if k % cfg["drop_every"] != 0] if cfg["drop_every"] else list(range(n))
    split = ["test" if k % 5 == 0 else "val" if k % 5 == 1 else "train" for k in keep]
    lake.overwrite("dataset", pa.table({
        "image_id": [ids[k] for k in keep], "split": split, "label": [str(int(labels[k])) for k in keep],
        "class_index": [int(labels[k]) for k in keep], "weight": [1.0] * len(keep),
        "dup_group": [ids[k] for k in keep], "run_id": ["f"] * len(keep)}))
    write_manifest("dataset", {"versions": {"dataset": lake.version("dataset"), "images": lake.version("images")}})
''')

DVC_YAML = textwrap.dedent('''
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
      train:
        cmd: python -m train.ddp
        deps: [data/dataset]
        params: [train]
        outs:
          - models/fp32
        metrics:
          - reports/metrics/train.json:
              cache: false
''')

TRAIN = {"snapshot": "data/dataset", "out_dir": "models/fp32", "checkpoint_dir": "runs/train", "processes": 1,
         "threads_per_process": 1, "device": "cpu", "epochs": 2, "batch_size": 32, "width": 4, "depth": 1,
         "warmup_epochs": 0.0}


class Repo:
    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("SLUICE_PARAMS", None)

    def run(self, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(list(cmd), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600)
        if ok and result.returncode:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def sluice(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "sluice.cli", *args, ok=ok)

    def commit_tag(self, tag: str) -> None:
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-qm", tag)
        _git(self.root, "tag", tag)

    def at(self, rev: str, path: str) -> dict:
        return json.loads(_git(self.root, "show", f"{rev}:{path}"))


def _quality(metrics: dict) -> dict:
    """The metrics that depend on data and seed only (no timings)."""
    return {k: v for k, v in metrics.items() if any(s in k for s in ("acc", "loss")) and "per_s" not in k}


@pytest.mark.slow
def test_tag_change_checkout_retrain_corrupt_and_vacuum(tmp_path):
    repo = Repo(tmp_path / "repo")
    _init_repo(repo.root)
    (repo.root / "make_lake.py").write_text(MAKE_LAKE)
    (repo.root / "dvc.yaml").write_text(DVC_YAML)
    (repo.root / ".gitignore").write_text("/lake/\n/runs/\n")
    (repo.root / "fixture.yaml").write_text(yaml.safe_dump({"n_images": 400, "drop_every": 0}))
    params = {"lake": {"root": "lake"}, "clean": {"size": 32}, "export": {"out_dir": "data/dataset", "shard_rows": 64},
              "train": TRAIN}
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params))
    repo.run("dvc", "init", "-q")
    repo.run("dvc", "remote", "add", "-d", "local", str(tmp_path / "storage"))

    repo.run("dvc", "repro")
    repo.commit_tag("v1")
    repo.run("dvc", "push")
    again = repo.run("dvc", "repro")
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout

    # change the data (drop every 7th row) and a param (smaller shards): only downstream stages rerun
    (repo.root / "fixture.yaml").write_text(yaml.safe_dump({"n_images": 400, "drop_every": 7}))
    params["export"]["shard_rows"] = 32
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params))
    repo.run("dvc", "repro")
    repo.commit_tag("v2")
    repo.run("dvc", "push")
    v1, v2 = repo.at("v1", "data/manifests/export.json"), repo.at("v2", "data/manifests/export.json")
    assert v1["content_hash"] != v2["content_hash"]

    listed = repo.sluice("dataset", "list", "--format", "json")
    rows = {r["version"]: r for r in json.loads(listed.stdout)}
    assert rows["v1"]["content_hash"] == v1["content_hash"][:16] and rows["v2"]["train"] == v2["counts"]["train"]
    shown = repo.sluice("dataset", "show", "v1")
    assert v1["content_hash"] in shown.stdout and "manifest from git" in shown.stdout
    diffed = json.loads(repo.sluice("dataset", "diff", "v1", "v2", "--format", "json").stdout)
    assert sum(r["removed"] for r in diffed) == 400 - v2["counts"]["total"] == 58
    assert sum(r["added"] for r in diffed) == 0

    # check out v1: same bytes, same hash, and retraining reproduces v1's metrics
    out = repo.sluice("dataset", "checkout", "v1")
    assert v1["content_hash"] in out.stdout
    manifest = json.loads((repo.root / "data/dataset/manifest.json").read_text())
    assert manifest["content_hash"] == v1["content_hash"] and manifest["counts"]["total"] == 400
    repo.run(sys.executable, "-m", "train.ddp")
    retrained = json.loads((repo.root / "reports/metrics/train.json").read_text())
    assert _quality(retrained) and _quality(retrained) == _quality(repo.at("v1", "reports/metrics/train.json"))

    # a flipped byte in DVC's cache is detected, the workspace is left alone, --repair re-fetches
    listing = json.loads(Path(_dvc_cache(repo.root, _lock_md5(repo, "v2"))).read_text())
    shard = next(e for e in listing if e["relpath"].endswith(".images.npy"))
    victim = Path(_dvc_cache(repo.root, shard["md5"]))
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    bad = repo.sluice("dataset", "checkout", "v2", ok=False)
    assert bad.returncode == 4 and "corrupted" in bad.stderr and shard["relpath"] in bad.stderr
    assert json.loads((repo.root / "data/dataset/manifest.json").read_text())["content_hash"] == v1["content_hash"]
    fixed = repo.sluice("dataset", "checkout", "v2", "--repair")
    assert v2["content_hash"] in fixed.stdout and "repaired 1" in fixed.stderr

    # vacuum with zero retention keeps every version a tag needs; rebuild by time travel still matches
    maintained = repo.sluice("lake", "maintain", "--retention-hours", "0")
    assert "removed" in maintained.stderr
    for tag in ("v1", "v2"):
        rebuilt = repo.sluice("dataset", "rebuild", "--version", tag)
        assert "matches" in rebuilt.stdout, rebuilt.stderr


def _lock_md5(repo: Repo, rev: str) -> str:
    lock = yaml.safe_load(_git(repo.root, "show", f"{rev}:dvc.lock"))
    return next(o["md5"] for o in lock["stages"]["export"]["outs"] if o["md5"].endswith(".dir"))


def _dvc_cache(root: Path, md5: str) -> str:
    return str(root / ".dvc/cache/files/md5" / md5[:2] / md5[2:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_s3():
    """A real S3-compatible server (moto) on 127.0.0.1 with one bucket; yields its endpoint URL."""
    import time
    import urllib.request

    port = _free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="sluice-dvc")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_s3_remote_push_then_checkout_from_an_empty_cache(tmp_path, moto_s3):
    repo = Repo(tmp_path / "repo")
    _init_repo(repo.root)
    (repo.root / "make_lake.py").write_text(MAKE_LAKE)
    (repo.root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {k: v for k, v in yaml.safe_load(DVC_YAML)["stages"].items()
                                                                   if k != "train"}}))
    (repo.root / ".gitignore").write_text("/lake/\n")
    (repo.root / "fixture.yaml").write_text(yaml.safe_dump({"n_images": 120, "drop_every": 0}))
    (repo.root / "params.yaml").write_text(yaml.safe_dump({"lake": {"root": "lake"}, "clean": {"size": 32},
                                                           "export": {"out_dir": "data/dataset", "shard_rows": 50}}))
    repo.run("dvc", "init", "-q")
    repo.run("dvc", "remote", "add", "-d", "s3", "s3://sluice-dvc/cache")
    repo.run("dvc", "remote", "modify", "s3", "endpointurl", moto_s3)
    repo.run("dvc", "remote", "modify", "--local", "s3", "access_key_id", "testing")
    repo.run("dvc", "remote", "modify", "--local", "s3", "secret_access_key", "testing")
    repo.run("dvc", "repro")
    repo.commit_tag("v1")
    pushed = repo.run("dvc", "push")
    assert "pushed" in pushed.stdout
    expected = repo.at("v1", "data/manifests/export.json")["content_hash"]

    import shutil

    shutil.rmtree(repo.root / ".dvc/cache")
    shutil.rmtree(repo.root / "data/dataset")
    out = repo.sluice("dataset", "checkout", "v1")
    assert expected in out.stdout
    assert json.loads((repo.root / "data/dataset/manifest.json").read_text())["content_hash"] == expected
    assert repo.run("dvc", "status").stdout.strip().endswith("Data and pipelines are up to date.")


def _cache_put(repo: Path, data: bytes, suffix: str = "") -> str:
    import hashlib

    md5 = hashlib.md5(data).hexdigest()
    path = repo / ".dvc/cache/files/md5" / md5[:2] / (md5[2:] + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5 + suffix


def _snapshot(folder: Path, n: int, seed: int) -> dict:
    import numpy as np

    from sluice.snapshot import SplitArrays, write_snapshot

    rng = np.random.default_rng(seed)
    arrays = SplitArrays(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, n),
                         np.ones(n, np.float32), [f"{seed}-{i:04d}" for i in range(n)])
    return write_snapshot(folder, {"train": arrays}, ["a", "b", "c"], {"table_versions": {"dataset": seed}}, shard_rows=16)


def test_checkout_restores_a_tagged_snapshot_and_refuses_corrupted_cache_bytes(tmp_path):
    """A DVC cache laid out by hand (what `dvc repro` + `dvc commit` leave), no pipeline run."""
    from sluice.errors import InputError
    from sluice.checkout import checkout
    from sluice.dvc_store import CorruptCache

    repo = tmp_path / "repo"
    _init_repo(repo)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    snap = repo / "data/dataset"
    v1 = _snapshot(snap, 40, seed=1)
    listing = [{"md5": _cache_put(repo, f.read_bytes()), "relpath": f.name} for f in sorted(snap.iterdir())]
    dir_md5 = _cache_put(repo, json.dumps(listing).encode(), ".dir")
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"export": {"cmd": "x", "outs": [
        {"path": "data/dataset", "md5": dir_md5}, {"path": "data/manifests/export.json", "md5": "0" * 32}]}}}))
    (repo / "data/manifests").mkdir(parents=True)
    (repo / "data/manifests/export.json").write_text(json.dumps(v1))
    (repo / ".gitignore").write_text("/data/dataset\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1")

    v2 = _snapshot(snap, 25, seed=2)  # the workspace moves on
    result = checkout(repo, "v1", snap)
    assert result.content_hash == v1["content_hash"] and result.files == len(listing)
    assert json.loads((snap / "manifest.json").read_text()) == v1
    assert sorted(p.name for p in snap.iterdir()) == sorted(e["relpath"] for e in listing)

    _snapshot(snap, 25, seed=2)
    # a past version published to object storage (here a file:// URL) comes from DVC, not the workspace
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"lake": {"root": str(tmp_path / "lake")}}))
    out = subprocess.run([sys.executable, "-m", "sluice.cli", "dataset", "publish", (tmp_path / "pub").as_uri(),
                          "--version", "v1"], cwd=repo, capture_output=True, text=True,
                         env={**os.environ, "SLUICE_PARAMS": str(params)})
    assert out.returncode == 0, out.stderr
    assert "published version v1" in out.stdout and f"content_hash {v1['content_hash'][:16]}" in out.stdout
    assert json.loads((tmp_path / "pub/manifest.json").read_text())["content_hash"] == v1["content_hash"]
    victim = next(e for e in listing if e["relpath"].endswith(".images.npy"))
    obj = repo / ".dvc/cache/files/md5" / victim["md5"][:2] / victim["md5"][2:]
    data = bytearray(obj.read_bytes())
    data[200] ^= 0x01
    obj.write_bytes(bytes(data))
    with pytest.raises(CorruptCache, match=victim["relpath"]) as err:
        checkout(repo, "v1", snap)
    assert "left as it was" in str(err.value)
    assert json.loads((snap / "manifest.json").read_text())["content_hash"] == v2["content_hash"]
    assert not list(snap.parent.glob(".dataset.checkout-*"))
    with pytest.raises(InputError, match="neither in the DVC cache nor on the remote|dvc fetch"):
        checkout(repo, "v1", snap, repair=True)  # no remote to re-fetch from: says so
    assert json.loads((snap / "manifest.json").read_text())["content_hash"] == v2["content_hash"]
    assert not list(snap.parent.glob(".dataset.checkout-*"))


def test_diff_between_delta_versions_of_the_dataset_table(lake, run_cli):
    def rows(ids, splits, labels):
        return pa.table({"image_id": ids, "split": splits, "label": labels, "class_index": [int(x) for x in labels],
                         "weight": [1.0] * len(ids), "dup_group": ids, "run_id": ["r"] * len(ids)})

    lake.overwrite("dataset", rows(["a", "b", "c"], ["train", "train", "test"], ["0", "1", "1"]))
    lake.overwrite("dataset", rows(["a", "b", "d"], ["train", "val", "test"], ["0", "1", "1"]))
    v = lake.version("dataset")
    out = run_cli("dataset", "diff", f"@{v - 1}", f"@{v}", "--format", "json", params={"lake": {"root": lake.root}})
    assert out.returncode == 0, out.stderr
    got = {(r["split"], r["class"]): (r["added"], r["removed"]) for r in json.loads(out.stdout)}
    assert got == {("train", "0"): (0, 0), ("train", "1"): (0, 1), ("val", "1"): (1, 0), ("test", "1"): (1, 1)}
    assert f"dataset@{v - 1}" in out.stderr and "+2 -2 rows, 1 image(s) in both moved to another split" in out.stderr
    out = run_cli("dataset", "diff", "@x", f"@{v}", params={"lake": {"root": lake.root}})
    assert out.returncode == 2 and "expected @N" in out.stderr
