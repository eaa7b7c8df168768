"""The worker model: per annotator accuracy with a confidence interval, confusion summary and evidence-based flags.

A worker's accuracy is the mean posterior that its answer is the true class, over the votes that carry
evidence about it: votes on items someone else also voted on, or gold items (a vote alone on its item
agrees with itself). The Wilson interval of that share over those votes is what the flags need:

- ``is_spammer``: at least ``flag_min_votes`` evidence votes, answers carrying less than
  ``spammer_max_information`` of the label entropy, *and* the interval's upper end below the midpoint
  between chance and perfect (so a 77%-accurate worker is never a spammer however its matrix looks);
- ``is_adversarial``: enough evidence, not a spammer (its answers are informative), an accuracy about chance or below
  (under 1.25/K: they point away from the truth, as an honest worker's do not) and the interval's upper end below
  the same midpoint.

``uninformative`` says when the estimates carry little signal (most votes from workers with too little
evidence, or wide intervals), which the stage prints as a warning.
"""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import polars as pl


def information(prior: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Share of the label entropy each worker's answers carry: I(truth; answer) / H(truth), per worker."""
    joint = conf * prior[None, None, :]  # (w, answer, truth)
    answer = joint.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.where(joint > 0, joint * np.log(joint / (answer * prior[None, None, :])), 0.0).sum(axis=(1, 2))
    entropy = -(prior * np.log(prior)).sum()
    return np.clip(mi / entropy, 0, 1) if entropy > 0 else np.zeros(len(conf))


def wilson(successes: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``successes / n`` (successes may be fractional); (0, 1) where n = 0."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    n = np.asarray(n, float)
    safe = np.maximum(n, 1e-12)
    p = np.clip(successes / safe, 0, 1)
    centre = (p + z * z / (2 * safe)) / (1 + z * z / safe)
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / (1 + z * z / safe)
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, low, 0.0), np.where(n > 0, high, 1.0)


def annotator_rows(worker_ids: pl.Series, workers: np.ndarray, items: np.ndarray, labels: np.ndarray,
                   fit, classes: tuple[str, ...], params, gold: np.ndarray | None = None) -> pl.DataFrame:
    """Votes, evidence votes, accuracy with its interval, information, confusion summary and flags."""
    n_workers, k = len(worker_ids), len(classes)
    votes = np.bincount(workers, minlength=n_workers)
    per_item = np.bincount(items, minlength=len(fit.posteriors)) if len(items) else np.zeros(0)
    evidence = (per_item[items] > 1) if len(items) else np.zeros(0, bool)
    if gold is not None and len(items):
        evidence |= gold[items] >= 0
    n_eff = np.bincount(workers, weights=evidence.astype(float), minlength=n_workers)
    p_right = fit.posteriors[items, labels] if len(items) else np.zeros(0)
    right = np.bincount(workers, weights=p_right * evidence, minlength=n_workers)
    accuracy = np.where(n_eff > 0, right / np.maximum(n_eff, 1), np.nan)
    low, high = wilson(right, n_eff, params.flag_level)
    info = information(fit.prior, fit.confusion) if len(items) else np.zeros(n_workers)
    enough = n_eff >= params.flag_min_votes
    spammer = enough & (info < params.spammer_max_information) & (high < (1 + 1 / k) / 2)
    # informative answers that point away from the truth: about chance or below (the estimate of a 95%-wrong worker
    # runs ~0.05-0.10 of 10 classes over 55-90 votes, as the items' posteriors are soft) and surely not good; the
    # interval's upper end need not be below chance (0.12-0.19 for those workers)
    adversarial = enough & ~spammer & (np.nan_to_num(accuracy, nan=1.0) < 1.25 / k) & (high < (1 + 1 / k) / 2)
    return pl.DataFrame({
        "worker_id": worker_ids, "votes": votes.astype(np.int32), "evidence_votes": n_eff.astype(np.int32),
        "accuracy": accuracy, "accuracy_low": low, "accuracy_high": high,
        "confusion": [_confusion_summary(fit.confusion[w], classes, info[w]) for w in range(n_workers)],
        "is_spammer": spammer, "is_adversarial": adversarial, "information": info,
    }).with_columns(pl.col("accuracy").fill_nan(None))


def uninformative(workers: pl.DataFrame, min_votes: int) -> str | None:
    """Why the accuracy estimates carry little signal, or None when they are usable."""
    total = int(workers["votes"].sum() or 0)
    if total == 0:
        return None
    thin = int(workers.filter(pl.col("evidence_votes") < min_votes)["votes"].sum() or 0)
    width = workers.filter(pl.col("evidence_votes") > 0).select((pl.col("accuracy_high") - pl.col("accuracy_low"))
                                                                .median()).item()
    if thin / total > 0.5:
        return (f"{thin / total:.0%} of votes come from workers with fewer than {min_votes} votes on items someone "
                f"else also labelled: their accuracy estimates carry little signal and they are never flagged")
    if width is not None and width > 0.4:
        return f"the median worker's accuracy interval is {width:.2f} wide: estimates carry little signal"
    return None


def _confusion_summary(conf: np.ndarray, classes: tuple[str, ...], info: float) -> str:
    """Compact JSON: P(correct | true class) per class and the three most likely confusions."""
    off = conf.copy()
    np.fill_diagonal(off, 0)
    worst = np.argsort(-off, axis=None, kind="stable")[:3]
    return json.dumps({
        "p_correct": {c: round(float(conf[i, i]), 3) for i, c in enumerate(classes)},
        "top_confusions": [{"true": classes[t], "answered": classes[a], "p": round(float(off[a, t]), 3)}
                           for a, t in (np.unravel_index(x, off.shape) for x in worst) if off[a, t] > 0],
        "information": round(float(info), 3),
    }, separators=(",", ":"))
