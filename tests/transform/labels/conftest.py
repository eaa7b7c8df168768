"""Simulated crowds for the aggregation and worker-model tests."""

from __future__ import annotations

import numpy as np
import pytest


def simulate(n_items: int, accuracies: list[float], k: int, per_item: int, seed: int, adversary: int | None = None):
    """Votes from workers of the given accuracies (errors uniform); ``adversary`` answers truth+1."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(len(accuracies), per_item, replace=False) for _ in range(n_items)])
    t = truth[items]
    right = rng.random(len(items)) < np.asarray(accuracies)[workers]
    labels = np.where(right, t, rng.integers(0, k, len(items)))
    if adversary is not None:
        labels = np.where(workers == adversary, (t + 1) % k, labels)
    return items, workers, labels, truth


@pytest.fixture(name="simulate")
def simulate_fixture():
    return simulate


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """Vote ingestion refuses to run without the pseudonym key (sluice.privacy)."""
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "test-key-not-secret")
