"""The worker model: accuracy intervals, flags that need evidence, the uninformative warning."""

from __future__ import annotations

import numpy as np
import polars as pl

from transform.labels.aggregate import aggregate
from transform.labels.vocabulary import Vocabulary


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


