"""Label issues by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021), implemented here from the paper (cleanlab is AGPL-3.0).

Input: out-of-fold predicted probabilities ``probs`` (n, k) and the given labels (n,). Pure numpy.

1. Per-class thresholds ``t_j``: the mean predicted probability of class j over the examples
   labelled j (the model's average self-confidence for that class).
2. The confident joint ``C[i][j]``: examples labelled i whose probability for j is at least ``t_j``;
   an example above several thresholds counts for the one of those with the largest probability, an
   example above none is not counted. The diagonal is kept at least 1.
3. Calibration: each row is scaled to the number of examples labelled i and the whole matrix to n,
   rounded so that row totals stay integers (``Q = C / n`` estimates the joint of given and true labels).
4. Prune by noise rate: for every off-diagonal (i, j), the ``C[i][j]`` examples labelled i with the
   largest margin ``p_j - p_i`` are issues (at least one example is left per class); an example whose
   prediction equals its given label is never an issue. The paper's other methods are options
   (``method``): prune by class, both, the confident joint's off-diagonal, and argmax != label.
5. Rank by self-confidence ``p_given`` (lowest first) or by the normalised margin
   ``(p_given - max_{j != given} p_j + 1) / 2``.

On any out-of-fold probabilities: ``python -m train.label_issues PROBS.npy LABELS.npy [--rank-by
normalized_margin]`` prints the issues as CSV (row index, given, suggested, scores), most doubtful first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

RankBy = Literal["self_confidence", "normalized_margin"]
Method = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"]


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs must be (n, k) and labels (n,); got {probs.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be in 0..{probs.shape[1] - 1}")
    return probs, labels


def thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``t_j`` = mean of ``probs[:, j]`` over examples labelled j (a class with no examples: 1.0,
    i.e. nothing is confidently that class, rather than a division by zero)."""
    probs, labels = _check(probs, labels)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=probs[np.arange(len(labels)), labels], minlength=k)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_guess(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per example the most probable class above its threshold, and whether any class is above."""
    probs, labels = _check(probs, labels)
    above = probs >= thresholds(probs, labels) - 1e-6
    return np.where(above, probs, -np.inf).argmax(1), above.any(1)


def confident_joint(probs: np.ndarray, labels: np.ndarray, calibrate: bool = True) -> np.ndarray:
    """The (k, k) confident joint: rows given label, columns the confidently predicted (true) label."""
    probs, labels = _check(probs, labels)
    k = probs.shape[1]
    guess, counted = confident_guess(probs, labels)
    cj = np.zeros((k, k), np.int64)
    np.add.at(cj, (labels[counted], guess[counted]), 1)
    np.fill_diagonal(cj, np.maximum(cj.diagonal(), 1))
    return calibrate_joint(cj, np.bincount(labels, minlength=k)) if calibrate else cj


def round_preserving_row_totals(m: np.ndarray) -> np.ndarray:
    """Round each row to integers whose sum is the row's rounded total (largest remainders go up)."""
    m = np.asarray(m, np.float64)
    out = np.floor(m)
    for r in range(m.shape[0]):
        short = int(round(m[r].sum() - out[r].sum()))
        if short > 0:
            out[r, np.argsort(-(m[r] - out[r]), kind="stable")[:short]] += 1
    return out.astype(np.int64)


def calibrate_joint(cj: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Scale rows to the given-label counts and the total to n, keeping integer row totals."""
    cj = np.asarray(cj, np.float64)
    label_counts = np.asarray(label_counts, np.float64)
    rows = cj / np.maximum(cj.sum(1, keepdims=True), 1e-6) * label_counts[:, None]
    rows = rows / max(rows.sum(), 1e-6) * label_counts.sum()
    return round_preserving_row_totals(rows)


def _keep_one_per_class(prune: np.ndarray) -> np.ndarray:
    """Raise the diagonal to >= 1 and take what was added off the row's non-zero noise counts
    (cleanlab's ``keep_at_least_n_per_class`` with n = 1, in given-label rows)."""
    prune = prune.astype(np.float64)
    diag = prune.diagonal().copy()
    new_diag = np.maximum(diag, 1)
    per_row = np.maximum(np.count_nonzero(prune, axis=1) - 1.0, 1.0)
    out = prune - ((new_diag - diag) / per_row)[:, None]
    out[out < 0] = 0
    np.fill_diagonal(out, new_diag)
    return round_preserving_row_totals(out)


def _prune_by_noise_rate(probs, labels, prune, counts, by_label) -> np.ndarray:
    """For each off-diagonal (i, j): the prune[i, j] examples labelled i with the largest p_j - p_i."""
    prune = prune.copy()
    np.fill_diagonal(prune, 0)
    mask = np.zeros(len(labels), bool)
    for i, j in np.argwhere(prune > 0):  # only the non-empty off-diagonal cells: k can be 1,000
        rows = by_label[i]
        if counts[i] <= 1:  # a class with a single example is never pruned
            continue
        m = min(int(prune[i, j]), len(rows))
        margin = probs[rows, j] - probs[rows, i]
        cut = -np.partition(-margin, m - 1)[m - 1]
        mask[rows[margin >= cut]] = True
    return mask


def _prune_by_class(probs, labels, prune, counts, by_label) -> np.ndarray:
    """For each class i: its (count_i - prune[i, i]) examples with the smallest p_i."""
    mask = np.zeros(len(labels), bool)
    for i, rows in enumerate(by_label):
        m = int(counts[i] - prune[i, i])
        if counts[i] <= 1 or m <= 0:
            continue
        own = probs[rows, i]
        cut = np.partition(own, m)[m] if m < len(rows) else np.inf
        mask[rows[own < cut]] = True
    return mask


def find_issues(probs: np.ndarray, labels: np.ndarray, cj: np.ndarray | None = None,
                method: Method = "prune_by_noise_rate") -> np.ndarray:
    """Boolean mask of label issues by one of the paper's methods (default: prune by noise rate on the
    calibrated confident joint ``cj``). ``prune_by_class``: per class, the estimated number of wrong
    labels with the lowest self-confidence; ``both``: issues of both prunings; ``confident_joint``: the
    examples off the diagonal of the (uncalibrated) confident joint; ``argmax``: prediction != label
    (the baseline). In every method an example whose prediction equals its label is not an issue."""
    probs, labels = _check(probs, labels)
    k = probs.shape[1]
    if method == "confident_joint":
        guess, counted = confident_guess(probs, labels)
        mask = counted & (guess != labels)
    elif method == "argmax":
        mask = np.ones(len(labels), bool)
    else:
        prune = _keep_one_per_class(confident_joint(probs, labels) if cj is None else cj)
        counts = np.bincount(labels, minlength=k)
        by_label = np.split(np.argsort(labels, kind="stable"), np.cumsum(counts)[:-1])
        args = (probs, labels, prune, counts, by_label)
        if method == "prune_by_noise_rate":
            mask = _prune_by_noise_rate(*args)
        elif method == "prune_by_class":
            mask = _prune_by_class(*args)
        elif method == "both":
            mask = _prune_by_noise_rate(*args) & _prune_by_class(*args)
        else:
            raise ValueError(f"unknown method {method!r}")
    return mask & (probs.argmax(1) != labels)


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probs, labels = _check(probs, labels)
    return probs[np.arange(len(labels)), labels]


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(p_given - max_{j != given} p_j + 1) / 2`` in [0, 1]; low means the label is doubtful."""
    probs, labels = _check(probs, labels)
    own = self_confidence(probs, labels)
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (own - others.max(1) + 1) / 2


@dataclass
class Issues:
    """The ranked issues and the noise estimates behind them."""

    order: np.ndarray  # row indices of the issues, most doubtful first
    suggested: np.ndarray  # (n,) argmax of probs
    self_confidence: np.ndarray  # (n,)
    margin: np.ndarray  # (n,) normalised margin
    score: np.ndarray  # (n,) the ranking score (low = doubtful)
    joint: np.ndarray  # calibrated confident joint (k, k)

    @property
    def noise_rate(self) -> float:
        """Estimated share of wrong labels: the off-diagonal mass of the calibrated joint."""
        total = self.joint.sum()
        return float((total - np.trace(self.joint)) / total) if total else 0.0


def rank_issues(probs: np.ndarray, labels: np.ndarray, rank_by: RankBy = "self_confidence",
                method: Method = "prune_by_noise_rate") -> Issues:
    """Find the label issues and rank them (stable: ties keep row order)."""
    probs, labels = _check(probs, labels)
    cj = confident_joint(probs, labels)
    mask = find_issues(probs, labels, cj, method)
    sc, nm = self_confidence(probs, labels), normalized_margin(probs, labels)
    score = sc if rank_by == "self_confidence" else nm
    rows = np.flatnonzero(mask)
    order = rows[np.argsort(score[rows], kind="stable")]
    return Issues(order, probs.argmax(1), sc, nm, score, cj)


def issues_frame(ids: list[str], probs: np.ndarray, labels: np.ndarray, classes: list[str],
                 rank_by: RankBy = "self_confidence", method: Method = "prune_by_noise_rate"):
    """A polars frame of the ranked issues: image_id, given_label, suggested_label, self_confidence,
    margin, score, rank (1 = most doubtful)."""
    import polars as pl

    labels = np.asarray(labels, np.int64)
    found = rank_issues(probs, labels, rank_by, method)
    o = found.order
    names = np.asarray(classes, dtype=object)
    return pl.DataFrame({
        "image_id": [ids[i] for i in o],
        "given_label": names[labels[o]].tolist(),
        "suggested_label": names[found.suggested[o]].tolist(),
        "self_confidence": found.self_confidence[o],
        "margin": found.margin[o],
        "score": found.score[o],
        "rank": np.arange(1, len(o) + 1, dtype=np.int32),
    }, schema={"image_id": pl.Utf8, "given_label": pl.Utf8, "suggested_label": pl.Utf8,
               "self_confidence": pl.Float64, "margin": pl.Float64, "score": pl.Float64, "rank": pl.Int32})


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    from sluice.errors import InputError
    from sluice.stage import stage_main

    ap = argparse.ArgumentParser(prog="python -m train.label_issues", description="label issues of saved "
                                 "out-of-fold probabilities (.npy, n x k) and given labels (.npy, n), as CSV")
    ap.add_argument("probs")
    ap.add_argument("labels")
    ap.add_argument("--rank-by", choices=["self_confidence", "normalized_margin"], default="self_confidence")
    ap.add_argument("--method", choices=["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"],
                    default="prune_by_noise_rate")
    args = ap.parse_args(argv)

    def go():
        try:
            probs, labels = np.load(args.probs), np.load(args.labels)
            found = rank_issues(probs, labels, args.rank_by, args.method)
        except (OSError, ValueError) as err:
            raise InputError(f"{args.probs}, {args.labels}: {err}") from None
        print(f"# estimated noise rate {found.noise_rate:.6f}, {len(found.order)} issues", file=sys.stderr)
        print("index,given,suggested,self_confidence,margin,score")
        for i in found.order:
            print(f"{i},{labels[i]},{found.suggested[i]},{found.self_confidence[i]:.6f},{found.margin[i]:.6f},"
                  f"{found.score[i]:.6f}")

    stage_main(go)


if __name__ == "__main__":
    main()
