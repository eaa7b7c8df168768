"""The trainer: checkpoints, resume checks, the single-process path in-process, and (slow) real torchrun
runs: the demo accuracy target, SIGTERM kill-and-resume and worker-crash restarts giving identical
metrics, the evaluate stage and `sluice compare`."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sluice.config import TrainParams
from sluice.errors import InputError
from train import ddp
from train.commands import per_gpu, torchrun_args
from train.evaluate import run as run_evaluate
from train.model import load_model

REPO = Path(__file__).resolve().parents[2]
TIMING = {"seconds", "images_per_s", "finished_at", "hardware", "run_id"}  # what differs between runs


def quick_cfg(tmp_path: Path, snap: Path, **over) -> TrainParams:
    base = dict(snapshot=str(snap), out_dir=str(tmp_path / "models" / "fp32"), checkpoint_dir=str(tmp_path / "runs"),
                runs_dir=str(tmp_path / "run-folders"),
                epochs=2, width=4, batch_size=32, processes=1)
    return TrainParams(**{**base, **over})


def state(epoch: int, step: int, **over) -> dict:
    return {"epoch": epoch, "step": step, "model": {"w": torch.ones(2)}, "world_size": 2, "dataset_hash": "abc",
            "config": json.dumps(TrainParams().model_dump(mode="json")), **over}


def test_checkpoints_are_atomic_complete_and_pruned(tmp_path):
    for e in range(4):
        ddp.save_checkpoint(tmp_path, state(e, 0), keep=2)
    assert [p.name for p in ddp.complete_checkpoints(tmp_path)] == ["ckpt-e0002-s000000.pt", "ckpt-e0003-s000000.pt"]
    (tmp_path / "ckpt-e0009-s000000.pt").write_bytes(b"half written")  # no completion marker: ignored
    newest = ddp.complete_checkpoints(tmp_path)[-1]
    assert newest.name == "ckpt-e0003-s000000.pt"
    loaded = ddp.load_checkpoint(newest)  # weights_only=True
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.ones(2))
    bad = tmp_path / "ckpt-e0010-s000000.pt"
    bad.write_bytes(b"not a checkpoint")
    bad.with_name(bad.name + ddp.DONE).write_text("{}")
    with pytest.raises(InputError, match="cannot load checkpoint"):
        ddp.load_checkpoint(ddp.complete_checkpoints(tmp_path)[-1])


def test_resume_refuses_other_data_world_size_or_params(tmp_path):
    cfg, path = TrainParams(), tmp_path / "ckpt.pt"
    ddp.check_resumable(state(1, 0), cfg, "abc", 2, path)
    ddp.check_resumable(state(1, 0), cfg.model_copy(update={"out_dir": "elsewhere"}), "abc", 2, path)
    with pytest.raises(InputError, match="dataset abc but the snapshot is def"):
        ddp.check_resumable(state(1, 0), cfg, "def", 2, path)
    with pytest.raises(InputError, match="has 2 ranks but this run has 3"):
        ddp.check_resumable(state(1, 0), cfg, "abc", 3, path)
    with pytest.raises(InputError, match=r"params changed .*lr: 0.3 -> 0.1"):
        ddp.check_resumable(state(1, 0), cfg.model_copy(update={"lr": 0.1}), "abc", 2, path)


def test_torchrun_arguments():
    assert torchrun_args(2) == ["--nproc_per_node=2", "--max-restarts=0", "--standalone", "-m", "train.ddp"]
    multi = torchrun_args(4, resume=True, nnodes="2", rdzv_endpoint="node0:29400", rdzv_id="job", max_restarts=3)
    assert "--rdzv-endpoint=node0:29400" in multi and "--nnodes=2" in multi and multi[-1] == "--resume"
    assert "--standalone" not in multi
    with pytest.raises(InputError, match="needs --rdzv-endpoint"):
        torchrun_args(2, nnodes="2")


def test_one_process_per_gpu_on_cuda(monkeypatch, capsys):
    # no GPU here: the CUDA queries answer as on a one-GPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert per_gpu(2, "auto") == 1 and "2 processes asked on a node with 1 GPU(s): starting 1" in capsys.readouterr().err
    assert per_gpu(2, "cpu") == 2 and per_gpu(1, "cuda") == 1 and capsys.readouterr().err == ""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # a hand-written torchrun with 2 ranks on the one GPU
    with pytest.raises(InputError, match="2 processes on this node but 1 GPU"):
        ddp.Context(TrainParams(device="auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert per_gpu(2, "auto") == 2  # no GPU: the CPU's processes


def test_bf16_only_where_the_gpu_computes_it_natively(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # H100/H200
    assert ddp.autocast_dtype(TrainParams(), cuda) is torch.bfloat16
    assert ddp.autocast_dtype(TrainParams(bf16=False), cuda) is None
    assert ddp.autocast_dtype(TrainParams(), torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4: emulated, fp32
    assert ddp.autocast_dtype(TrainParams(), cuda) is None


def test_single_process_training_writes_model_metrics_and_card(tmp_path, small_snapshot, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    cfg = quick_cfg(tmp_path, small_snapshot, epochs=3, width=8, batch_size=16)
    metrics = ddp.train(cfg)
    assert metrics["world_size"] == 1 and metrics["epochs"] == 3
    assert metrics["test_accuracy"] > 0.5  # 3 epochs of 300 real digits: far above chance (0.1)
    model, config = load_model(cfg.out_dir)
    assert config["dataset_hash"] == json.loads((small_snapshot / "manifest.json").read_text())["content_hash"]
    card = (Path(cfg.out_dir) / "MODEL_CARD.md").read_text()
    assert config["dataset_hash"] in card and "| 7 |" in card
    curve = list(csv.DictReader(open("reports/plots/train_curve.csv")))
    assert [int(r["epoch"]) for r in curve] == [1, 2, 3]
    assert json.loads(Path("reports/metrics/train.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))

    body = run_evaluate(cfg, cfg.out_dir, tmp_path / "eval.json", tmp_path / "confusion.csv")
    assert body["test"]["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert body["test"]["count"] == 100 and set(body["test"]["per_class"]) == set(map(str, range(10)))
    assert len((tmp_path / "confusion.csv").read_text().splitlines()) == 101  # header + one row per test image
    # the same evaluation from the snapshot published to a URL (read shard by shard): the same figures
    from sluice.snapshot_store import publish

    url = (tmp_path / "published").as_uri()
    publish(small_snapshot, url)
    remote = run_evaluate(cfg.model_copy(update={"snapshot": url}), cfg.out_dir, tmp_path / "e2.json", tmp_path / "c2.csv")
    assert remote["test"] == body["test"] and remote["val"] == body["val"]

    # --resume after a finished run trains nothing more and reproduces the same metrics
    again = ddp.train(cfg, resume=True)
    assert {k: v for k, v in again.items() if k not in TIMING} == {k: v for k, v in metrics.items() if k not in TIMING}


@pytest.mark.parametrize("airbench", [False, True])
def test_evaluate_with_stratified_kfold(tmp_path, small_snapshot, monkeypatch, airbench):
    monkeypatch.chdir(tmp_path)
    cfg = quick_cfg(tmp_path, small_snapshot, epochs=1, kfold=2, whiten=airbench, lookahead=airbench)
    ddp.train(cfg)
    body = run_evaluate(cfg, cfg.out_dir, tmp_path / "e.json", tmp_path / "c.csv")
    folds = body["kfold"]
    assert folds["folds"] == 2 and len(folds["fold_accuracy"]) == 2
    assert all(0 <= a <= 1 for a in folds["fold_accuracy"])
    assert json.loads((tmp_path / "e.json").read_text())["kfold"] == folds


def test_evaluate_refuses_a_model_trained_on_other_data(tmp_path, small_snapshot, demo_snapshot, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = quick_cfg(tmp_path, small_snapshot, epochs=1)
    ddp.train(cfg)
    with pytest.raises(InputError, match="was trained on dataset"):
        run_evaluate(cfg.model_copy(update={"snapshot": str(demo_snapshot)}), cfg.out_dir, tmp_path / "e.json",
                     tmp_path / "c.csv")


def test_photos_train_from_init_weights_with_a_frozen_backbone_into_a_run_folder(tmp_path, photo_snapshot,
                                                                                   monkeypatch):
    from train.model import build_model

    monkeypatch.chdir(tmp_path)
    torch.save(build_model({"arch": "resnet18"}, 1000, image_size=96).state_dict(), tmp_path / "init.pt")
    cfg = quick_cfg(tmp_path, photo_snapshot, epochs=2, batch_size=8, init_weights=str(tmp_path / "init.pt"),
                    freeze_epochs=1, test_curve=True)
    metrics = ddp.train(cfg)
    assert metrics["recipe"]["recipe"] == "photo" and metrics["recipe"]["arch"] == "resnet18"
    assert metrics["recipe"]["augment"]["resized_crop_scale"] > 0
    _, config = load_model(cfg.out_dir)
    assert config["stem"] == "standard" and config["image_shape"] == [96, 96, 3]
    run = tmp_path / "run-folders" / metrics["run_id"]
    curve = list(csv.DictReader(open(run / "curve.csv")))
    assert [int(r["epoch"]) for r in curve] == [1, 2] and all(r["test_accuracy"] and r["val_accuracy"] for r in curve)
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert json.loads(Path("reports/metrics/train.json").read_text())["run_id"] == run.name
    assert Path("reports/plots/train_curve.csv").read_text() == (run / "curve.csv").read_text()


def test_final_fit_trains_on_train_plus_val(tmp_path, small_snapshot, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    metrics = ddp.train(quick_cfg(tmp_path, small_snapshot, epochs=1, final_fit=True))
    assert "val_accuracy" not in metrics and "test_accuracy" in metrics and metrics["recipe"]["final_fit"]
    assert "on 400 images x 1 epochs" in capsys.readouterr().err  # 300 train + 100 val


def test_train_command_without_snapshot_is_one_line_exit_2(run_cli, tmp_path):
    res = run_cli("train", params={"train": {"snapshot": str(tmp_path / "missing")}})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"sluice: error: {tmp_path / 'missing'}/manifest.json: no snapshot "
                                               "manifest (run the export stage, or `sluice dataset checkout`)"]


def test_train_refuses_a_snapshot_of_one_class_in_one_line(run_cli, tmp_path):
    """One class folder trains to accuracy 1.0, a figure that says nothing: refused before any process starts."""
    import numpy as np

    from sluice.snapshot import SplitArrays, write_snapshot

    images = np.zeros((4, 8, 8, 3), np.uint8)
    split = SplitArrays(images, np.zeros(4, np.int64), np.ones(4, np.float32), [f"img{i}" for i in range(4)])
    write_snapshot(tmp_path / "snap", {"train": split, "val": split}, ["china"], {})
    res = run_cli("train", params={"train": {"snapshot": str(tmp_path / "snap"), "out_dir": str(tmp_path / "model")}})
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"sluice: error: {tmp_path / 'snap'}: the snapshot has 1 class (china): a classifier needs two or more to tell "
        "apart; add images of another class (a class folder, labels, crowd votes) and run again"]


def test_train_refuses_a_corrupt_shard_in_one_line_before_starting_workers(run_cli, tmp_path):
    from tests.train.conftest import build_snapshot

    build_snapshot(tmp_path / "snap", 60, 20, 20, shard_rows=32)
    victim = tmp_path / "snap/train-00001.images.npy"
    data = bytearray(victim.read_bytes())
    data[200] ^= 0x10
    victim.write_bytes(bytes(data))
    res = run_cli("train", params={"train": {"snapshot": str(tmp_path / "snap"), "out_dir": str(tmp_path / "model")}},
                  env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert res.returncode == 4 and "Traceback" not in res.stderr
    [line] = res.stderr.strip().splitlines()  # no torchrun launch line, no relayed worker failure
    assert "shard files hash to" in line and "but the manifest says" in line
    assert not (tmp_path / "model").exists()


# ---------------------------------------------------------------- real torchrun (slow)

def _env(params: Path) -> dict:
    return {**os.environ, "SLUICE_PARAMS": str(params), "PYTHONPATH": str(REPO)}


def _params(tmp_path: Path, snap: Path, name: str, **over) -> Path:
    import yaml

    train = {"snapshot": str(snap), "out_dir": str(tmp_path / name / "model"),
             "checkpoint_dir": str(tmp_path / name / "runs"), **over}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"train": train}))
    (tmp_path / name).mkdir(exist_ok=True)
    return path


def _sluice(args: list[str], params: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sluice.cli", *args], cwd=cwd, env=_env(params), capture_output=True,
                          text=True, timeout=timeout)


def _results(folder: Path) -> tuple[dict, list[dict], dict]:
    metrics = {k: v for k, v in json.loads((folder / "reports/metrics/train.json").read_text()).items() if k not in TIMING}
    curve = [{k: v for k, v in row.items() if k not in TIMING}
             for row in csv.DictReader(open(folder / "reports/plots/train_curve.csv"))]
    weights = torch.load(folder / "model" / "model.pt", weights_only=True)
    return metrics, curve, weights


def _interrupt(args: list[str], params: Path, cwd: Path, when: str, kill) -> tuple[int, str]:
    """Start `sluice ...`, wait for `when` in its log, call kill(proc), return (exit code, log)."""
    log = cwd / "log.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "sluice.cli", *args], cwd=cwd, env=_env(params), stderr=fh,
                                stdout=fh)
    deadline = time.time() + 300
    while when not in log.read_text():
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.05)
    kill(proc)
    return proc.wait(timeout=300), log.read_text()


@pytest.mark.slow
def test_demo_reaches_97_percent_with_two_processes_and_compare_works(tmp_path, demo_snapshot):
    params = _params(tmp_path, demo_snapshot, "run")
    res = _sluice(["train"], params, tmp_path / "run")
    assert res.returncode == 0, res.stderr
    assert "epoch 6/6" in res.stderr and "img/s" in res.stderr and "ETA" in res.stderr
    metrics = json.loads((tmp_path / "run/reports/metrics/train.json").read_text())
    assert metrics["world_size"] == 2 and metrics["test_accuracy"] >= 0.97, metrics
    # the ranks evaluated the very model that was saved (rank 0's BN statistics)
    body = run_evaluate(TrainParams(snapshot=str(demo_snapshot)), tmp_path / "run/model", tmp_path / "e.json",
                        tmp_path / "c.csv")
    assert body["test"]["accuracy"] == metrics["test_accuracy"] and body["val"]["accuracy"] == metrics["val_accuracy"]

    weak = _params(tmp_path, demo_snapshot, "weak", epochs=1, width=4, processes=1)
    assert _sluice(["train"], weak, tmp_path / "weak").returncode == 0
    res = _sluice(["compare", str(tmp_path / "run/model"), str(tmp_path / "weak/model"), "--json"], params, tmp_path)
    assert res.returncode == 0, res.stderr
    verdict = json.loads(res.stdout)
    assert verdict["count"] == 247 and verdict["a_only"] > verdict["b_only"]
    assert "significantly more accurate" in verdict["verdict"] and str(tmp_path / "run/model") in verdict["verdict"]


@pytest.mark.slow
def test_two_processes_train_from_a_snapshot_in_s3(tmp_path, small_snapshot, s3):
    published = _sluice(["dataset", "publish", "s3://snapshots/small", "--snapshot", str(small_snapshot)],
                        _params(tmp_path, small_snapshot, "pub"), tmp_path)
    assert published.returncode == 0, published.stderr
    params = _params(tmp_path, "s3://snapshots/small", "run", epochs=3, width=8, batch_size=16, cache_shards=1)
    res = _sluice(["train"], params, tmp_path / "run")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "run/reports/metrics/train.json").read_text())
    config = json.loads((tmp_path / "run/model/config.json").read_text())
    assert metrics["world_size"] == 2 and config["snapshot"] == "s3://snapshots/small"
    assert metrics["dataset_hash"] == json.loads((small_snapshot / "manifest.json").read_text())["content_hash"]
    assert metrics["test_accuracy"] > 0.25, metrics  # 3 epochs of 300 digits read shard by shard: chance is 0.1


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_gives_identical_results(tmp_path, small_snapshot):
    # with the airbench techniques on: the whitening init, lookahead's average and the alternating flip resume too; Muon too
    over = dict(epochs=4, width=4, batch_size=8, whiten=True, lookahead=True, optimizer="muon",
                augment={"flip": True, "alternate_flip": True})
    full = _params(tmp_path, small_snapshot, "full", **over)
    assert _sluice(["train"], full, tmp_path / "full").returncode == 0

    cut = _params(tmp_path, small_snapshot, "cut", **over)
    code, log = _interrupt(["train"], cut, tmp_path / "cut", "epoch 2/4", lambda p: p.send_signal(signal.SIGTERM))
    assert code == 143, log
    assert "SIGTERM: checkpoint" in log and "continue with `sluice train --resume`" in log
    assert "Traceback" not in log
    newest = ddp.complete_checkpoints(tmp_path / "cut/runs")[-1]
    stopped = ddp.load_checkpoint(newest)
    assert stopped["epoch"] == 2 and stopped["step"] > 0, newest  # inside the third epoch

    res = _sluice(["train", "--resume"], cut, tmp_path / "cut")
    assert res.returncode == 0, res.stderr
    assert "resumed from" in res.stderr
    m_full, c_full, w_full = _results(tmp_path / "full")
    m_cut, c_cut, w_cut = _results(tmp_path / "cut")
    assert m_cut == m_full and c_cut == c_full
    assert all(torch.equal(w_full[k], w_cut[k]) for k in w_full)


@pytest.mark.slow
def test_worker_crash_restarts_and_resumes_to_identical_results(tmp_path, small_snapshot):
    import psutil

    over = dict(epochs=3, width=4, batch_size=16)
    full = _params(tmp_path, small_snapshot, "full", **over)
    assert _sluice(["train"], full, tmp_path / "full").returncode == 0

    crash = _params(tmp_path, small_snapshot, "crash", **over)

    def kill_a_worker(proc):
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "train.ddp" in " ".join(c.cmdline())]
        workers[-1].send_signal(signal.SIGKILL)

    code, log = _interrupt(["train", "--resume", "--max-restarts", "1"], crash, tmp_path / "crash", "epoch 2/3",
                           kill_a_worker)
    assert code == 0, log
    assert "resumed from" in log
    assert _results(tmp_path / "crash")[:2] == _results(tmp_path / "full")[:2]


@pytest.mark.slow
def test_resume_refuses_a_changed_snapshot(tmp_path, small_snapshot, demo_snapshot):
    params = _params(tmp_path, small_snapshot, "a", epochs=1, width=4, processes=1)
    assert _sluice(["train"], params, tmp_path / "a").returncode == 0
    other = _params(tmp_path, demo_snapshot, "a", epochs=1, width=4, processes=1)
    res = _sluice(["train", "--resume"], other, tmp_path / "a")
    assert res.returncode == 2
    assert "checkpoint was trained on dataset" in res.stderr and len(res.stderr.strip().splitlines()) == 1
