"""Aggregation methods: Dawid-Skene (checked against crowd-kit), one-coin, majority vote and its tie-break."""

from __future__ import annotations

import numpy as np
import pytest

from transform.labels.methods import dawid_skene, majority, one_coin, vote_counts


# ---------------------------------------------------------------------------- the algorithm
def test_dawid_skene_matches_crowd_kit(simulate):
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    import pandas as pd

    k = 4
    items, workers, labels, _ = simulate(400, [0.9, 0.85, 0.7, 0.6, 0.5, 0.3, 0.25], k, 5, seed=1, adversary=6)
    ours = dawid_skene(items, workers, labels, 400, 7, k, max_iter=50, tol=1e-12, smoothing=0.0)
    theirs = crowdkit.DawidSkene(n_iter=50, tol=1e-12).fit_predict_proba(
        pd.DataFrame({"task": items, "worker": workers, "label": labels})).sort_index()
    reference = theirs[list(range(k))].to_numpy()
    assert np.array_equal(ours.posteriors.argmax(1), reference.argmax(1))
    assert np.abs(ours.posteriors - reference).max() < 1e-3


def test_dawid_skene_beats_majority_when_quality_varies(simulate):
    k = 10
    items, workers, labels, truth = simulate(2000, [0.95, 0.9, 0.6, 0.5, 0.1, 0.1], k, 4, seed=3, adversary=5)
    ds = dawid_skene(items, workers, labels, 2000, 6, k, smoothing=0.01)
    noise = np.random.default_rng(0).random((2000, k)) * 0.5  # ties at random
    mv = (vote_counts(items, labels, 2000, k) + noise).argmax(1)
    ds_acc, mv_acc = (ds.posteriors.argmax(1) == truth).mean(), (mv == truth).mean()
    assert ds_acc > mv_acc + 0.05, (ds_acc, mv_acc)
    # the adversary's confusion matrix is learnt: answer truth+1 given truth
    assert ds.confusion[5, 1, 0] > 0.9


def test_gold_items_undo_a_permutation_majority_vote_induces():
    """Three of four workers systematically answer truth+1: only gold items reveal who is right."""
    rng = np.random.default_rng(2)
    n, k = 300, 4
    truth = rng.integers(0, k, n)
    items, workers = np.repeat(np.arange(n), 4), np.tile(np.arange(4), n)
    t = truth[items]
    labels = np.where(workers == 0, t, (t + 1) % k)
    labels = np.where(rng.random(len(items)) < 0.9, labels, rng.integers(0, k, len(items)))
    gold = np.full(n, -1)
    gold[:15] = truth[:15]
    plain = dawid_skene(items, workers, labels, n, 4, k, smoothing=0.01)
    seeded = dawid_skene(items, workers, labels, n, 4, k, gold=gold, smoothing=0.01)
    assert (plain.posteriors.argmax(1)[15:] == truth[15:]).mean() < 0.1
    assert (seeded.posteriors.argmax(1)[15:] == truth[15:]).mean() > 0.95


def test_no_votes_gives_empty_result():
    empty = np.empty(0, np.int64)
    ds = dawid_skene(empty, empty, empty, 0, 0, 3)
    assert ds.posteriors.shape == (0, 3) and ds.iterations == 0


