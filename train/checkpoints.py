"""Atomic training checkpoints: write (temp file, fsync, rename, completion marker), list, prune, load
with ``weights_only=True``, and the checks that refuse a checkpoint from other data, another world size
or other training settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from sluice.config import TrainParams
from sluice.errors import InputError

DONE = ".done"
# Settings that may change between a run and its resume without changing the result.
RESUME_FREE = {"checkpoint_dir", "keep_checkpoints", "out_dir", "compile", "kfold", "eval_batch_size", "snapshot",
               "runs_dir", "test_curve"}


def checkpoint_name(epoch: int, step: int) -> str:
    """``ckpt-e<epoch>-s<step>.pt``: resume at ``step`` batches into ``epoch`` (0-based)."""
    return f"ckpt-e{epoch:04d}-s{step:06d}.pt"


def complete_checkpoints(folder: Path | str) -> list[Path]:
    """Checkpoints whose completion marker exists, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("ckpt-e*-s*.pt") if p.with_name(p.name + DONE).is_file())


def save_checkpoint(folder: Path | str, state: dict, keep: int) -> Path:
    """Write atomically: temp file, fsync, rename, then the completion marker; prune old ones."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(state["epoch"], state["step"])
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    path.with_name(path.name + DONE).write_text(json.dumps({"epoch": state["epoch"], "step": state["step"]}) + "\n")
    for old in complete_checkpoints(folder)[:-keep]:
        old.with_name(old.name + DONE).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return path


def clear_checkpoints(folder: Path | str) -> None:
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob("ckpt-e*"):
            p.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign or corrupt file: say which and why, in one line
        raise InputError(f"{path}: cannot load checkpoint ({type(err).__name__}: {err}); delete it to start over") from None


def check_resumable(state: dict, cfg: TrainParams, dataset_hash: str, world_size: int, path: Path) -> None:
    """Refuse a checkpoint made on other data, another world size or other training settings."""
    if state["dataset_hash"] != dataset_hash:
        raise InputError(f"{path}: checkpoint was trained on dataset {state['dataset_hash'][:12]} but the snapshot "
                         f"is {dataset_hash[:12]}; start without --resume or check out the matching snapshot")
    if state["world_size"] != world_size:
        raise InputError(f"{path}: checkpoint has {state['world_size']} ranks but this run has {world_size}; "
                         f"resume with --nproc_per_node={state['world_size']} (train.processes) or start over")
    saved, now = json.loads(state["config"]), cfg.model_dump(mode="json")
    changed = [k for k in now if k not in RESUME_FREE and saved.get(k) != now[k]]
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise InputError(f"{path}: train params changed since the checkpoint ({diffs}); start without --resume")
