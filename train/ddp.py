"""The distributed trainer: ``torchrun --nproc_per_node=N -m train.ddp [--resume]`` (or ``sluice train``).

Backend gloo on CPU and NCCL on GPU, chosen automatically; without torchrun's environment it runs as
a single process. Rank 0 alone logs and writes. Every epoch, and when SIGTERM arrives, the ranks
agree on a step boundary (one tiny all-reduce per step) and rank 0 writes an atomic checkpoint:
model, optimiser, scheduler, epoch and step, the RNG states of every rank, the metrics so far, the
resolved config and the dataset hash. ``--resume`` continues from the newest complete checkpoint,
so a killed run ends with the same metrics as an uninterrupted one (CPU, same world size).

The recipe (``train.recipe``, train/presets.py) is resolved against the snapshot first and printed;
the epoch loop is ``train.recipe.fit``, shared with k-fold evaluation and compress fine-tuning.

Outputs (rank 0): ``<out_dir>/model.pt`` + ``config.json`` + ``MODEL_CARD.md``; a per-run folder
``<runs_dir>/<run_id>/`` with ``metrics.json`` and ``curve.csv`` (val accuracy per epoch, and test
accuracy with ``train.test_curve``), the curve rewritten after every epoch so an interrupted run keeps
it whatever ``keep_checkpoints`` prunes; ``reports/metrics/train.json`` and
``reports/plots/train_curve.csv`` (DVC-tracked) are copies of the latest run's, naming its ``run_id``.
Checkpoints in ``checkpoint_dir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sluice import snapshot_store
from sluice.config import TrainParams
from sluice.errors import InputError
from train.checkpoints import (  # noqa: F401
    DONE,
    RESUME_FREE,
    check_resumable,
    checkpoint_name,
    clear_checkpoints,
    complete_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from train.airbench import Lookahead, prepare
from train.data import Data, LoaderSpec, load_data
from train.engine import EvalResult, evaluate, make_criterion
from train.model import build_model, head_parameters, model_config, save_model, unwrap
from train.presets import describe, resolve
from train.recipe import Recipe, fit
from train.reports import class_report, hardware, model_card, write_json
from train.weights import load_init_weights

from sluice.paths import TRAIN_CURVE, TRAIN_METRICS  # noqa: E402
EXIT_SIGTERM = 143


def log(rank: int, msg: str) -> None:
    if rank == 0:
        print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- distributed setup

class Context:
    def __init__(self, cfg: TrainParams):
        self.distributed = "WORLD_SIZE" in os.environ and "RANK" in os.environ
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise InputError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
        local_ranks, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count() if use_cuda else 0
        if use_cuda and local_ranks > gpus:
            raise InputError(f"{local_ranks} processes on this node but {gpus} GPU(s): NCCL needs a GPU per process; "
                             f"start {gpus} (torchrun --nproc_per_node={gpus}; `sluice train` does) or set train.device: cpu")
        if use_cuda:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        torch.set_num_threads(cfg.threads_per_process)
        if self.distributed:
            # torchrun shares one TCPStore across worker-group restarts, so a restarted group could read
            # the dead group's addresses (pytorch/pytorch#135712); a per-restart key prefix isolates them.
            store, rank, world_size = next(dist.rendezvous("env://"))
            store = dist.PrefixStore(f"sluice-restart-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
            dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world_size,
                                    device_id=self.device if use_cuda else None)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when distributed (gradients all-reduced in place in
        DDP's buckets: ``gradient_as_bucket_view`` saves a copy of every gradient per step)."""
        if not self.distributed:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       gradient_as_bucket_view=True)

    def all_sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


class StopFlag:
    """SIGTERM sets a local flag; ``__call__`` (after each step) agrees on it across all ranks."""

    def __init__(self, ctx: Context):
        self.ctx, self.local = ctx, False
        self.flag = torch.zeros(1, dtype=torch.int32, device=ctx.device)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.local = True

    def __call__(self) -> bool:
        self.flag.fill_(int(self.local))
        if self.ctx.distributed:
            dist.all_reduce(self.flag, op=dist.ReduceOp.MAX)
        return bool(self.flag.item())


# ---------------------------------------------------------------- the run

def evaluate_all(ctx: Context, model, loader, num_classes: int, criterion, autocast) -> EvalResult | None:
    """Evaluate each rank's block of a split and sum the confusion matrices and losses over ranks."""
    if loader is None:
        return None
    if ctx.distributed:  # each rank's last forward updated its own BN statistics: use rank 0's (the saved model)
        for buf in unwrap(model).buffers():
            dist.broadcast(buf, src=0)
    res = evaluate(unwrap(model), loader, num_classes=num_classes, device=ctx.device, criterion=criterion,
                   autocast_dtype=autocast)
    flat = ctx.all_sum([res.loss_sum, *res.confusion.flatten().tolist()])
    confusion = torch.tensor(flat[1:], dtype=torch.int64).view(num_classes, num_classes)
    return EvalResult(flat[0], confusion, res.predictions, res.targets)


def rank_state(data: Data, ctx: Context) -> dict:
    state = {"loader": data.train.state_dict()["generator"].cpu(), "torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def restore_rank_state(state: dict, data: Data, ctx: Context) -> None:
    data.train.load_state_dict({"generator": state["loader"]})
    torch.set_rng_state(state["torch"])
    if ctx.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], ctx.device)


def autocast_dtype(cfg: TrainParams, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on a GPU that computes bf16 natively (compute capability 8 on: A100, H100, RTX 30xx);
    older ones (T4, V100) would emulate it, slower than fp32, so they train in fp32."""
    if not (cfg.bf16 and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else None


def fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


def train(cfg: TrainParams, resume: bool = False, metrics_path: Path | str = TRAIN_METRICS,
          curve_path: Path | str = TRAIN_CURVE) -> dict | None:
    """Train on ``cfg.snapshot``; returns the final metrics on rank 0 (None elsewhere)."""
    ctx = Context(cfg)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return _train(ctx, cfg, resume, Path(metrics_path), Path(curve_path))
    finally:
        signal.signal(signal.SIGTERM, previous)
        ctx.close()


def _train(ctx: Context, cfg: TrainParams, resume: bool, metrics_path: Path, curve_path: Path) -> dict | None:
    rank, started = ctx.rank, time.perf_counter()
    torch.manual_seed(cfg.seed + rank)
    run_cfg, recipe_name = resolve(cfg, snapshot_store.read_manifest(cfg.snapshot), ctx.device.type)
    data = load_data(cfg.snapshot, LoaderSpec.of(run_cfg), rank=rank, world_size=ctx.world_size, device=ctx.device)
    if data.train is None:
        raise InputError(f"{cfg.snapshot}: snapshot has no train split")
    k, shape = data.num_classes, data.manifest["image_shape"]
    model = build_model(run_cfg, k, min(shape[:2]))
    if run_cfg.init_weights:
        n = load_init_weights(model, run_cfg.init_weights, run_cfg.arch)
        log(rank, f"[train] init_weights: {n} tensors from {run_cfg.init_weights} (head replaced)")
    prepare(model, run_cfg, data)
    model = model.to(ctx.device, memory_format=torch.channels_last)
    net = ctx.wrap(model)
    if cfg.compile:
        net = torch.compile(net)
    autocast = autocast_dtype(cfg, ctx.device)
    if cfg.bf16 and ctx.device.type == "cuda" and autocast is None:
        log(rank, f"[train] bf16 off: {torch.cuda.get_device_name(ctx.device)} has no native bf16 (compute capability "
                  f"{'.'.join(map(str, torch.cuda.get_device_capability(ctx.device)))}); training in fp32")
    steps = len(data.train)
    recipe = Recipe.of(run_cfg)
    optimizer = recipe.make_optimizer(model, head_parameters(model, run_cfg.arch))
    scheduler = recipe.scheduler(optimizer, steps)
    lookahead = Lookahead(model, recipe.epochs * steps) if run_cfg.lookahead else None
    eval_criterion = make_criterion()
    ckpt_dir = Path(cfg.checkpoint_dir)

    start, history, partial = (0, 0), [], [0.0, 0.0, 0.0, 0.0]
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + data.dataset_hash[:8]
    found = complete_checkpoints(ckpt_dir) if resume else []
    if found:
        state = load_checkpoint(found[-1])
        check_resumable(state, cfg, data.dataset_hash, ctx.world_size, found[-1])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if lookahead is not None and state.get("lookahead"):
            lookahead.load_state_dict(state["lookahead"])
        restore_rank_state(state["ranks"][rank], data, ctx)
        start = (state["epoch"], state["step"])
        history, partial = list(state["history"]), list(state["partial"])
        run_id = state.get("run_id", run_id)
        log(rank, f"[train] resumed from {found[-1]} (epoch {start[0] + 1}, step {start[1]}/{steps})")
    else:
        if resume:
            log(rank, f"[train] --resume: no complete checkpoint in {ckpt_dir}; starting from scratch")
        if rank == 0:
            clear_checkpoints(ckpt_dir)
    run_id = ctx.gather(run_id)[0]  # rank 0's clock names the run
    run_dir = Path(cfg.runs_dir) / run_id
    ctx.barrier()

    def checkpoint(epoch: int, step: int) -> Path | None:
        ranks = ctx.gather(rank_state(data, ctx))
        path = None
        if rank == 0:
            path = save_checkpoint(ckpt_dir, {
                "model": {k_: v.cpu() for k_, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "lookahead": lookahead.state_dict() if lookahead is not None else None,
                "epoch": epoch, "step": step, "ranks": ranks, "history": history, "partial": partial,
                "world_size": ctx.world_size, "dataset_hash": data.dataset_hash, "run_id": run_id,
                "config": json.dumps(cfg.model_dump(mode="json"), sort_keys=True)}, cfg.keep_checkpoints)
        ctx.barrier()
        return path

    def accumulate(stats) -> None:
        nonlocal partial
        loss_sum, correct, count, secs = ctx.all_sum([stats.loss_sum, stats.correct, stats.count, stats.seconds])
        partial = [partial[0] + loss_sum, partial[1] + correct, partial[2] + count, partial[3] + secs / ctx.world_size]

    def on_epoch(epoch: int, stats) -> None:
        nonlocal partial
        accumulate(stats)
        val = evaluate_all(ctx, net, data.val, k, eval_criterion, autocast)
        test = evaluate_all(ctx, net, data.test, k, eval_criterion, autocast) if cfg.test_curve else None
        row = {"epoch": epoch + 1, "loss": partial[0] / max(partial[2], 1), "accuracy": partial[1] / max(partial[2], 1),
               "val_loss": val.loss if val else None, "val_accuracy": val.accuracy if val else None,
               **({"test_accuracy": test.accuracy if test else None} if cfg.test_curve else {}),
               "images_per_s": partial[2] / max(partial[3], 1e-9), "seconds": partial[3]}
        history.append(row)
        partial = [0.0, 0.0, 0.0, 0.0]
        eta = sum(h["seconds"] for h in history) / len(history) * (run_cfg.epochs - epoch - 1)
        log(rank, f"[train] epoch {epoch + 1}/{run_cfg.epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
                  + (f"val_acc {row['val_accuracy']:.4f}  " if val else "")
                  + (f"test_acc {row['test_accuracy']:.4f}  " if test else "")
                  + f"{row['images_per_s']:.0f} img/s  ETA {fmt_eta(eta)}")
        if rank == 0:
            write_curve(run_dir / "curve.csv", history)
        checkpoint(epoch + 1, 0)

    backend = dist.get_backend() if ctx.distributed else "single process"
    log(rank, f"[train] recipe {json.dumps(describe(run_cfg, recipe_name))}")
    log(rank, f"[train] {run_cfg.arch} w{run_cfg.width} d{run_cfg.depth} on {len(data.train.split)} images x "
              f"{run_cfg.epochs} epochs: {ctx.world_size} x {ctx.device.type} ({backend}), {steps} steps/epoch of "
              f"{data.train.images_per_step} images; run {run_dir}")
    result = fit(model, data.train, recipe, net=net, optimizer=optimizer, scheduler=scheduler,
                 class_weights=data.class_weights, device=ctx.device, autocast_dtype=autocast, start=start,
                 should_stop=StopFlag(ctx), on_epoch=on_epoch, progress_bar=rank == 0,
                 on_step=lookahead.step if lookahead is not None else None)
    if result.stopped_at is not None:
        epoch, step = result.stopped_at
        if step:
            accumulate(result.last)
            path = checkpoint(epoch, step)
            log(rank, f"[train] SIGTERM: checkpoint {path} at epoch {epoch + 1} step {step}; "
                      f"continue with `sluice train --resume`")
        else:
            log(rank, "[train] SIGTERM at an epoch end: checkpoint written; continue with `sluice train --resume`")
        raise SystemExit(EXIT_SIGTERM)

    if lookahead is not None:
        lookahead.finish()  # the final model is the averaged one
    test = evaluate_all(ctx, net, data.test, k, eval_criterion, autocast)
    val = evaluate_all(ctx, net, data.val, k, eval_criterion, autocast)
    if rank != 0:
        return None
    return write_outputs(run_cfg, recipe_name, run_dir, ctx, data, model, history, {"val": val, "test": test},
                         metrics_path, curve_path, time.perf_counter() - started)


def write_curve(path: Path, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        # the union of the rows' keys: test_curve may be switched on at a resume
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for h in history for k in h)), restval="")
        w.writeheader()
        for h in history:
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()})
    tmp.replace(path)


def write_outputs(cfg: TrainParams, recipe_name: str, run_dir: Path, ctx: Context, data: Data, model,
                  history: list[dict], results: dict, metrics_path: Path, curve_path: Path, seconds: float) -> dict:
    reports = {name: class_report(r.confusion, data.classes) for name, r in results.items() if r is not None}
    last = history[-1]
    metrics = {"epochs": cfg.epochs, "world_size": ctx.world_size, "hardware": hardware(),
               "train_loss": round(last["loss"], 6), "train_accuracy": round(last["accuracy"], 6),
               "images_per_s": round(sum(h["images_per_s"] for h in history) / len(history), 1),
               "seconds": round(seconds, 3), "dataset_hash": data.dataset_hash, "run_id": run_dir.name,
               "recipe": describe(cfg, recipe_name),
               "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               **{f"{name}_accuracy": rep["accuracy"] for name, rep in reports.items()},
               **{f"{name}_loss": round(results[name].loss, 6) for name in reports}}
    manifest = data.manifest
    config = {**model_config(cfg, data.num_classes, min(manifest["image_shape"][:2])), "classes": data.classes,
              "image_shape": manifest["image_shape"], "mean": data.mean.tolist(), "std": data.std.tolist(),
              "snapshot": str(cfg.snapshot), "dataset_hash": data.dataset_hash,
              "table_versions": manifest.get("table_versions", {}), "run_id": run_dir.name}
    out = Path(cfg.out_dir)
    save_model(out, model, config)
    (out / "MODEL_CARD.md").write_text(model_card(config, metrics, reports, cfg.model_dump(mode="json")))
    write_json(run_dir / "metrics.json", metrics)
    write_curve(run_dir / "curve.csv", history)
    write_json(metrics_path, metrics)  # the DVC-tracked copies: the latest run's
    curve_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "curve.csv", curve_path)
    summary = "  ".join(f"{name} accuracy {rep['accuracy']:.4f}" for name, rep in reports.items())
    print(f"[train] done in {seconds:.1f} s: {summary}; model in {out}, run in {run_dir}", file=sys.stderr, flush=True)
    return metrics

def main(argv: list[str] | None = None) -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    parser = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m train.ddp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    args = parser.parse_args(argv)
    stage_main(lambda: (train(load_params().train, resume=args.resume), 0)[1])


if __name__ == "__main__":
    main()
