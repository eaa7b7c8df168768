"""Per-item crowd outcomes from usable votes with the configured method (``methods``) and the worker model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from transform.labels.methods import (
    dawid_skene,
    majority,
    one_coin,
    top_two,
    vote_counts,
)
from transform.labels.vocabulary import Vocabulary
from transform.labels.workers import annotator_rows


@dataclass
class Crowd:
    """Per-item crowd outcome and per-worker quality, from the usable votes."""

    items: pl.DataFrame  # row, item, votes, label, confidence, agreement, tie, mv_label, reason, gold
    workers: pl.DataFrame  # annotators columns (without run_id) + information
    counts: np.ndarray  # (items, k) votes per class, rows aligned with ``items.row``
    iterations: int  # EM iterations the method ran (0 for majority)


def fit(method: str, items, workers, labels, n_items: int, n_workers: int, k: int, gold: np.ndarray, params):
    """Run one aggregation method on coded votes."""
    em = params.em
    if method == "majority":
        return majority(items, workers, labels, n_items, n_workers, k, params.seed, em.smoothing)
    if method == "one_coin":
        return one_coin(items, workers, labels, n_items, n_workers, k, gold, em.max_iter, em.tol,
                        em.prior_accuracy, em.prior_strength)
    return dawid_skene(items, workers, labels, n_items, n_workers, k, gold, em.max_iter, em.tol, em.smoothing,
                       em.confusion_prior, em.prior_accuracy, em.prior_strength)


def aggregate(votes: pl.DataFrame, vocab: Vocabulary, params, gold: dict[str, int] | None = None) -> Crowd:
    """Aggregate ``votes`` (item, worker_id, label as a class name) with ``params.method``.

    Every voted item gets the method's best label, its posterior (majority: the vote share) as
    ``confidence`` and, when it should stay unresolved, a ``reason``: ``below_min_votes``, ``tie`` or
    ``low_confidence`` (confidence < ``min_confidence``). The best label is kept either way.
    """
    k = len(vocab.classes)
    item_ids = votes["item"].unique().sort()
    worker_ids = votes["worker_id"].unique().sort()
    items = _codes(votes["item"], item_ids)
    workers = _codes(votes["worker_id"], worker_ids)
    labels = vocab.index(votes["label"])
    n_items, n_workers = len(item_ids), len(worker_ids)
    gold_codes = np.full(n_items, -1, np.int64)
    if gold:
        position = {v: i for i, v in enumerate(item_ids.to_list())}
        for item, cls in gold.items():
            if item in position:
                gold_codes[position[item]] = cls
    result = fit(params.method, items, workers, labels, n_items, n_workers, k, gold_codes, params)
    counts = vote_counts(items, labels, n_items, k)
    n = counts.sum(axis=1)
    mv_label = majority(items, workers, labels, n_items, n_workers, k, params.seed).posteriors.argmax(axis=1) \
        if params.method != "majority" else result.posteriors.argmax(axis=1)
    label, confidence, tie = top_two(result.posteriors)
    confidence = np.minimum(confidence, 1.0)
    reason = np.where(n < params.min_votes, "below_min_votes",
                      np.where(tie, "tie", np.where(confidence < params.min_confidence, "low_confidence", "")))
    per_item = pl.DataFrame({
        "row": np.arange(n_items), "item": item_ids, "votes": n.astype(np.int32),
        "label": np.asarray(vocab.classes, dtype=object)[label] if n_items else np.empty(0, object),
        "confidence": confidence, "agreement": counts[np.arange(n_items), label] / np.maximum(n, 1),
        "tie": tie, "mv_label": mv_label, "method_label": label, "gold": gold_codes >= 0,
        "reason": reason,
    }, schema_overrides={"label": pl.String, "reason": pl.String}).with_columns(
        pl.when(pl.col("reason") != "").then(pl.col("reason")).alias("reason"))
    annotators = annotator_rows(worker_ids, workers, items, labels, result, vocab.classes, params, gold_codes)
    return Crowd(per_item, annotators, counts, result.iterations)


def _codes(values: pl.Series, uniques: pl.Series) -> np.ndarray:
    codes = values.replace_strict(uniques, pl.Series(np.arange(len(uniques))), return_dtype=pl.Int64)
    return codes.to_numpy().astype(np.int64, copy=False)
