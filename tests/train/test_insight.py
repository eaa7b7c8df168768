"""The insight stage on a model trained on real digits: saliency overlays and robustness of fp32, an
exported float copy (white-box) and an int8 copy (transfer attack), in the report engineer's file contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sluice.config import CompressParams, InsightParams, Params, TrainParams
from sluice.params_train import RobustnessParams
from train.insight import pick_saliency, run


def test_pick_saliency_takes_right_ones_per_class_then_confident_mistakes():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.95, 0.05], [0.1, 0.9]])
    chosen = pick_saliency(labels, probs, 2, 2)
    assert chosen == [("class_sample", 0), ("class_sample", 2), ("class_sample", 5), ("class_sample", 3),
                      ("mistake", 4), ("mistake", 1)]


@pytest.fixture(scope="module")
def project(small_snapshot, trained_fp32, exported_variants, tmp_path_factory):
    """fp32 from the trainer; 'sparse' (an exported float program) and 'int8' (PT2E) next to it."""
    out = tmp_path_factory.mktemp("insight")
    (out / "compress.json").write_text(json.dumps({"variants": {"fp32": {"accuracy": 0.9, "weights_bytes": 100},
                                                                "int8": {"accuracy": 0.89, "weights_bytes": 25}}}))
    params = Params(
        train=TrainParams(snapshot=str(small_snapshot), out_dir=str(trained_fp32)),
        compress=CompressParams(out_dir=str(exported_variants), metrics=str(out / "compress.json")),
        insight=InsightParams(out_dir=str(out / "reports"), saliency_per_class=1, saliency_mistakes=3,
                              robustness_metrics=str(out / "robustness_metrics.json"),
                              robustness_plot=str(out / "robustness.csv"),
                              robustness=RobustnessParams(images=48, severities=[1, 5], eps=[0.03, 0.1], pgd_steps=3,
                                                          batch_size=32)))
    metrics = run(params)
    return {"out": out, "metrics": metrics, "classes": json.loads((small_snapshot / "manifest.json").read_text())["classes"]}


def test_saliency_files_follow_the_contract(project):
    out = project["out"] / "reports"
    entries = json.loads((out / "saliency.json").read_text())
    samples = [e for e in entries if e["kind"] == "class_sample"]
    assert len(samples) == len(project["classes"])
    assert {e["label"] for e in samples} == set(project["classes"])
    mistakes = [e for e in entries if e["kind"] == "mistake"]
    assert len(mistakes) <= 3 and all(e["label"] != e["predicted"] for e in mistakes)
    assert [e["confidence"] for e in mistakes] == sorted((e["confidence"] for e in mistakes), reverse=True)
    for e in entries:
        assert set(e) == {"file", "image_id", "kind", "label", "predicted", "confidence"}
        name = e["file"].removeprefix("saliency/")
        assert name.startswith(e["kind"] + "_") and name.endswith(e["image_id"][:12] + ".png")
        png = Image.open(out / e["file"])
        assert png.format == "PNG" and png.size[0] > 2 * png.size[1] - 10  # image | overlay side by side
    assert sorted(p.name for p in (out / "saliency").iterdir()) == sorted(e["file"][9:] for e in entries)


def test_robustness_json_follows_the_contract(project):
    doc = json.loads((project["out"] / "reports" / "robustness.json").read_text())
    assert set(doc) == {"fp32", "sparse", "int8", "adversarial"}
    for variant in ("fp32", "sparse", "int8"):
        assert set(doc[variant]) == {"gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast", "pixelate"}
        assert all(set(sev) == {"1", "5"} for sev in doc[variant].values())
        assert set(doc["adversarial"][variant]) == {"fgsm", "pgd"}
        assert set(doc["adversarial"][variant]["pgd"]) == {"0", "0.03", "0.1"}
    # the exported float copy is the same network: the same numbers everywhere
    assert doc["sparse"] == doc["fp32"] and doc["adversarial"]["sparse"] == doc["adversarial"]["fp32"]
    fp32 = doc["adversarial"]["fp32"]
    assert fp32["pgd"]["0"] > 0.6  # the model learned the digits ...
    assert fp32["pgd"]["0.1"] < fp32["pgd"]["0"] - 0.3  # ... and a white-box PGD at eps 0.1 breaks it
    assert fp32["pgd"]["0.1"] <= fp32["fgsm"]["0.1"] + 0.05  # PGD is at least about as strong as FGSM
    assert doc["fp32"]["contrast"]["5"] <= doc["fp32"]["contrast"]["1"]


def test_summary_and_tradeoff_table_name_the_attack_mode(project):
    summary = project["metrics"]["variants"]
    assert summary["fp32"]["attack"] == "white-box" and summary["sparse"]["attack"] == "white-box"
    assert summary["int8"]["attack"] == "transfer from fp32"
    assert summary["fp32"]["attack_eps"] == 0.1  # the middle of [0.03, 0.1] (upper middle of two)
    import csv

    rows = {r["variant"]: r for r in csv.DictReader((project["out"] / "robustness.csv").open())}
    assert set(rows) == {"fp32", "sparse", "int8"}
    assert rows["int8"]["weights_bytes"] == "25" and rows["sparse"]["weights_bytes"] == ""
    assert float(rows["int8"]["corruption_accuracy"]) == summary["int8"]["corruption_accuracy"]
    assert 0 <= float(rows["int8"]["pgd_accuracy"]) <= 1
