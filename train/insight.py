"""Stage ``insight`` (``python -m train.insight``): why the model decides and how it breaks.

- **Saliency**: Grad-CAM (train/gradcam.py) of the fp32 model (``train.out_dir``) on test images:
  ``insight.saliency_per_class`` correctly predicted images per class (the first in test order) and
  the ``insight.saliency_mistakes`` most confident mistakes, each explained for the class the model
  predicted. Overlays go to ``<out_dir>/saliency/<kind>_<n>_<image_id[:12]>.png`` and the list to
  ``<out_dir>/saliency.json``: ``[{file, image_id, kind, label, predicted, confidence}]`` (``file``
  relative to ``out_dir``; ``kind`` is ``class_sample`` or ``mistake``).
- **Robustness** (train/robustness.py): the first ``insight.robustness.images`` test images under
  every corruption and severity and every attack and eps, for fp32 and each compressed variant the
  compress stage left in ``compress.out_dir`` -> ``<out_dir>/robustness.json``; a per-variant summary
  -> ``insight.robustness_metrics``; and the trade-off table with robustness columns (the compress
  stage's accuracy, size and latency per variant beside mean corruption accuracy and attack accuracy)
  -> ``insight.robustness_plot``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sluice import snapshot, snapshot_store
from sluice.config import Params
from sluice.errors import InputError
from train.data import load_data, normalize
from train.gradcam import grad_cam, overlay, save_png, target_layer
from train.model import CONFIG, load_inference_model, load_model
from train.quantize import PROGRAM
from train.reports import write_json
from train.robustness import Settings, evaluate_variants

STAGE = "insight"
TRADEOFF_COLUMNS = ("accuracy", "weights_bytes", "eager_b64_ms", "compiled_b64_ms")


def log(msg: str) -> None:
    print(f"[{STAGE}] {msg}", file=sys.stderr, flush=True)


def eval_split(folder: Path) -> tuple[str, snapshot.SplitArrays]:
    manifest = snapshot_store.read_manifest(folder)
    for split in ("test", "val"):
        if split in manifest["splits"]:
            return split, snapshot_store.load_split(folder, split)
    raise InputError(f"{folder}: the insight stage needs a test (or val) split")


def pick_saliency(labels: np.ndarray, probs: np.ndarray, per_class: int, mistakes: int) -> list[tuple[str, int]]:
    """(kind, index) pairs: the first ``per_class`` correctly predicted images of each class (any image of
    the class when too few are right), then the ``mistakes`` wrong predictions, most confident first."""
    pred, conf = probs.argmax(1), probs.max(1)
    chosen: list[tuple[str, int]] = []
    for c in range(probs.shape[1]):
        right = np.flatnonzero((labels == c) & (pred == c))
        wrong = np.flatnonzero((labels == c) & (pred != c))
        chosen += [("class_sample", int(i)) for i in np.concatenate([right, wrong])[:per_class]]
    wrong = np.flatnonzero(pred != labels)
    chosen += [("mistake", int(i)) for i in wrong[np.argsort(-conf[wrong], kind="stable")][:mistakes]]
    return chosen


def saliency(model: torch.nn.Module, arrays: snapshot.SplitArrays, classes: list[str], mean: torch.Tensor,
             std: torch.Tensor, out_dir: Path, per_class: int, mistakes: int, batch_size: int = 256) -> list[dict]:
    """Grad-CAM overlays of the chosen images; returns the saliency.json entries."""
    images = torch.from_numpy(np.array(arrays.images))  # a writable copy
    labels = np.asarray(arrays.labels, np.int64)
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(normalize(images[lo:lo + batch_size], mean, std)).float(), 1)
                           for lo in range(0, len(labels), batch_size)]).numpy()
    chosen = pick_saliency(labels, probs, per_class, mistakes)
    folder = out_dir / "saliency"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if not chosen:
        return []
    idx = torch.tensor([i for _, i in chosen])
    x = normalize(images[idx], mean, std)
    layer = target_layer(model, x[:1])
    cams = torch.cat([grad_cam(model, x[lo:lo + 32], layer=layer)[0] for lo in range(0, len(idx), 32)]).numpy()
    entries, counts = [], {"class_sample": 0, "mistake": 0}
    for (kind, i), cam in zip(chosen, cams):
        name = f"{kind}_{counts[kind]}_{str(arrays.ids[i])[:12]}.png"
        counts[kind] += 1
        save_png(folder / name, overlay(np.asarray(arrays.images[i]), cam))
        pred = int(probs[i].argmax())
        entries.append({"file": f"saliency/{name}", "image_id": str(arrays.ids[i]), "kind": kind,
                        "label": classes[int(labels[i])], "predicted": classes[pred],
                        "confidence": round(float(probs[i, pred]), 6)})
    return entries


def variant_models(params: Params, names: list[str]) -> dict[str, torch.nn.Module]:
    """fp32 (``train.out_dir``) and every compressed variant present in ``compress.out_dir``."""
    found = {}
    for name in names:
        folder = Path(params.train.out_dir) if name == "fp32" else Path(params.compress.out_dir) / name
        if (folder / CONFIG).is_file() and ((folder / PROGRAM).is_file() or name == "fp32"):
            found[name] = load_inference_model(folder)[0]
    return found


def tradeoff_rows(summary: dict, compress_metrics: Path) -> list[dict]:
    """One row per variant: the compress stage's columns (when its metrics exist) and the robustness ones."""
    compressed = {}
    if compress_metrics.is_file():
        compressed = json.loads(compress_metrics.read_text()).get("variants", {})
    return [{"variant": v, **{k: compressed.get(v, {}).get(k) for k in TRADEOFF_COLUMNS if compressed.get(v)}, **row}
            for v, row in summary.items()]


def write_csv(path: Path | str, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run(params: Params) -> dict:
    ins, rob = params.insight, params.insight.robustness
    if rob.summary_eps is not None and rob.summary_eps not in rob.eps:
        raise InputError(f"insight.robustness.summary_eps {rob.summary_eps} is not one of insight.robustness.eps {rob.eps}")
    torch.manual_seed(rob.seed)
    torch.set_num_threads(rob.threads)
    folder = snapshot_store.location(params.train.snapshot)
    out_dir = Path(ins.out_dir)
    data = load_data(folder, splits=())  # verifies the snapshot, gives mean/std
    split, arrays = eval_split(folder)
    fp32, config = load_model(params.train.out_dir)
    if list(config.get("classes", data.classes)) != data.classes:
        raise InputError(f"{params.train.out_dir}: model classes differ from the snapshot's ({folder})")
    start = time.perf_counter()
    entries = saliency(fp32, arrays, data.classes, data.mean, data.std, out_dir, ins.saliency_per_class,
                       ins.saliency_mistakes)
    write_json(out_dir / "saliency.json", entries)
    log(f"saliency: {len(entries)} Grad-CAM overlays of {split} images in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    models = variant_models(params, list(rob.variants))
    n = min(rob.images, len(arrays.labels))
    settings = Settings(rob.corruptions, rob.severities, rob.attacks, rob.eps, rob.pgd_steps, rob.batch_size, rob.seed,
                        summary_eps=rob.summary_eps)
    doc, summary = evaluate_variants(models, torch.from_numpy(np.array(arrays.images[:n])),
                                     torch.from_numpy(np.asarray(arrays.labels[:n], np.int64)), data.mean, data.std,
                                     settings)
    seconds = time.perf_counter() - start
    write_json(out_dir / "robustness.json", doc)
    metrics = {"split": split, "images": n, "seconds": round(seconds, 3), "variants": summary}
    write_json(ins.robustness_metrics, metrics)
    rows = tradeoff_rows(summary, Path(params.compress.metrics))
    write_csv(ins.robustness_plot, rows)
    for r in rows:
        log(f"{r['variant']}: " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "variant" and v is not None))
    log(f"robustness: {len(models)} models x {n} {split} images in {seconds:.1f} s")
    return metrics


def main() -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    stage_main(lambda: run(load_params()) and 0)


if __name__ == "__main__":
    main()
