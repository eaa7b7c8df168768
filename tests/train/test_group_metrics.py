"""Per-group metrics and Wilson intervals against hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest

from train.group_metrics import group_report, per_class, per_group, wilson


def test_wilson_matches_published_values():
    # Wilson 95% intervals as tabulated (e.g. Newcombe 1998): 5/10 -> 0.2366..0.7634, 0/10 -> 0..0.2775
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_per_class_precision_recall_and_gap():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    body = per_class(y_true, y_pred, ["a", "b", "c"])
    a = body["groups"]["a"]
    assert a["recall"]["value"] == 0.75 and a["recall"]["n"] == 4
    assert a["precision"]["value"] == 0.75 and a["precision"]["n"] == 4  # 3 of 4 predicted 'a' are 'a'
    assert body["groups"]["b"]["precision"]["value"] == pytest.approx(2 / 3)
    assert body["gap"] == {"metric": "recall", "best": "b", "worst": "c", "gap": 0.5}
    assert a["recall"]["low"] < 0.75 < a["recall"]["high"]


def test_per_group_accuracy_and_macro_scores():
    y_true = np.array([0, 1, 0, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 1, 0])
    body = per_group(y_true, y_pred, ["crawl", "crawl", "public", "public", "crowd", "crowd"], 2)
    assert body["groups"]["crawl"]["accuracy"]["value"] == 1.0
    assert body["groups"]["public"]["accuracy"]["value"] == 0.5
    assert body["groups"]["public"]["macro_recall"] == 0.5  # class 0: 1/1, class 1: 0/1
    assert body["groups"]["crowd"]["accuracy"]["value"] == 0.0
    assert body["gap"]["best"] == "crawl" and body["gap"]["worst"] == "crowd" and body["gap"]["gap"] == 1.0


def test_report_warns_on_gaps_above_threshold():
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 0])
    body = group_report(y_true, y_pred, ["a", "b"], {"source": ["x", "x", "y", "y"]}, max_gap=0.3)
    assert body["accuracy"]["value"] == 0.75
    assert len(body["warnings"]) == 2  # class b trails a by 0.5, source y trails x by 0.5
    assert group_report(y_true, y_pred, ["a", "b"], {}, max_gap=0.6)["warnings"] == []
