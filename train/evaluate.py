"""Evaluation of a trained model: accuracy, per-class precision and recall, confusion matrix, the model
card, and optional stratified k-fold cross-validation.

Stage ``evaluate`` (``python -m train.evaluate``): reads ``models/fp32`` and the snapshot, writes
``reports/metrics/eval.json`` and ``reports/plots/confusion.csv`` (one ``actual,predicted`` row per
test image). With ``train.kfold: K`` it also trains K single-process models on stratified folds
of train+val and reports the mean and spread of their accuracy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sluice import snapshot, snapshot_store
from sluice.config import TrainParams
from sluice.errors import InputError
from sluice.split_units import image_subjects, units
from sluice.stage import stage_logger
from train.airbench import Lookahead, prepare
from train.data import Data, LoaderSpec, load_data
from train.engine import EvalResult, evaluate
from train.model import build_model, head_parameters, load_model
from train.presets import resolve
from train.recipe import Recipe, fit
from train.reports import class_report, write_confusion_csv, write_json
from train.weights import load_init_weights

from sluice.paths import CONFUSION, EVAL_METRICS as METRICS  # noqa: E402


def evaluate_split(model: torch.nn.Module, loader, num_classes: int) -> EvalResult:
    return evaluate(model, loader, num_classes=num_classes, device="cpu")


def stratified_folds(labels: np.ndarray, k: int, seed: int, units: np.ndarray | None = None) -> list[np.ndarray]:
    """Split indices into k folds with each class spread evenly (deterministic for a seed). ``units`` (an id a
    row; sluice/split_units.py) keeps the rows of one subject, a patient or a lesion, in one fold: a model held
    out from an image is then held out from its subject too, as the dataset's splits are."""
    rng = np.random.default_rng(seed)
    if units is None or len(np.unique(units)) == len(units):
        items, members = labels, None
    else:  # each unit an item, labelled by its first row
        _, first, members = np.unique(units, return_index=True, return_inverse=True)
        items = labels[first]
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(items):
        idx = rng.permutation(np.flatnonzero(items == c))
        for j, i in enumerate(idx):
            folds[(j + offset) % k].append(int(i))
        offset += len(idx)
    if members is not None:
        folds = [np.flatnonzero(np.isin(members, f)).tolist() for f in folds]
    return [np.sort(np.array(f, np.int64)) for f in folds]


def subject_units(lake, ids: list[str]) -> np.ndarray | None:
    """Each image's unit (the images of one subject its source names: sluice/split_units.py) where the lake names
    subjects, else None; an image the lake does not group is a unit of its own."""
    subjects = image_subjects(lake)
    if subjects.is_empty() or not lake.exists("image_groups"):
        return None
    import polars as pl

    groups = pl.from_arrow(lake.read("image_groups", columns=["image_id", "dup_group"]))
    unit_of = dict(groups.join(units(groups, subjects), on="dup_group").select("image_id", "unit").iter_rows())
    return np.array([unit_of.get(i, i) for i in ids], dtype=object)


def train_val(folder: Path) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """The snapshot's train and val splits joined: (manifest, images, labels, image ids)."""
    manifest = snapshot_store.read_manifest(folder)
    parts = [snapshot_store.load_split(folder, s, mmap=False) for s in ("train", "val") if s in manifest["splits"]]
    return (manifest, np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
            [i for p in parts for i in p.ids])


def fold_models(folder: Path, cfg: TrainParams, k: int, workdir: Path, log=None,
                lake=None) -> Iterator[tuple[int, np.ndarray, torch.nn.Module, Data]]:
    """Train one single-process model per stratified fold of train+val with the training recipe; yield
    ``(fold, held-out indices into train+val, model, data)`` where ``data.val`` iterates the held-out
    images in order. ``log`` (a logger) gets a line per epoch: k models can take a while. With the
    ``lake``, each subject it names keeps its images in one fold (:func:`subject_units`)."""
    manifest, images, labels, ids = train_val(folder)
    units = subject_units(lake, ids) if lake is not None else None
    if min(np.bincount(labels)) < 1 or len(labels) < 2 * k:
        raise InputError(f"{folder}: {len(labels)} train+val images are too few for {k}-fold cross-validation")
    cfg, _ = resolve(cfg.model_copy(update={"final_fit": False}),
                     {**manifest, "splits": {"train": {"rows": len(labels) * (k - 1) // k}}})
    for i, held in enumerate(stratified_folds(labels, k, cfg.seed, units)):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        sub = workdir / f"fold-{i}"
        split = lambda ix: snapshot.SplitArrays(images[ix], labels[ix], np.ones(len(ix), np.float32),  # noqa: E731
                                                [str(j) for j in ix])
        snapshot.write_snapshot(sub, {"train": split(keep), "val": split(held)}, manifest["classes"],
                                {"mean": manifest.get("mean"), "std": manifest.get("std")})
        data = load_data(sub, LoaderSpec.of(cfg), splits=("train", "val"))
        torch.manual_seed(cfg.seed + i)  # each fold's initial weights are a function of the seed: reruns agree
        model = build_model(cfg, data.num_classes, min(manifest["image_shape"][:2]))
        if cfg.init_weights:
            load_init_weights(model, cfg.init_weights, cfg.arch)
        prepare(model, cfg, data)
        model = model.to(memory_format=torch.channels_last)
        lookahead = Lookahead(model, cfg.epochs * len(data.train)) if cfg.lookahead else None
        fit(model, data.train, Recipe.of(cfg), class_weights=data.class_weights, desc=f"fold {i + 1} epoch",
            head=head_parameters(model, cfg.arch), on_step=lookahead.step if lookahead is not None else None)
        if lookahead is not None:
            lookahead.finish()
        yield i, held, model, data


def kfold(folder: Path, cfg: TrainParams, k: int, workdir: Path, lake=None) -> dict:
    """Train k single-process models on stratified folds of train+val (a subject the ``lake`` names in one
    fold); report accuracy mean and std."""
    accs = []
    for i, _, model, data in fold_models(folder, cfg, k, workdir, log=stage_logger("evaluate"), lake=lake):
        acc = evaluate_split(model, data.val, data.num_classes).accuracy
        print(f"[evaluate] fold {i + 1}/{k}: accuracy {acc:.4f}", flush=True)
        accs.append(acc)
    return {"folds": k, "accuracy_mean": round(float(np.mean(accs)), 6),
            "accuracy_std": round(float(np.std(accs)), 6), "fold_accuracy": [round(a, 6) for a in accs]}


def run(cfg: TrainParams, model_dir: Path | str, metrics_path: Path | str = METRICS,
        confusion_path: Path | str = CONFUSION, lake=None) -> dict:
    torch.set_num_threads(cfg.threads_per_process * cfg.processes)
    model, config = load_model(model_dir)
    model = model.to(memory_format=torch.channels_last)
    folder = snapshot_store.location(cfg.snapshot)
    data = load_data(folder, LoaderSpec(eval_batch_size=cfg.eval_batch_size), splits=("val", "test"))
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
            body["kfold"] = kfold(folder, cfg, cfg.kfold, Path(tmp), lake)
    body["seconds"] = round(time.perf_counter() - start, 3)
    write_json(metrics_path, body)
    return body


def main(argv: list[str] | None = None) -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: train.out_dir)")
    args = parser.parse_args(argv)

    def go():
        from sluice.lake import Lake

        params = load_params()
        run(params.train, args.model or params.train.out_dir, lake=Lake.from_params(params))

    stage_main(go)


if __name__ == "__main__":
    main()
