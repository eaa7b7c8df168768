"""Per-group metrics: accuracy, precision and recall per class and per source, with Wilson score
intervals, and the gap between the best and the worst group.

Pure numpy; the OOF stage (train/oof.py) calls it on out-of-fold predictions and writes the result
as a metrics file. Wilson intervals rather than the normal approximation because groups are small
and accuracies near 1, where the normal interval leaves [0, 1] and collapses to zero width.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / total`` ((0, 1) when total is 0)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def _prop(successes: int, total: int) -> dict:
    lo, hi = wilson(successes, total)
    value = successes / total if total else None
    return {"value": None if value is None else round(value, 6), "low": round(lo, 6), "high": round(hi, 6),
            "n": int(total)}


def _gap(groups: dict[str, dict], metric: str) -> dict:
    scored = {g: m[metric]["value"] for g, m in groups.items() if m[metric]["value"] is not None}
    if not scored:
        return {"metric": metric, "best": None, "worst": None, "gap": 0.0}
    best, worst = max(scored, key=scored.get), min(scored, key=scored.get)
    return {"metric": metric, "best": best, "worst": worst, "gap": round(scored[best] - scored[worst], 6)}


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Per class: precision (of images predicted as it), recall (of images labelled it), accuracy
    on images labelled it (= recall, the per-group accuracy), each with a Wilson interval."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    groups = {}
    for c, name in enumerate(classes):
        tp = int(((y_true == c) & (y_pred == c)).sum())
        actual, predicted = int((y_true == c).sum()), int((y_pred == c).sum())
        groups[name] = {"precision": _prop(tp, predicted), "recall": _prop(tp, actual)}
    return {"groups": groups, "gap": _gap(groups, "recall")}


def per_group(y_true: np.ndarray, y_pred: np.ndarray, group: list[str], num_classes: int) -> dict:
    """Per group (e.g. source): accuracy with a Wilson interval, and macro precision and recall
    over the classes present in the group (point estimates)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    group = np.asarray(group, dtype=object)
    groups = {}
    for g in sorted(set(group.tolist())):
        sel = group == g
        t, p = y_true[sel], y_pred[sel]
        cm = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
        tp, actual, predicted = cm.diagonal(), cm.sum(1), cm.sum(0)
        present = actual > 0
        recall = (tp[present] / actual[present]).mean() if present.any() else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        groups[str(g)] = {"accuracy": _prop(int(tp.sum()), int(sel.sum())),
                          "macro_precision": round(float(prec[present].mean()) if present.any() else 0.0, 6),
                          "macro_recall": round(float(recall), 6)}
    return {"groups": groups, "gap": _gap(groups, "accuracy")}


def group_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                 dimensions: dict[str, list[str]], max_gap: float) -> dict:
    """Overall accuracy, per-class metrics, per-group metrics for each dimension (e.g. ``source``:
    one group name per example) and a warning for every gap above ``max_gap``."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    body = {"count": int(len(y_true)), "accuracy": _prop(int((y_true == y_pred).sum()), len(y_true)),
            "class": per_class(y_true, y_pred, classes)}
    for dim, names in dimensions.items():
        body[dim] = per_group(y_true, y_pred, names, len(classes))
    body["warnings"] = [
        f"{dim}: {body[dim]['gap']['metric']} of '{body[dim]['gap']['worst']}' trails '{body[dim]['gap']['best']}' "
        f"by {body[dim]['gap']['gap']:.3f} (more than max_group_gap {max_gap})"
        for dim in ["class", *dimensions] if body[dim]["gap"]["gap"] > max_gap]
    return body
