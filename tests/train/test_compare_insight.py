"""`sluice compare A B --insight`: robustness and per-group metrics of fp32 and its int8 copy side by side."""

from __future__ import annotations

import pytest

from sluice.config import Params
from train.compare import compare_models
from train.compare_insight import compare_insight, render

ROBUSTNESS = {"images": 32, "severities": [1, 5], "corruptions": ["gaussian_noise", "jpeg"], "eps": [0.05],
              "pgd_steps": 2, "batch_size": 32}


def test_compare_insight_side_by_side(small_snapshot, trained_fp32, exported_variants, tmp_path):
    params = Params(train={"snapshot": str(small_snapshot), "out_dir": str(trained_fp32)},
                    lake={"root": str(tmp_path / "lake")}, insight={"robustness": ROBUSTNESS})
    a, b = trained_fp32, exported_variants / "int8"
    ins = compare_insight(a, b, params)
    assert ins["models"] == {"A": str(a), "B": str(b)} and ins["robustness_images"] == 32 and ins["images"] == 100
    summary = ins["robustness"]["summary"]
    assert summary["A"]["attack"] == "white-box" and summary["B"]["attack"] == "transfer from A"
    curves = ins["robustness"]["curves"]
    assert set(curves["A"]) == {"gaussian_noise", "jpeg"} and set(curves["adversarial"]["B"]["pgd"]) == {"0", "0.05"}
    mcnemar = compare_models(a, b, params.train)
    groups = ins["groups"]
    assert groups["A"]["accuracy"]["value"] == round(mcnemar.accuracy_a, 6)
    assert groups["B"]["accuracy"]["value"] == round(mcnemar.accuracy_b, 6)
    assert set(groups["A"]["class"]["groups"]) == set(groups["B"]["class"]["groups"])
    text = render(ins)
    assert "corruption_accuracy" in text and "pgd_accuracy" in text and "transfer from A" in text
    assert "per class recall:" in text and "class gap (recall)" in text
    assert f"{groups['A']['accuracy']['value']:.4f}" in text.splitlines()[2]


@pytest.mark.slow  # a subprocess loading torch, torchao and both models twice
def test_compare_insight_cli(run_cli, small_snapshot, trained_fp32, exported_variants, tmp_path):
    params = {"train": {"snapshot": str(small_snapshot), "out_dir": str(trained_fp32)},
              "lake": {"root": str(tmp_path / "lake")}, "insight": {"robustness": ROBUSTNESS}}
    res = run_cli("compare", str(trained_fp32), str(exported_variants / "int8"), "--insight", params=params)
    assert res.returncode == 0, res.stderr
    assert "verdict:" in res.stdout and "corruption_accuracy" in res.stdout and "transfer from A" in res.stdout
