"""The worker model: accuracy intervals, flags that need evidence, the uninformative warning."""

from __future__ import annotations

import numpy as np
import polars as pl

from transform.labels.aggregate import aggregate
from transform.labels.vocabulary import Vocabulary
from transform.labels.workers import uninformative, wilson


def test_spammer_and_adversary_are_flagged(make_params, simulate):
    k = 5
    items, workers, labels, _ = simulate(600, [0.9, 0.85, 0.8, 0.7, 0.2, 0.2], k, 4, seed=4, adversary=5)
    labels = np.where(workers == 4, np.random.default_rng(9).integers(0, k, len(items)), labels)  # pure random
    vocab = Vocabulary(tuple("abcde"), {})
    votes = pl.DataFrame({"item": [f"i{i:04d}" for i in items], "worker_id": [f"w{w}" for w in workers],
                          "label": [vocab.classes[x] for x in labels]})
    params = make_params({}).labels
    crowd = aggregate(votes, vocab, params)
    flags = {r["worker_id"]: (r["is_spammer"], r["is_adversarial"]) for r in crowd.workers.iter_rows(named=True)}
    assert flags == {"w0": (False, False), "w1": (False, False), "w2": (False, False), "w3": (False, False),
                     "w4": (True, False), "w5": (False, True)}
    acc = dict(crowd.workers.select("worker_id", "accuracy").iter_rows())
    assert acc["w0"] > 0.85 and acc["w5"] < 0.1 and abs(acc["w4"] - 1 / k) < 0.08




def test_a_consistent_wrong_answerer_with_few_votes_is_adversarial(make_params):
    """A worker answering class + 3 on 70-120 items among 10 classes: informative (so no spammer), estimated about
    chance or below, its interval's upper end above chance: flagged adversarial (was not: no flag at all)."""
    k, n = 10, 600
    for answered, seed in ((70, 11), (70, 12), (120, 12)):
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, k, n)
        rows = []
        for i in range(n):
            for w, acc in (("a", 0.95), ("b", 0.9), ("c", 0.85)):
                rows.append((i, w, truth[i] if rng.random() < acc else rng.integers(0, k)))
            if i < answered:
                rows.append((i, "adversary", (truth[i] + 3) % k if rng.random() < 0.95 else truth[i]))
        vocab = Vocabulary(tuple(str(c) for c in range(k)), {})
        votes = pl.DataFrame({"item": [f"i{i}" for i, _, _ in rows], "worker_id": [w for _, w, _ in rows],
                              "label": [str(c) for _, _, c in rows]})
        workers = {r["worker_id"]: r for r in aggregate(votes, vocab, make_params({}).labels).workers.iter_rows(named=True)}
        adversary = workers["adversary"]
        assert adversary["accuracy_high"] > 1 / k and not adversary["is_spammer"]
        assert adversary["is_adversarial"], (answered, seed, adversary)
        assert not any(workers[w]["is_adversarial"] or workers[w]["is_spammer"] for w in "abc")


def test_wilson_interval():
    low, high = wilson(np.array([0.0, 15.0, 77.0]), np.array([0.0, 20.0, 100.0]), 0.95)
    assert (low[0], high[0]) == (0.0, 1.0)
    assert 0.53 < low[1] < 0.55 and 0.88 < high[1] < 0.9  # 15/20
    assert 0.67 < low[2] < 0.69 and 0.84 < high[2] < 0.86


def test_flags_need_evidence(make_params):
    """A 77%-accurate worker, a spammer with few evidence votes and one with many: only the last is flagged."""
    rng = np.random.default_rng(3)
    k, n = 10, 400
    truth = rng.integers(0, k, n)
    rows = []
    for i in range(n):
        for w, acc in (("good_a", 0.95), ("good_b", 0.9), ("ok", 0.77)):
            rows.append((i, w, truth[i] if rng.random() < acc else rng.integers(0, k)))
        rows.append((i, "spam_many", rng.integers(0, k)))
        if i < 8:
            rows.append((i, "spam_few", rng.integers(0, k)))
    vocab = Vocabulary(tuple(str(c) for c in range(k)), {})
    votes = pl.DataFrame({"item": [f"i{i}" for i, _, _ in rows], "worker_id": [w for _, w, _ in rows],
                          "label": [str(c) for _, _, c in rows]})
    workers = {r["worker_id"]: r for r in aggregate(votes, vocab, make_params({}).labels).workers.iter_rows(named=True)}
    assert workers["spam_many"]["is_spammer"] and not workers["spam_few"]["is_spammer"]
    assert not workers["ok"]["is_spammer"] and not workers["ok"]["is_adversarial"]
    assert workers["ok"]["accuracy_low"] < 0.77 < workers["ok"]["accuracy_high"]
    assert uninformative(aggregate(votes, vocab, make_params({}).labels).workers, 20) is None


def test_uninformative_when_items_have_one_vote_each(make_params):
    vocab = Vocabulary(("a", "b"), {})
    votes = pl.DataFrame({"item": [f"i{i}" for i in range(200)], "worker_id": [f"w{i % 10}" for i in range(200)],
                          "label": ["a" if i % 3 else "b" for i in range(200)]})
    workers = aggregate(votes, vocab, make_params({}).labels).workers
    assert workers["evidence_votes"].sum() == 0 and workers["accuracy"].null_count() == 10
    assert "carry little signal" in uninformative(workers, 20)
