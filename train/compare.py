"""Compare two models on the same images with McNemar's test: ``sluice compare MODEL_A MODEL_B``.

Only the images the two models disagree on carry information: ``b`` = A right and B wrong, ``c`` =
A wrong and B right. Under the null hypothesis (equal error rates) ``b ~ Binomial(b + c, 1/2)``; the
exact two-sided binomial p-value is used when ``b + c < 25``, the chi-square test with continuity
correction otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from scipy import stats

from sluice import snapshot_store
from sluice.config import TrainParams
from sluice.errors import InputError
from train.data import LoaderSpec, load_data
from train.engine import evaluate
from train.model import load_inference_model


@dataclass
class Comparison:
    split: str
    count: int
    accuracy_a: float
    accuracy_b: float
    a_only: int  # b: A right, B wrong
    b_only: int  # c: A wrong, B right
    test: str
    statistic: float
    p_value: float
    alpha: float
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar(a_only: int, b_only: int) -> tuple[str, float, float]:
    """(test name, statistic, two-sided p-value) for the discordant counts."""
    n = a_only + b_only
    if n == 0:
        return "none (no disagreements)", 0.0, 1.0
    if n < 25:
        return "exact binomial", float(min(a_only, b_only)), float(stats.binomtest(a_only, n, 0.5).pvalue)
    chi2 = (abs(a_only - b_only) - 1) ** 2 / n
    return "chi-square (continuity corrected)", float(chi2), float(stats.chi2.sf(chi2, 1))


def compare_predictions(pred_a: torch.Tensor, pred_b: torch.Tensor, targets: torch.Tensor, *,
                        split: str = "test", alpha: float = 0.05, names: tuple[str, str] = ("A", "B")) -> Comparison:
    right_a, right_b = pred_a == targets, pred_b == targets
    a_only, b_only = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    test, statistic, p = mcnemar(a_only, b_only)
    if p < alpha:
        better = names[0] if a_only > b_only else names[1]
        verdict = f"{better} is significantly more accurate (p = {p:.3g} < {alpha})"
    else:
        verdict = f"no significant difference (p = {p:.3g} >= {alpha})"
    n = len(targets)
    return Comparison(split, n, float(right_a.float().mean()) if n else 0.0, float(right_b.float().mean()) if n else 0.0,
                      a_only, b_only, test, round(statistic, 6), p, alpha, verdict)


def compare_models(model_a: Path | str, model_b: Path | str, cfg: TrainParams, *, split: str = "test",
                   alpha: float = 0.05, snapshot_dir: Path | str | None = None) -> Comparison:
    """Evaluate both saved models (trained ``model.pt`` or exported ``model.pt2`` folders: pruned, int8)
    on the same snapshot split and test the difference."""
    folder = snapshot_store.location(snapshot_dir or cfg.snapshot)
    data = load_data(folder, LoaderSpec(eval_batch_size=cfg.eval_batch_size), splits=(split,))
    loader = {"val": data.val, "test": data.test}.get(split)
    if loader is None:
        raise InputError(f"{folder}: snapshot has no '{split}' split to compare on")
    preds = []
    for path in (model_a, model_b):
        model, config = load_inference_model(path)
        if config.get("classes") and config["classes"] != data.classes:
            raise InputError(f"{path}: model classes differ from the snapshot's ({folder}); compare models trained on it")
        preds.append(evaluate(model, loader, num_classes=data.num_classes, device="cpu"))
    names = (Path(model_a).name or str(model_a), Path(model_b).name or str(model_b))
    if names[0] == names[1]:
        names = (str(model_a), str(model_b))
    return compare_predictions(preds[0].predictions, preds[1].predictions, preds[0].targets,
                               split=split, alpha=alpha, names=names)
