"""Crowd aggregation on simulated votes: majority vote, Dawid-Skene and one-coin (ours) vs crowd-kit's MV, DS, MACE.

Scenarios (10 classes, errors uniform over the wrong classes unless said):

- ``varied``: 3 votes per item from 200 workers of varied quality (accuracy 0.35-0.95, 10% spammers);
- ``one_vote``: as ``varied`` but 40% of items carry a single vote;
- ``small_workers``: 3 votes per item from 6,000 workers with ~10 votes each (typical MTurk tails);
- ``confused``: as ``varied``, but 60% of a worker's errors name the class after the true one (cat taken for
  dog, as real crowds confuse similar classes), the rest spread evenly;
- ``confused_sparse``: those confusions from 6,000 workers with ~10 votes each;
- ``large`` (only with ``--large``): 1,000,000 votes, 10 per item, 1,000 workers incl. adversaries.

Dawid-Skene (ours) runs with the stage's default prior (``em.confusion_prior`` 50 pseudo-votes a true class:
each worker's own accuracy, the crowd's confusions); "DS classic" without it (maximum likelihood, crowd-kit's).

For every method: accuracy of its label on all items, coverage (share of items whose confidence
reaches the stage's default ``min_confidence`` 0.6 without a tie) and accuracy on those, and time.
The baseline of the time ratio is our majority vote, measured in the same run.

    python benchmarks/crowd.py [--no-crowdkit] [--large] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of

from sluice.params_labels import EmParams
from transform.labels.methods import dawid_skene, majority, one_coin, top_two

K = 10
MIN_CONFIDENCE = 0.6


def simulate(n_items: int, n_workers: int, per_item: np.ndarray, accuracy: np.ndarray, spam: np.ndarray,
             shift: np.ndarray | None, seed: int, confused: float = 0.0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    workers = rng.integers(0, n_workers, len(items))
    t = truth[items]
    right = rng.random(len(items)) < accuracy[workers]
    wrong = np.where(rng.random(len(items)) < confused, (t + 1) % K, (t + rng.integers(1, K, len(items))) % K)
    labels = np.where(right, t, wrong)
    labels = np.where(spam[workers], rng.integers(0, K, len(items)), labels)
    if shift is not None:
        labels = np.where(shift[workers] > 0, (t + shift[workers]) % K, labels)
    return items, workers, labels, truth


def scenario(name: str, seed: int):
    rng = np.random.default_rng(seed + 1)
    if name in ("varied", "one_vote"):
        n_items, n_workers = 20_000, 200
        per_item = np.full(n_items, 3)
        if name == "one_vote":
            per_item[rng.random(n_items) < 0.4] = 1
        return simulate(n_items, n_workers, per_item, rng.uniform(0.35, 0.95, n_workers), rng.random(n_workers) < 0.1,
                        None, seed)
    if name in ("small_workers", "confused", "confused_sparse"):
        n_items, n_workers = 20_000, 200 if name == "confused" else 6_000
        return simulate(n_items, n_workers, np.full(n_items, 3), rng.uniform(0.35, 0.95, n_workers),
                        rng.random(n_workers) < 0.1, None, seed, confused=0.6 if name.startswith("confused") else 0.0)
    n_items, n_workers = 100_000, 1_000  # large
    kind = rng.choice(4, n_workers, p=[0.4, 0.3, 0.2, 0.1])
    accuracy = np.where(kind == 0, rng.uniform(0.6, 0.85, n_workers), rng.uniform(0.3, 0.5, n_workers))
    shift = np.where(kind == 3, rng.integers(1, K, n_workers), 0)
    return simulate(n_items, n_workers, np.full(n_items, 10), accuracy, kind == 2, shift, seed)


def score(posteriors: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    label, confidence, tie = top_two(posteriors)
    covered = (confidence >= MIN_CONFIDENCE) & ~tie
    acc_covered = float((label[covered] == truth[covered]).mean()) if covered.any() else float("nan")
    return float((label == truth).mean()), float(covered.mean()), acc_covered


def ours(items, workers, labels, n_items, n_workers, seed):
    return {
        "majority (ours)": lambda: majority(items, workers, labels, n_items, n_workers, K, seed).posteriors,
        "dawid-skene (ours)": lambda: dawid_skene(items, workers, labels, n_items, n_workers, K, smoothing=0.01,
                                                  prior_strength=EmParams().confusion_prior).posteriors,
        "DS classic (ours)": lambda: dawid_skene(items, workers, labels, n_items, n_workers, K, smoothing=0.01).posteriors,
        "one-coin (ours)": lambda: one_coin(items, workers, labels, n_items, n_workers, K).posteriors,
    }


def crowdkit(items, workers, labels, n_items):
    import pandas as pd
    from crowdkit.aggregation import MACE, DawidSkene, MajorityVote

    frame = pd.DataFrame({"task": items, "worker": workers, "label": labels})

    def probas(model):
        def go():
            p = model.fit_predict_proba(frame).reindex(index=range(n_items), columns=range(K)).fillna(0.0)
            return p.to_numpy()
        return go

    return {"crowd-kit MV": probas(MajorityVote()), "crowd-kit DS": probas(DawidSkene(n_iter=100, tol=1e-6)),
            "crowd-kit MACE": probas(MACE(n_iter=50, random_state=0))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-crowdkit", action="store_true", help="skip the crowd-kit baselines")
    ap.add_argument("--no-mace", action="store_true", help="skip crowd-kit's MACE (minutes per scenario)")
    ap.add_argument("--large", action="store_true", help="also the 1,000,000-vote scenario (ours only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = ["varied", "one_vote", "small_workers", "confused", "confused_sparse"] + (["large"] if args.large else [])
    for name in names:
        items, workers, labels, truth = scenario(name, args.seed)
        n_items, n_workers = len(truth), int(workers.max()) + 1
        print(f"\n== {name}: {len(items):,} votes, {n_items:,} items, {n_workers:,} workers, {K} classes")
        methods = ours(items, workers, labels, n_items, n_workers, args.seed)
        if not args.no_crowdkit and name != "large":
            try:
                methods.update({m: f for m, f in crowdkit(items, workers, labels, n_items).items()
                                if not (args.no_mace and "MACE" in m)})
            except ImportError:
                print("crowd-kit not installed: its baselines are skipped")
        base = None
        print(f"{'method':<20} {'accuracy':>8} {'coverage':>8} {'acc@cov':>8} {'time s':>8} {'x MV time':>9}")
        for method, fn in methods.items():
            out = []
            t = best_of(lambda fn=fn, out=out: out.append(fn()), 1)
            base = base or t
            acc, cov, acc_cov = score(out[-1], truth)
            print(f"{method:<20} {acc:>8.4f} {cov:>8.4f} {acc_cov:>8.4f} {t:>8.3f} {t / base:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
