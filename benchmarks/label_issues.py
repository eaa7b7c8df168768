"""Label issues with known planted label noise: confident learning vs ranking by loss.

Headline: precision and recall of ``train.label_issues`` against the planted flips, side by side
with the baseline, ranking every example by its cross-entropy loss on the given label
(``-log p_given``). Both are scored at the true noise count (the top m of each ranking, m = number
of flips; confident learning contributes at most the issues it found) and confident learning also
on its own issue set (it estimates how many labels are wrong; the loss ranking cannot). Also the
estimated noise rate against the planted one, and the cost of finding the issues.

    python benchmarks/label_issues.py                 # simulated: 50,000 examples, 10 classes, 5% flips
    python benchmarks/label_issues.py --digits        # + real out-of-fold probabilities on the demo digits
                                                      #   (3 folds x 3 epochs of the trainer, a few minutes)
    python benchmarks/label_issues.py --demo          # + the pipeline's own run: after `dvc repro` on the demo,
                                                      #   the planted `label_noise` (ground_truth.json) against
                                                      #   the oof stage's predictions and label_issues tables
    python benchmarks/label_issues.py --no-simulated --test-split data/dataset --model models/fp32 --flip 0.01
                                                      # wrong *test* labels: a snapshot's test split with --flip
                                                      #   of its labels moved, judged by the fold models' mean
                                                      #   (the baseline) and by a trained model (the oof stage's
                                                      #   choice when it has one), as docs/insight.md measured
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def score(name: str, probs: np.ndarray, given: np.ndarray, flipped: np.ndarray) -> None:
    from train.label_issues import rank_issues

    truth = set(np.flatnonzero(flipped).tolist())
    m = len(truth)
    t0 = time.perf_counter()
    found = rank_issues(probs, given)
    t_cl = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss = -np.log(np.clip(probs[np.arange(len(given)), given], 1e-12, None))
    loss_order = np.argsort(-loss, kind="stable")  # highest loss first
    t_loss = time.perf_counter() - t0

    def pr(ids) -> str:
        hit = len(truth & set(np.asarray(ids).tolist()))
        return f"precision {hit / max(len(ids), 1):.3f} recall {hit / max(m, 1):.3f} ({len(ids)} flagged)"

    print(f"{name}: {len(given)} examples, {probs.shape[1]} classes, {m} planted flips "
          f"({m / len(given):.3f}); estimated noise rate {found.noise_rate:.3f}")
    print(f"  confident learning, top m      : {pr(found.order[:m])}")
    print(f"  loss ranking (baseline), top m : {pr(loss_order[:m])}")
    k = len(found.order)
    print(f"  confident learning, own set    : {pr(found.order)}")
    print(f"  loss ranking, same count       : {pr(loss_order[:k])}")
    for method in ("prune_by_class", "both", "confident_joint", "argmax"):
        print(f"  method {method:<22}: {pr(rank_issues(probs, given, method=method).order)}")
    print(f"  time: confident learning {t_cl:.3f}s, loss ranking {t_loss:.3f}s "
          f"(ratio {t_cl / max(t_loss, 1e-9):.1f}x the baseline's cost)")


def simulated(n: int, k: int, flip: float, seed: int):
    """A separable problem seen through a noisy model; two classes are hard (a smaller logit lead,
    as a real model is less sure of some classes), then ``flip`` of the labels move elsewhere."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    lead = np.where(true < 2, 1.2, 3.0)
    logits = rng.normal(0, 0.8, (n, k))
    logits[np.arange(n), true] += lead
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = true.copy()
    idx = rng.choice(n, int(flip * n), replace=False)
    given[idx] = (true[idx] + rng.integers(1, k, len(idx))) % k
    return probs, given, given != true


def digits(flip: float, seed: int, folds: int, epochs: int):
    """Real out-of-fold probabilities: the demo digits (1,550 train+val) with ``flip`` labels moved."""
    import torch

    from demo.generate import CLASSES, digit_images
    from sluice.config import parse_params
    from sluice.snapshot import SplitArrays, channel_stats, write_snapshot
    from train.oof import out_of_fold

    torch.set_num_threads(1)
    images, labels = digit_images(seed)
    order = np.random.default_rng(seed).permutation(len(images))[:1550]
    images, true = images[order], labels[order]
    rng = np.random.default_rng(seed + 1)
    given = true.copy()
    idx = rng.choice(len(given), int(flip * len(given)), replace=False)
    given[idx] = (true[idx] + rng.integers(1, len(CLASSES), len(idx))) % len(CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        mean, std = channel_stats(images)
        write_snapshot(Path(tmp) / "snap", {"train": SplitArrays(images, given, np.ones(len(given), np.float32),
                                                                 [str(i) for i in range(len(given))])},
                       CLASSES, {"mean": mean, "std": std})
        params = parse_params({"train": {"processes": 1, "device": "cpu"},
                               "insight": {"folds": folds, "epochs": epochs}}, "bench")
        t0 = time.perf_counter()
        oof = out_of_fold(Path(tmp) / "snap", params, Path(tmp))
        print(f"digits: {folds} folds x {epochs} epochs in {time.perf_counter() - t0:.1f}s, out-of-fold accuracy "
              f"{(oof['probs'].argmax(1) == true).mean():.4f} against the true labels")
    return oof["probs"].astype(np.float64), given, given != true


def demo(truth_path: str):
    """The demo pipeline's out-of-fold probabilities (gold ``predictions`` of the snapshot the oof stage
    last ran on) with the planted label noise of ``ground_truth.json``; also scores the stage's own
    ``label_issues`` rows. Run from the project folder after ``dvc repro``."""
    import json

    import pyarrow.compute as pc

    from sluice.config import load_params
    from sluice.lake import Lake
    from sluice.snapshot import read_manifest

    params = load_params()
    lake = Lake.from_params(params)
    dhash = json.loads(Path(params.insight.metrics).read_text())["dataset_hash"]
    classes = [str(c) for c in read_manifest(params.train.snapshot)["classes"]]
    planted = json.loads(Path(truth_path).read_text()).get("label_noise") or []
    if not planted:
        raise SystemExit(f"{truth_path}: no label_noise defect (demo.label_noise is 0 or the demo predates it)")
    uri_to_id = dict(zip(*lake.read("raw_images", columns=["source_uri", "image_id"]).to_pydict().values()))
    flipped_ids = {uri_to_id[f["uri"]] for f in planted if f["uri"] in uri_to_id}
    held_out = (pc.field("dataset_hash") == dhash) & (pc.field("split").is_null() | (pc.field("split") != "test"))  # planted: train
    rows = lake.read("predictions", filter=held_out).to_pylist()
    ids = [r["image_id"] for r in rows]
    probs = np.array([r["probs"] for r in rows], np.float64)
    given = np.array([classes.index(r["label"]) for r in rows])
    flipped = np.array([i in flipped_ids for i in ids])
    issues = {r["image_id"] for r in lake.read("label_issues", filter=held_out).to_pylist()}
    hit = len(issues & flipped_ids)
    print(f"demo: {len(planted)} planted flips, {len(flipped_ids)} landed, {int(flipped.sum())} in train+val "
          f"(snapshot {dhash[:12]}); the oof stage's label_issues table: {len(issues)} issues, precision "
          f"{hit / max(len(issues), 1):.3f} recall {hit / max(int(flipped.sum()), 1):.3f} "
          f"({params.insight.method}, ranked by {params.insight.rank_by})")
    return probs, given, flipped


def test_split(folder: str, model: str | None, flip: float, seed: int, folds: int, epochs: int) -> list[tuple]:
    """(name, probs, given, flipped) of the test split of ``folder`` with ``flip`` of its labels moved:
    from the fold models' mean and, with ``model`` (it must not have seen the test split; its train split
    is the snapshot's, whose test labels do not change what it predicts), from that model."""
    import torch

    from sluice import snapshot
    from sluice.config import parse_params
    from train.data import load_data
    from train.model import load_model
    from train.oof import out_of_fold, predict_probs

    torch.set_num_threads(2)
    manifest = snapshot.read_manifest(folder)
    splits = {s: snapshot.load_split(folder, s, mmap=False) for s in snapshot.SPLITS if s in manifest["splits"]}
    test = splits["test"]
    true = test.labels.copy()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(true), max(1, int(flip * len(true))), replace=False)
    test.labels[idx] = (true[idx] + rng.integers(1, len(manifest["classes"]), len(idx))) % len(manifest["classes"])
    given, flipped = test.labels.astype(np.int64), test.labels != true
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / "snap"
        snapshot.write_snapshot(snap, splits, manifest["classes"], {"mean": manifest["mean"], "std": manifest["std"]})
        params = parse_params({"train": {"processes": 1, "device": "cpu", "out_dir": str(Path(tmp) / "no-model")},
                               "insight": {"folds": folds, "epochs": epochs}}, "bench")
        t0 = time.perf_counter()
        probs = out_of_fold(snap, params, Path(tmp))["test"]["probs"]
        print(f"test split: {folds} folds x {epochs} epochs in {time.perf_counter() - t0:.1f}s")
        out.append(("test split, fold models' mean", probs.astype(np.float64), given, flipped))
        if model:
            t0 = time.perf_counter()
            probs = predict_probs(load_model(model)[0], load_data(snap, splits=("test",)).test)
            print(f"test split: {model} in {time.perf_counter() - t0:.1f}s")
            out.append((f"test split, {model}", probs.astype(np.float64), given, flipped))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digits", action="store_true", help="also run on real out-of-fold probabilities")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--demo", action="store_true", help="also score the demo pipeline's oof run on its planted noise")
    ap.add_argument("--truth", default="data/demo/ground_truth.json", help="the demo's ground truth (with --demo)")
    ap.add_argument("--no-simulated", action="store_true", help="skip the simulated problem")
    ap.add_argument("--test-split", metavar="SNAPSHOT", help="plant --flip wrong labels in this snapshot's test split")
    ap.add_argument("--model", help="with --test-split: a trained model folder that never saw the test split")
    args = ap.parse_args()
    if not args.no_simulated:
        score("simulated", *simulated(args.n, args.classes, args.flip, args.seed))
    if args.digits:
        score("digits", *digits(args.flip, args.seed, args.folds, args.epochs))
    if args.demo:
        score("demo", *demo(args.truth))
    if args.test_split:
        from train.label_issues import rank_issues

        found = test_split(args.test_split, args.model, args.flip, args.seed, args.folds, args.epochs)
        at_m = []
        for name, probs, given, flipped in found:
            score(name, probs, given, flipped)
            m = int(flipped.sum())
            found_test = rank_issues(probs, given, method="prune_by_class")  # the oof stage's test_method
            at_m.append(len(set(np.flatnonzero(flipped).tolist()) & set(found_test.order[:m].tolist())) / m)
        if len(at_m) == 2:
            print(f"precision of the {m} most doubtful test labels (prune_by_class, as the oof stage judges the test "
                  f"split): {args.model} {at_m[1]:.3f} vs the fold models' mean (baseline) {at_m[0]:.3f} => "
                  f"{at_m[1] / max(at_m[0], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
