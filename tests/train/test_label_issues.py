"""Confident learning checked against hand-computed cases and a simulated noisy data set."""

from __future__ import annotations

import numpy as np
import pytest

from train.label_issues import (calibrate_joint, confident_joint, find_issues, issues_frame, normalized_margin,
                                rank_issues, round_preserving_row_totals, thresholds)

# Worked by hand in the comments: thresholds t = (0.575, 0.31667, 0.65).
HAND_PROBS = np.array([
    [0.90, 0.05, 0.05],  # label 0: only p0 >= t0 -> 0
    [0.25, 0.35, 0.40],  # label 0: only p1 >= t1 (argmax 2 is below t2) -> 1
    [0.10, 0.50, 0.40],  # label 1: only p1 -> 1
    [0.10, 0.10, 0.80],  # label 1: only p2 -> 2
    [0.00, 0.20, 0.80],  # label 2: only p2 (0.2 < t1) -> 2
    [0.10, 0.40, 0.50],  # label 2: only p1 (0.5 < t2) -> 1
    [0.00, 0.35, 0.65],  # label 1: p1 and p2 above; the larger, 2
])
HAND_LABELS = np.array([0, 0, 1, 1, 2, 2, 1])


def test_thresholds_are_mean_self_confidence_per_class():
    assert thresholds(HAND_PROBS, HAND_LABELS) == pytest.approx([0.575, 0.95 / 3, 0.65])


def test_confident_joint_by_hand():
    raw = confident_joint(HAND_PROBS, HAND_LABELS, calibrate=False)
    assert raw.tolist() == [[1, 1, 0], [0, 1, 2], [0, 1, 1]]
    # label counts (2, 3, 2) already equal the row sums, so calibration keeps it
    assert confident_joint(HAND_PROBS, HAND_LABELS).tolist() == raw.tolist()


def test_calibration_scales_rows_to_label_counts_and_total_to_n():
    cal = calibrate_joint(np.array([[4, 1, 0], [0, 1, 1], [0, 0, 2]]), np.array([10, 4, 6]))
    assert cal.sum(1).tolist() == [10, 4, 6]
    assert cal.tolist() == [[8, 2, 0], [0, 2, 2], [0, 0, 6]]


def test_round_preserving_row_totals():
    out = round_preserving_row_totals(np.array([[0.4, 0.4, 0.2], [1.5, 1.5, 0.0]]))
    assert out.sum(1).tolist() == [1, 3]
    assert out.tolist() == [[1, 0, 0], [2, 1, 0]]


def test_diagonal_kept_at_least_one():
    probs = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])  # every class-0 example looks like class 1
    assert confident_joint(probs, np.array([0, 0, 1]), calibrate=False).tolist() == [[1, 2], [0, 1]]


def test_hand_case_issues_prune_by_largest_margin():
    probs = np.array([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1],
                      [0.2, 0.7, 0.1], [0.1, 0.9, 0.0], [0.3, 0.1, 0.6], [0.1, 0.1, 0.8]])
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    # t = (0.5667, 0.8, 0.7); C = [[2,1,0],[0,1,0],[0,0,1]] -> calibrated [[2,1,0],[0,2,0],[0,0,2]]
    assert confident_joint(probs, labels).tolist() == [[2, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert np.flatnonzero(find_issues(probs, labels)).tolist() == [2]
    found = rank_issues(probs, labels)
    assert found.order.tolist() == [2] and found.suggested[2] == 1
    assert found.noise_rate == pytest.approx(1 / 7)
    assert normalized_margin(probs, labels)[2] == pytest.approx((0.1 - 0.8 + 1) / 2)


def test_prediction_equal_to_label_is_never_an_issue():
    found = find_issues(HAND_PROBS, HAND_LABELS)
    assert not (found & (HAND_PROBS.argmax(1) == HAND_LABELS)).any()
    # C[1][2] = 2 and C[0][1] = 1 prune the largest margins: rows 3, 6 (label 1 -> 2) and 1 (0 -> 1, but
    # its argmax is 2 != 0 so it stays), C[2][1] = 1 prunes row 5 whose argmax is 2 = its label: dropped
    assert np.flatnonzero(found).tolist() == [1, 3, 6]


def test_issues_frame_ranked_by_self_confidence_and_margin():
    ids = [f"i{j}" for j in range(7)]
    frame = issues_frame(ids, HAND_PROBS, HAND_LABELS, ["a", "b", "c"])
    assert frame["image_id"].to_list() == ["i3", "i1", "i6"]  # self-confidence 0.1, 0.25, 0.35
    assert frame["given_label"].to_list() == ["b", "a", "b"]
    assert frame["suggested_label"].to_list() == ["c", "c", "c"]
    assert frame["rank"].to_list() == [1, 2, 3]
    by_margin = issues_frame(ids, HAND_PROBS, HAND_LABELS, ["a", "b", "c"], rank_by="normalized_margin")
    assert by_margin["image_id"].to_list() == ["i3", "i6", "i1"]  # margins 0.15, 0.35, 0.425


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        thresholds(np.ones((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError):
        thresholds(np.ones((2, 2)), np.array([0, 2]))


def simulate(seed: int, n: int = 3000, k: int = 5, flip: float = 0.05):
    """A separable problem seen through a noisy model: the true class gets a clear logit lead, with
    per-example noise; class 0 is hard (smaller lead: the model is systematically less sure of it).
    Then ``flip`` of the labels move to a random other class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    lead = np.where(true == 0, 1.2, 3.0)
    logits = rng.normal(0, 0.8, (n, k))
    logits[np.arange(n), true] += lead
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(n, int(flip * n), replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, k, len(flipped))) % k
    return probs, given, set(flipped.tolist())


def _pr(found: list[int], truth: set[int]) -> tuple[float, float]:
    hit = len(truth & set(found))
    return hit / max(len(found), 1), hit / len(truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_noise_beats_loss_ranking(seed):
    probs, given, flipped = simulate(seed)
    found = rank_issues(probs, given)
    m = len(flipped)
    cl = found.order[:m].tolist()
    loss = np.argsort(-(-np.log(probs[np.arange(len(given)), given])), kind="stable")[:m].tolist()
    p_cl, r_cl = _pr(cl, flipped)
    p_loss, r_loss = _pr(loss, flipped)
    assert p_cl >= 0.8 and r_cl >= 0.75, (p_cl, r_cl)
    assert p_cl > p_loss and r_cl > r_loss, (p_cl, r_cl, p_loss, r_loss)
    assert 0.03 <= found.noise_rate <= 0.09
    # the whole issue set, without being told the noise count
    p_all, r_all = _pr(found.order.tolist(), flipped)
    assert p_all >= 0.75 and r_all >= 0.75, (p_all, r_all)


def test_command_line_prints_ranked_csv_and_rejects_bad_input(run_cli, tmp_path):
    np.save(tmp_path / "p.npy", HAND_PROBS)
    np.save(tmp_path / "y.npy", HAND_LABELS)
    out = run_cli(str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), module="train.label_issues")
    assert out.returncode == 0, out.stderr
    assert [line.split(",")[0] for line in out.stdout.splitlines()[1:]] == ["3", "1", "6"]
    np.save(tmp_path / "y.npy", HAND_LABELS[:3])
    bad = run_cli(str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), module="train.label_issues")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "labels (n,)" in bad.stderr


def test_methods_of_the_paper_by_hand():
    # both hand cases agree across methods; an unconfident wrong argmax separates argmax from the rest
    for method in ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"):
        assert np.flatnonzero(find_issues(HAND_PROBS, HAND_LABELS, method=method)).tolist() == [1, 3, 6], method
    p1 = np.array([0.1, 0.2, 0.55, 0.9, 0.8, 0.95])  # t = (0.7167, 0.8833): row 2 is above neither
    probs, labels = np.stack([1 - p1, p1], 1), np.array([0, 0, 0, 1, 1, 1])
    assert confident_joint(probs, labels, calibrate=False).tolist() == [[2, 0], [0, 2]]
    assert confident_joint(probs, labels).tolist() == [[3, 0], [0, 3]]
    for method in ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint"):
        assert not find_issues(probs, labels, method=method).any(), method
    assert np.flatnonzero(find_issues(probs, labels, method="argmax")).tolist() == [2]
    with pytest.raises(ValueError):
        find_issues(probs, labels, method="nope")


def test_methods_nest_on_simulated_noise():
    probs, given, flipped = simulate(3)
    masks = {m: find_issues(probs, given, method=m)
             for m in ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax")}
    assert not (masks["both"] & ~masks["prune_by_noise_rate"]).any()
    assert not (masks["both"] & ~masks["prune_by_class"]).any()
    for m in ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint"):
        assert not (masks[m] & ~masks["argmax"]).any(), m  # argmax != label is a superset
        p, r = _pr(np.flatnonzero(masks[m]).tolist(), flipped)
        assert p >= 0.6 and r >= 0.6, (m, p, r)
