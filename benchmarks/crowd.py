"""Dawid-Skene on synthetic crowd votes: time against majority vote, accuracy of both against the truth.

Default: 1,000,000 votes (100,000 items x 10 votes, 1,000 workers, 10 classes). Worker quality varies:
40% good (accuracy 0.6-0.85), 30% mediocre (0.3-0.5), 20% spammers (answer at random) and 10%
adversarial (each answers its own fixed wrong class). Baselines measured in the same run: majority vote on the
same votes (time and accuracy) and crowd-kit's DawidSkene on a 100,000-vote slice (time, agreement).

    python benchmarks/crowd.py [--quick] [--no-crowdkit]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of  # noqa: E402

from transform.labels import dawid_skene, vote_counts  # noqa: E402


def synthesize(n_items: int, per_item: int, n_workers: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, n_workers, p=[0.4, 0.3, 0.2, 0.1])  # good, mediocre, spammer, adversarial
    accuracy = np.where(kind == 0, rng.uniform(0.6, 0.85, n_workers), rng.uniform(0.3, 0.5, n_workers))
    shift = rng.integers(1, k, n_workers)  # the adversary's fixed wrong answer: truth + shift
    truth = rng.integers(0, k, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    workers = rng.integers(0, n_workers, len(items))
    t = truth[items]
    right = rng.random(len(items)) < accuracy[workers]
    labels = np.where(right, t, rng.integers(0, k, len(items)))
    labels = np.where(kind[workers] == 2, rng.integers(0, k, len(items)), labels)
    labels = np.where(kind[workers] == 3, (t + shift[workers]) % k, labels)
    return items, workers, labels, truth


def timed(fn, repeat: int = 1):
    """(best wall time over ``repeat`` runs, the last result)."""
    out = []
    return best_of(lambda: out.append(fn()), repeat), out[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100,000 votes (10,000 items) instead of 1,000,000")
    ap.add_argument("--no-crowdkit", action="store_true", help="skip the crowd-kit baseline")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_items, per_item, n_workers, k = (10_000, 10, 1_000, 10) if args.quick else (100_000, 10, 1_000, 10)
    items, workers, labels, truth = synthesize(n_items, per_item, n_workers, k, args.seed)
    print(f"votes {len(items):,}, items {n_items:,}, workers {n_workers:,}, classes {k}")

    def majority():
        counts = vote_counts(items, labels, n_items, k)
        noise = np.random.default_rng(args.seed).random(counts.shape) * 0.5  # ties at random
        return np.argmax(counts + noise, axis=1)

    t_mv, mv = timed(majority, repeat=3)
    t_ds, ds = timed(lambda: dawid_skene(items, workers, labels, n_items, n_workers, k, max_iter=100, tol=1e-6,
                                         smoothing=0.01))
    acc_mv, acc_ds = (mv == truth).mean(), (ds.posteriors.argmax(1) == truth).mean()
    print(f"majority vote : {t_mv:8.3f} s   accuracy {acc_mv:.4f}")
    print(f"dawid-skene   : {t_ds:8.3f} s   accuracy {acc_ds:.4f}   ({ds.iterations} EM iterations, "
          f"{t_ds / ds.iterations * 1000:.0f} ms each)")
    print(f"HEADLINE dawid-skene time / majority-vote time: {t_ds / t_mv:.1f}x; accuracy {acc_ds:.4f} vs {acc_mv:.4f} "
          f"(+{(acc_ds - acc_mv) * 100:.1f} points)")

    if not args.no_crowdkit:
        try:
            import pandas as pd
            from crowdkit.aggregation import DawidSkene
        except ImportError:
            print("crowd-kit not installed: baseline skipped")
            return
        n_sub = min(n_items, 10_000)
        sub = items < n_sub
        frame = pd.DataFrame({"task": items[sub], "worker": workers[sub], "label": labels[sub]})
        t_ck, ck = timed(lambda: DawidSkene(n_iter=100, tol=1e-6).fit_predict(frame))
        t_ours, ours = timed(lambda: dawid_skene(items[sub], workers[sub], labels[sub], n_sub, n_workers, k,
                                                 max_iter=100, tol=1e-6, smoothing=0.0))
        ck_labels = ck.sort_index().to_numpy()
        print(f"crowd-kit DawidSkene on {sub.sum():,} votes: {t_ck:.2f} s ({len(ck_labels)} items, accuracy "
              f"{(ck_labels == truth[:n_sub]).mean():.4f}); ours {t_ours:.3f} s (accuracy "
              f"{(ours.posteriors.argmax(1) == truth[:n_sub]).mean():.4f}, same label on "
              f"{(ours.posteriors.argmax(1) == ck_labels).mean():.4f} of items)")
        print(f"HEADLINE speed-up over crowd-kit DawidSkene: {t_ck / t_ours:.1f}x")


if __name__ == "__main__":
    main()
