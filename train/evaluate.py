"""Evaluation of a trained model: accuracy, per-class precision and recall, confusion matrix, the model
card, and optional stratified k-fold cross-validation.

Stage ``evaluate`` (``python -m train.evaluate``): reads ``models/fp32`` and the snapshot, writes
``reports/metrics/eval.json`` and ``reports/plots/confusion.csv`` (one ``actual,predicted`` row per
test image). With ``train.kfold: K`` it also trains K single-process models on stratified folds
of train+val and reports the mean and spread of their accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sluice import snapshot
from sluice.config import TrainParams
from sluice.errors import InputError
from train.data import Data, load_data
from train.engine import EvalResult, evaluate, make_criterion, make_optimizer, make_scheduler, train_one_epoch
from train.model import build_model, load_model

METRICS = Path("reports/metrics/eval.json")
CONFUSION = Path("reports/plots/confusion.csv")


def class_report(confusion: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, macro precision/recall and per-class precision, recall and support."""
    cm = confusion.double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))
    present = actual > 0
    total = float(cm.sum())
    return {
        "count": int(total),
        "accuracy": round(float(tp.sum()) / max(total, 1.0), 6),
        "macro_precision": round(float(precision[present].mean()) if present.any() else 0.0, 6),
        "macro_recall": round(float(recall[present].mean()) if present.any() else 0.0, 6),
        "per_class": {c: {"precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                          "support": int(actual[i])} for i, c in enumerate(classes)},
    }


def write_confusion_csv(path: Path | str, confusion: torch.Tensor, classes: list[str]) -> Path:
    """One ``actual,predicted`` row per evaluated image: DVC's confusion template counts rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["actual", "predicted"])
        for i, a in enumerate(classes):
            for j, p in enumerate(classes):
                out.writerows([[a, p]] * int(confusion[i, j]))
    return path


def write_json(path: Path | str, body: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()}"


def model_card(config: dict, train_metrics: dict, reports: dict[str, dict], params: dict) -> str:
    """The model card: what the model is, what it was trained on, how, how well, on what hardware."""
    lines = [f"# Model card: {config['arch']} (width {config['width']}, depth {config['depth']})", "",
             "Image classifier trained by Sluice's DDP trainer (`sluice train`).", "",
             "## Data", "",
             f"- Snapshot: `{config['snapshot']}`, content hash `{config['dataset_hash']}`",
             f"- Table versions: `{json.dumps(config.get('table_versions', {}), sort_keys=True)}`",
             f"- Classes ({len(config['classes'])}): {', '.join(config['classes'])}",
             f"- Input: {config['image_shape'][0]}x{config['image_shape'][1]} RGB, normalised with mean "
             f"{config['mean']} and std {config['std']} (train split)", "",
             "## Training", "",
             f"- {train_metrics['epochs']} epochs, {train_metrics['world_size']} process(es) on "
             f"{train_metrics['hardware']}, {train_metrics['seconds']:.1f} s, "
             f"{train_metrics['images_per_s']:.0f} images/s",
             f"- Finished {train_metrics['finished_at']}", "",
             "```yaml", *[f"{k}: {json.dumps(v)}" for k, v in sorted(params.items())], "```", "",
             "## Metrics", ""]
    for split, rep in reports.items():
        lines += [f"### {split} ({rep['count']} images): accuracy {rep['accuracy']:.4f}, macro precision "
                  f"{rep['macro_precision']:.4f}, macro recall {rep['macro_recall']:.4f}", "",
                  "| class | precision | recall | support |", "|---|---|---|---|",
                  *[f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['support']} |"
                    for c, m in rep["per_class"].items()], ""]
    lines += ["## Limits", "",
              "Measured only on the snapshot's own val/test splits; no claim outside that distribution.", ""]
    return "\n".join(lines)


def evaluate_split(model: torch.nn.Module, loader, num_classes: int) -> EvalResult:
    return evaluate(model, loader, num_classes=num_classes, device="cpu")


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Split indices into k folds with each class spread evenly (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        for j, i in enumerate(idx):
            folds[(j + offset) % k].append(int(i))
        offset += len(idx)
    return [np.sort(np.array(f, np.int64)) for f in folds]


def train_val(folder: Path) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """The snapshot's train and val splits joined: (manifest, images, labels, image ids)."""
    manifest = snapshot.read_manifest(folder)
    parts = [snapshot.load_split(folder, s, mmap=False) for s in ("train", "val") if s in manifest["splits"]]
    return (manifest, np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
            [i for p in parts for i in p.ids])


def fold_models(folder: Path, cfg: TrainParams, k: int, workdir: Path) -> Iterator[tuple[int, np.ndarray, torch.nn.Module, Data]]:
    """Train one single-process model per stratified fold of train+val; yield ``(fold, held-out
    indices into train+val, model, data)`` where ``data.val`` iterates the held-out images in order."""
    manifest, images, labels, _ = train_val(folder)
    if min(np.bincount(labels)) < 1 or len(labels) < 2 * k:
        raise InputError(f"{folder}: {len(labels)} train+val images are too few for {k}-fold cross-validation")
    for i, held in enumerate(stratified_folds(labels, k, cfg.seed)):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        sub = workdir / f"fold-{i}"
        split = lambda ix: snapshot.SplitArrays(images[ix], labels[ix], np.ones(len(ix), np.float32),
                                                [str(j) for j in ix])  # noqa: E731
        snapshot.write_snapshot(sub, {"train": split(keep), "val": split(held)}, manifest["classes"],
                                {"mean": manifest.get("mean"), "std": manifest.get("std")})
        data = load_data(sub, cfg, splits=("train", "val"))
        model = build_model(cfg, data.num_classes).to(memory_format=torch.channels_last)
        opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
        steps = len(data.train)
        sched = make_scheduler(opt, cfg.epochs * steps, int(cfg.warmup_epochs * steps), cfg.schedule)
        crit = make_criterion(cfg.label_smoothing, data.class_weights)
        for epoch in range(cfg.epochs):
            data.train.set_epoch(epoch)
            train_one_epoch(model, data.train, opt, sched, criterion=crit, desc=f"fold {i} epoch {epoch}")
        yield i, held, model, data


def kfold(folder: Path, cfg: TrainParams, k: int, workdir: Path) -> dict:
    """Train k single-process models on stratified folds of train+val; report accuracy mean and std."""
    accs = []
    for i, _, model, data in fold_models(folder, cfg, k, workdir):
        acc = evaluate_split(model, data.val, data.num_classes).accuracy
        print(f"[evaluate] fold {i + 1}/{k}: accuracy {acc:.4f}", flush=True)
        accs.append(acc)
    return {"folds": k, "accuracy_mean": round(float(np.mean(accs)), 6),
            "accuracy_std": round(float(np.std(accs)), 6), "fold_accuracy": [round(a, 6) for a in accs]}


def run(cfg: TrainParams, model_dir: Path | str, metrics_path: Path | str = METRICS,
        confusion_path: Path | str = CONFUSION) -> dict:
    torch.set_num_threads(cfg.threads_per_process * cfg.processes)
    model, config = load_model(model_dir)
    model = model.to(memory_format=torch.channels_last)
    folder = Path(cfg.snapshot)
    data = load_data(folder, cfg, splits=("val", "test"))
    if config.get("dataset_hash") and config["dataset_hash"] != data.dataset_hash:
        raise InputError(f"{model_dir} was trained on dataset {config['dataset_hash'][:12]} but {folder} is "
                         f"{data.dataset_hash[:12]}; retrain (sluice train) or check out the matching snapshot")
    if config.get("classes") and config["classes"] != data.classes:
        raise InputError(f"{model_dir}: its classes differ from {folder}'s; retrain on this snapshot")
    start = time.perf_counter()
    body: dict = {"model": str(model_dir), "dataset_hash": data.dataset_hash}
    for name, loader in (("val", data.val), ("test", data.test)):
        if loader is None:
            continue
        result = evaluate_split(model, loader, data.num_classes)
        body[name] = class_report(result.confusion, data.classes) | {"loss": round(result.loss, 6)}
        if name == "test":
            write_confusion_csv(confusion_path, result.confusion, data.classes)
        print(f"[evaluate] {name}: accuracy {body[name]['accuracy']:.4f} on {body[name]['count']} images", flush=True)
    if "test" not in body:
        raise InputError(f"{folder}: snapshot has no test split to evaluate on")
    if cfg.kfold:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="sluice-kfold-") as tmp:
            body["kfold"] = kfold(folder, cfg, cfg.kfold, Path(tmp))
    body["seconds"] = round(time.perf_counter() - start, 3)
    write_json(metrics_path, body)
    return body


def main(argv: list[str] | None = None) -> None:
    from sluice.stage import stage_main
    from sluice.config import load_params

    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: train.out_dir)")
    args = parser.parse_args(argv)

    def go():
        cfg = load_params().train
        run(cfg, args.model or cfg.out_dir)

    stage_main(go)


if __name__ == "__main__":
    main()
