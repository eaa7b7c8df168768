"""``sluice compare MODEL_A MODEL_B --insight``: robustness and per-group metrics of two models side by side.

Both models see the same images: per-group metrics (train/group_metrics.py: per class, and per
source / label source when the lake knows the images) on the whole split; robustness
(train/robustness.py, the ``insight.robustness`` settings) on its first ``images`` images. Attacks are
white-box for a model with input gradients; a model without (int8) gets the other model's
adversarial examples (transfer), and the output says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sluice import snapshot_store
from sluice.config import Params
from sluice.errors import InputError
from train.attacks import has_gradients, normalized
from train.data import load_data, normalize
from train.group_metrics import group_report
from train.model import load_inference_model
from train.robustness import Settings, evaluate_variants

SIDES = ("A", "B")


def _dimensions(params: Params, ids: list[str]) -> dict[str, list[str]]:
    """Source and label source of every image, from the lake when it has them."""
    try:
        from sluice.lake import Lake
        from train.oof import groups

        lake = Lake.from_params(params)
        dims = {"source": groups(lake, "raw_images", "source", ids),
                "label_source": groups(lake, "labels", "label_source", ids)}
    except Exception:  # no lake here (a copied snapshot): per class only
        return {}
    return {d: g for d, g in dims.items() if g}


def compare_insight(model_a: Path | str, model_b: Path | str, params: Params, *, split: str = "test",
                    snapshot_dir: Path | str | None = None) -> dict:
    folder = snapshot_store.location(snapshot_dir or params.train.snapshot)
    data = load_data(folder, splits=())
    if split not in snapshot_store.read_manifest(folder)["splits"]:
        raise InputError(f"{folder}: snapshot has no '{split}' split to compare on")
    arrays = snapshot_store.load_split(folder, split)
    images = torch.from_numpy(np.array(arrays.images))
    labels = torch.from_numpy(np.asarray(arrays.labels, np.int64))
    models = {}
    for side, path in zip(SIDES, (model_a, model_b)):
        model, config = load_inference_model(path)
        if config.get("classes") and config["classes"] != data.classes:
            raise InputError(f"{path}: model classes differ from the snapshot's ({folder}); compare models trained on it")
        models[side] = model
    preds = {}
    with torch.no_grad():
        for side, m in models.items():
            preds[side] = torch.cat([m(normalize(images[lo:lo + 256], data.mean, data.std)).argmax(1)
                                     for lo in range(0, len(labels), 256)]).numpy()
    ins, rob = params.insight, params.insight.robustness
    dims = _dimensions(params, [str(i) for i in arrays.ids])
    groups = {side: group_report(labels.numpy(), preds[side], data.classes, dims, ins.max_group_gap) for side in SIDES}

    n = min(rob.images, len(labels))
    probe = images[:2].permute(0, 3, 1, 2).float().div(255)
    white = [s for s in SIDES if has_gradients(normalized(models[s], data.mean, data.std), probe)]
    settings = Settings(rob.corruptions, rob.severities, rob.attacks if white else (), rob.eps, rob.pgd_steps,
                        rob.batch_size, rob.seed, reference=white[0] if white else "A", summary_eps=rob.summary_eps)
    curves, summary = evaluate_variants(models, images[:n], labels[:n], data.mean, data.std, settings)
    return {"split": split, "images": len(labels), "robustness_images": n, "models": dict(zip(SIDES, map(str, (model_a, model_b)))),
            "robustness": {"summary": summary, "curves": curves}, "groups": groups}


def _row(name: str, a, b) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    delta = f"{b - a:+.4f}" if isinstance(a, float) and isinstance(b, float) else ""
    return f"  {name:<34} {fmt(a):>20} {fmt(b):>20} {delta:>9}"


def render(result: dict) -> str:
    """The comparison as a text table: metric, A, B, B - A."""
    a, b = (result["robustness"]["summary"][s] for s in SIDES)
    ga, gb = (result["groups"][s] for s in SIDES)
    lines = [f"{result['split']}: {result['images']} images (robustness on the first {result['robustness_images']})",
             _row("", "A", "B") + "  B - A",
             _row("accuracy", ga["accuracy"]["value"], gb["accuracy"]["value"])]
    lines += [_row(k, a.get(k), b.get(k)) for k in a if k.endswith("_accuracy") or k == "attack"]
    if "attack_eps" in a:
        lines.append(f"  (attacks at eps {a['attack_eps']:g} in [0, 1] pixel space)")
    lines.append("  per class recall:")
    for c in ga["class"]["groups"]:
        lines.append(_row(f"  {c}", ga["class"]["groups"][c]["recall"]["value"], gb["class"]["groups"][c]["recall"]["value"]))
    for dim in [d for d in ga if isinstance(ga[d], dict) and "gap" in ga[d] and d != "class"]:
        lines.append(f"  per {dim} accuracy:")
        for g in ga[dim]["groups"]:
            lines.append(_row(f"  {g}", ga[dim]["groups"][g]["accuracy"]["value"],
                              gb[dim]["groups"].get(g, {}).get("accuracy", {}).get("value")))
    for dim in [d for d in ga if isinstance(ga[d], dict) and "gap" in ga[d]]:
        lines.append(_row(f"{dim} gap ({ga[dim]['gap']['metric']})", ga[dim]["gap"]["gap"], gb[dim]["gap"]["gap"]))
    return "\n".join(lines)
