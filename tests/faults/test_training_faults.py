"""A bit-flipped shard restored by DVC is refused before training; a DDP worker killed mid-run fails cleanly and resumes."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.faults.conftest import RUNS, env, kill9_when, run, start

pytestmark = pytest.mark.slow
DVC = str(Path(os.environ.get("SLUICE_DVC", Path(__import__("sys").executable).with_name("dvc"))))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    from tests.train.conftest import build_snapshot

    folder = tmp_path_factory.mktemp("snap") / "snap"
    build_snapshot(folder, 300, 100, 100, shard_rows=64)
    return folder


def _train_params(path: Path, snap: Path, out: Path, **over) -> Path:
    train = {"snapshot": str(snap), "out_dir": str(out / "model"), "checkpoint_dir": str(out / "runs"), **over}
    path.write_text(yaml.safe_dump({"train": train}))
    return path


def _sh(args: list[str], cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, env=env(), check=True, capture_output=True, text=True, timeout=300)


def test_dvc_cache_corruption(tmp_path, snapshot, faults, rng):
    """A shard bit-flipped in the DVC cache, then a plain `dvc checkout`: `sluice train` refuses in one line."""
    import shutil

    for i in range(RUNS):
        repo = tmp_path / f"repo{i}"
        repo.mkdir()
        shutil.copytree(snapshot, repo / "snap")
        _sh(["git", "init", "-q"], repo)
        _sh([DVC, "init", "-q"], repo)
        _sh([DVC, "add", "-q", "snap"], repo)
        shards = sorted((repo / "snap").glob("*.npy"))
        victim = shards[rng.randrange(len(shards))]
        md5 = hashlib.md5(victim.read_bytes()).hexdigest()
        cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        os.chmod(cached, 0o644)
        data = bytearray(cached.read_bytes())
        data[rng.randrange(128, len(data))] ^= 1 << rng.randrange(8)
        cached.write_bytes(bytes(data))
        shutil.rmtree(repo / "snap")
        _sh([DVC, "checkout", "-q"], repo)  # restores the corrupt bytes without a word
        params = _train_params(repo / "params.yaml", repo / "snap", repo / "out", epochs=1, width=4, processes=1)
        result = run(["-m", "sluice.cli", "train"], repo, params)
        err = result.stderr.strip().splitlines()
        ok = (result.returncode == 4 and len(err) == 1 and "Traceback" not in result.stderr
              and "manifest says" in err[0] and not (repo / "out/model").exists())
        faults.add("refused", "refused" if ok else f"exit {result.returncode}", ok, f"bit flipped in {victim.name}")
    faults.check()


def _epochs(out: Path) -> int:
    curve = out / "reports/plots/train_curve.csv"
    return len({row["epoch"] for row in csv.DictReader(curve.open())}) if curve.exists() else 0


def test_ddp_worker_kill(tmp_path, snapshot, faults, rng):
    """torchrun, 2 ranks on gloo: kill -9 one worker mid-epoch; the run exits non-zero, `--resume` completes."""
    import psutil

    from train.checkpoints import DONE

    epochs = 3
    for i in range(RUNS):
        out = tmp_path / f"run{i}"
        out.mkdir()
        params = _train_params(tmp_path / f"p{i}.yaml", snapshot, out, epochs=epochs, width=4, batch_size=16,
                               processes=2)
        proc = start(["-m", "sluice.cli", "train"], out, params)
        after = rng.randint(1, epochs - 1)  # killed in epoch after+1, once a checkpoint of `after` epochs is complete

        def workers():
            try:
                return [c for c in psutil.Process(proc.pid).children(recursive=True)
                        if "train.ddp" in " ".join(c.cmdline())]
            except psutil.Error:
                return []

        def mid_training() -> bool:
            done = [int(p.name[6:10]) for p in (out / "runs").rglob("ckpt-e*-s*.pt")
                    if p.with_name(p.name + DONE).is_file()]
            return max(done, default=-1) >= after and len(workers()) == 2

        victim = []

        def kill_one_worker():
            found = workers()
            if found:
                victim.append(found[-1].pid)
                os.kill(found[-1].pid, signal.SIGKILL)
            return True

        reached = kill9_when_worker(proc, mid_training, kill_one_worker)
        code = proc.returncode
        resumed = run(["-m", "sluice.cli", "train", "--resume"], out, params, timeout=600)
        done = _epochs(out)
        ok = reached and code not in (0, None) and resumed.returncode == 0 and "resumed from" in resumed.stderr \
            and done == epochs
        faults.add(f"{epochs} epochs", f"{done} epochs", ok,
                   f"worker killed in epoch {after + 1}/{epochs}: exit {code}, then --resume exit {resumed.returncode}")
    faults.check()


def kill9_when_worker(proc, ready, kill) -> bool:
    """Wait for ``ready()``, call ``kill()`` (one worker, not the group), then wait for the launcher to exit."""
    import time

    deadline = time.monotonic() + 300
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.communicate(timeout=60) if proc.poll() is not None else kill9_when(proc, lambda: True)
            return False
        time.sleep(0.05)
    kill()
    proc.communicate(timeout=300)
    return True
