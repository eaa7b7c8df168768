"""Aggregation methods: Dawid-Skene (checked against crowd-kit), one-coin, majority vote and its tie-break."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.params_labels import EmParams
from transform.labels.methods import dawid_skene, majority, one_coin, vote_counts

DEFAULT = EmParams().confusion_prior  # the stage's default prior strength


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




def test_one_coin_beats_dawid_skene_with_many_small_workers():
    """300 workers with 3-8 votes each: per-worker confusion matrices are mostly noise, one accuracy is not."""
    rng = np.random.default_rng(5)
    n, k, n_workers = 3000, 10, 3000
    truth = rng.integers(0, k, n)
    items = np.repeat(np.arange(n), 3)
    workers = rng.integers(0, n_workers, len(items))
    accuracy = rng.uniform(0.4, 0.95, n_workers)
    right = rng.random(len(items)) < accuracy[workers]
    labels = np.where(right, truth[items], rng.integers(0, k, len(items)))
    oc = one_coin(items, workers, labels, n, n_workers, k)
    ds = dawid_skene(items, workers, labels, n, n_workers, k, smoothing=0.01)
    mv = majority(items, workers, labels, n, n_workers, k)
    acc = {name: (fit.posteriors.argmax(1) == truth).mean() for name, fit in (("oc", oc), ("ds", ds), ("mv", mv))}
    assert acc["oc"] >= acc["mv"] - 0.005 and acc["oc"] > acc["ds"], acc
    assert mv.iterations == 0


def test_one_coin_learns_who_to_trust(simulate):
    items, workers, labels, truth = simulate(1500, [0.95, 0.9, 0.4, 0.3, 0.25], 5, 3, seed=7)
    fit = one_coin(items, workers, labels, 1500, 5, 5)
    p_correct = fit.confusion[:, 0, 0]
    assert p_correct[0] > 0.85 and p_correct[4] < 0.5
    assert (fit.posteriors.argmax(1) == truth).mean() > 0.85


def test_majority_ties_break_by_worker_weight_not_class_order():
    """Item 0: a reliable worker says 2, an unreliable one says 0: a tie the reliable worker wins."""
    k = 3
    items = [0, 0]
    workers = [0, 1]
    labels = [2, 0]
    for i in range(1, 40):  # worker 0 agrees with the crowd, worker 1 never does
        items += [i, i, i]
        workers += [0, 1, 2]
        labels += [i % k, (i + 1) % k, i % k]
    fit = majority(np.array(items), np.array(workers), np.array(labels), 40, 3, k)
    assert fit.posteriors[0].argmax() == 2 and fit.posteriors[0].max() == pytest.approx(0.5)


def test_majority_ties_between_equals_are_seeded_coin_flips():
    items, workers, labels = np.arange(400).repeat(2), np.tile([0, 1], 400), np.tile([0, 1], 400)
    picks = [majority(items, workers, labels, 400, 2, 2, seed=s).posteriors.argmax(1) for s in (0, 0, 1)]
    assert np.array_equal(picks[0], picks[1]) and not np.array_equal(picks[0], picks[2])
    assert 0.4 < picks[0].mean() < 0.6  # not always class 0


def _crowd(n: int, n_workers: int, confused: float, seed: int):
    """3 votes an item from workers of accuracy 0.35-0.95; ``confused`` of the errors name the next class."""
    rng = np.random.default_rng(seed)
    k = 10
    truth = rng.integers(0, k, n)
    items = np.repeat(np.arange(n), 3)
    workers = rng.integers(0, n_workers, len(items))
    t = truth[items]
    accuracy = rng.uniform(0.35, 0.95, n_workers)
    right = rng.random(len(items)) < accuracy[workers]
    wrong = np.where(rng.random(len(items)) < confused, (t + 1) % k, (t + rng.integers(1, k, len(items))) % k)
    return items, workers, np.where(right, t, wrong), truth, k, accuracy


@pytest.mark.parametrize("n_workers", [100, 1500])  # ~60 and ~4 votes a worker
def test_the_crowd_prior_learns_shared_confusions_that_sparse_workers_cannot(n_workers):
    items, workers, labels, truth, k, _ = _crowd(2000, n_workers, 0.6, seed=4)

    def accuracy(fit):
        return (fit.posteriors.argmax(1) == truth).mean()

    prior = dawid_skene(items, workers, labels, 2000, n_workers, k, smoothing=0.01, prior_strength=DEFAULT)
    classic = dawid_skene(items, workers, labels, 2000, n_workers, k, smoothing=0.01)
    coin = one_coin(items, workers, labels, 2000, n_workers, k)
    noise = np.random.default_rng(0).random((2000, k)) * 0.5
    mv = ((vote_counts(items, labels, 2000, k) + noise).argmax(1) == truth).mean()
    assert accuracy(prior) > max(accuracy(classic), accuracy(coin), mv) + 0.03, \
        (accuracy(prior), accuracy(classic), accuracy(coin), mv)
    # the confusion is the crowd's, seen in every worker's matrix: class 0 is answered as 1 far more than as 5
    assert np.median(prior.confusion[:, 1, 0]) > 3 * np.median(prior.confusion[:, 5, 0])


def test_the_crowd_prior_keeps_each_workers_own_accuracy_and_yields_to_many_votes():
    items, workers, labels, truth, k, truth_acc = _crowd(3000, 300, 0.0, seed=5)  # uniform errors: one-coin's model
    prior = dawid_skene(items, workers, labels, 3000, 300, k, smoothing=0.01, prior_strength=DEFAULT)
    coin = one_coin(items, workers, labels, 3000, 300, k)
    assert (prior.posteriors.argmax(1) == truth).mean() > (coin.posteriors.argmax(1) == truth).mean() - 0.01
    own = np.einsum("wtt->w", prior.confusion) / k  # a good worker stays good, a poor one poor
    assert np.corrcoef(own, truth_acc)[0, 1] > 0.8
    # dense workers: the prior's pseudo-votes are a few percent of a worker's votes, the labels classic EM's
    items, workers = np.repeat(np.arange(3000), 5), np.tile(np.arange(5), 3000)
    t = np.random.default_rng(1).integers(0, k, 3000)[items]
    labels = np.where(np.random.default_rng(2).random(15000) < 0.7, t, (t + 1) % k)
    dense = [dawid_skene(items, workers, labels, 3000, 5, k, smoothing=0.01, prior_strength=s) for s in (0.0, DEFAULT)]
    assert (dense[0].posteriors.argmax(1) == dense[1].posteriors.argmax(1)).mean() > 0.99


def test_confusion_prior_keeps_sparse_workers_sane():
    rng = np.random.default_rng(6)
    n, k, n_workers = 2000, 10, 2000
    truth = rng.integers(0, k, n)
    items = np.repeat(np.arange(n), 3)
    workers = rng.integers(0, n_workers, len(items))
    labels = np.where(rng.random(len(items)) < 0.7, truth[items], rng.integers(0, k, len(items)))
    plain = dawid_skene(items, workers, labels, n, n_workers, k, smoothing=0.01)
    prior = dawid_skene(items, workers, labels, n, n_workers, k, smoothing=0.01, prior_strength=5.0)
    assert (prior.posteriors.argmax(1) == truth).mean() > (plain.posteriors.argmax(1) == truth).mean() + 0.05
