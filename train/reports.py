"""Reporting helpers shared by the trainer, the evaluate stage and compress: per-class report, confusion
CSV, atomic JSON, the hardware line and the model card. No stage logic lives here, so the trainer does
not import the evaluate stage."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path

import torch


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
