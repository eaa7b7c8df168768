"""The run report: every section from small fixture files in the shapes the stages write (the insight
stage's saliency.json/robustness.json included), "Not run" where an input is missing, and the page
rendered by a real headless Chromium with a request trap (tests/conftest.py: offline_chromium)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sluice.snapshot import SplitArrays, channel_stats, write_snapshot

CLASSES = ["cat", "dog", "fox"]
CURVE = [{"epoch": 1, "loss": 1.5, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.55, "images_per_s": 900.0,
          "seconds": 1.0},
         {"epoch": 2, "loss": 0.75, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.75, "images_per_s": 950.0,
          "seconds": 1.0}]
CONFUSION = {("cat", "cat"): 5, ("cat", "dog"): 1, ("dog", "dog"): 4, ("fox", "fox"): 3, ("fox", "cat"): 2}
ROBUSTNESS = {"fp32": {"gaussian_noise": {"1": 0.9, "3": 0.7, "5": 0.4}, "blur": {"1": 0.95, "5": 0.6}},
              "int8": {"gaussian_noise": {"1": 0.88, "3": 0.65, "5": 0.35}, "blur": {"1": 0.94, "5": 0.55}},
              "adversarial": {"fp32": {"pgd": {"0": 0.95, "0.01": 0.5, "0.03": 0.125}},
                              "int8": {"pgd": {"0": 0.94, "0.01": 0.6, "0.03": 0.25}}}}


def _png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def _write(path: Path, body) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body) if not isinstance(body, str) else body)


def build_project(root: Path, lake) -> dict:
    """Every input of the report under ``root`` (the project folder); returns what the page should show."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 4)
    ids = [f"img{i:02d}" + "0" * 20 for i in range(12)]
    mean, std = channel_stats(images)
    manifest = write_snapshot(root / "data" / "dataset", {
        "train": SplitArrays(images[:9], labels[:9], np.ones(9, np.float32), ids[:9]),
        "val": SplitArrays(images[9:], labels[9:], np.ones(3, np.float32), ids[9:])}, CLASSES,
        {"mean": mean, "std": std})
    dhash = manifest["content_hash"]
    _write(root / "reports/metrics/train.json", {"run_id": "20260101T000000Z-abc", "dataset_hash": dhash, "epochs": 2,
                                                 "seconds": 2.0, "hardware": "CPU", "test_accuracy": 0.8,
                                                 "val_accuracy": 0.75, "finished_at": "2026-01-01T00:00:02Z",
                                                 "recipe": {"arch": "rescnn", "width": 8, "depth": 1, "recipe": "demo"}})
    (root / "reports/plots").mkdir(parents=True)
    with (root / "reports/plots/train_curve.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(CURVE[0]))
        w.writeheader()
        w.writerows(CURVE)
    with (root / "reports/plots/confusion.csv").open("w", newline="") as fh:
        fh.write("actual,predicted\n" + "".join(f"{a},{p}\n" * n for (a, p), n in CONFUSION.items()))
    _write(root / "reports/metrics/eval.json", {"dataset_hash": dhash, "model": "models/fp32", "test": {
        "accuracy": 0.8, "count": 15, "macro_precision": 0.8, "macro_recall": 0.8,
        "per_class": {c: {"precision": 0.8, "recall": 0.8, "support": 5} for c in CLASSES}}})
    _write(root / "reports/metrics/label_issues.json", {
        "dataset_hash": dhash, "images": 12, "folds": 3, "epochs": 3, "oof_accuracy": 0.75, "noise_rate_estimate": 0.167,
        "issues": 2, "issues_by_pair": {"cat->dog": 1, "fox->cat": 1}, "method": "prune_by_noise_rate",
        "rank_by": "self_confidence", "warnings": ["estimated label noise 0.167 is above insight.noise_warn_rate 0.1"],
        "test": {"images": 15, "accuracy": 0.8, "noise_rate_estimate": 0.067, "issues": 1, "issue_share": 0.067,
                 "issues_by_pair": {"dog->cat": 1}}})
    lake.append("label_issues", pa.table({
        "image_id": ["imgtest" + "0" * 20, ids[1], ids[10]], "dataset_hash": [dhash] * 3, "given_label": ["dog", "cat", "fox"],
        "suggested_label": ["cat", "dog", "cat"], "self_confidence": [0.01, 0.05, 0.1], "margin": [0.1, 0.2, 0.3],
        "score": [0.01, 0.05, 0.1], "rank": pa.array([1, 1, 2], pa.int32()),
        "evidence": ["{}", json.dumps({"votes": 3, "agreement": 0.667}), "{}"], "run_id": ["oof-x"] * 3,
        "split": ["test", "train", "val"]}))
    prop = {"value": 0.8, "low": 0.6, "high": 0.9, "n": 20}
    _write(root / "reports/metrics/groups.json", {
        "count": 12, "accuracy": prop, "warnings": ["class: recall of 'fox' trails 'cat' by 0.300"],
        "class": {"groups": {c: {"precision": prop, "recall": {**prop, "value": v}} for c, v in
                             zip(CLASSES, (0.9, 0.8, 0.6))}, "gap": {"metric": "recall", "best": "cat", "worst": "fox",
                                                                    "gap": 0.3}},
        "source": {"groups": {"crawl": {"accuracy": {**prop, "value": 0.7}, "macro_precision": 0.7, "macro_recall": 0.7},
                              "public": {"accuracy": {**prop, "value": 0.85}, "macro_precision": 0.8,
                                         "macro_recall": 0.8}},
                   "gap": {"metric": "accuracy", "best": "public", "worst": "crawl", "gap": 0.15}}})
    _write(root / "reports/metrics/compress.json", {"variants": {
        "fp32": {"accuracy": 0.98, "accuracy_drop_points": 0.0, "eager_b64_ms": 22.5, "size_bytes": 650000},
        "int8": {"accuracy": 0.97, "accuracy_drop_points": 1.0, "eager_b64_ms": 44.0, "compiled_b64_ms": 13.0,
                 "size_bytes": 360000}}, "targets_met": {"int8_drop_le_1_point": True}})
    px = _png((200, 30, 30), 8)
    _write(root / "reports/quality/dataset.html", (
        "<!doctype html><html><head><style>.px{width:48px}</style></head><body><h1>Sluice dataset</h1>"
        "<section id=\"quality-gates\"><h2>Quality gates</h2><p>gold passed</p><p><a href='docs/index.html'>Data Docs"
        "</a></p></section><section id=\"samples-per-class\"><h2>Samples per class</h2>"
        f"<img class=\"px\" src=\"data:image/png;base64,{__import__('base64').b64encode(px).decode()}\"></section>"
        "<script>1</script></body></html>"))
    insight = root / "reports/insight"
    (insight / "saliency").mkdir(parents=True)
    (insight / "saliency" / "class_sample_0_img00.png").write_bytes(_png((255, 0, 0)))
    (insight / "saliency" / "mistake_0_img05.png").write_bytes(_png((0, 0, 255)))
    _write(insight / "saliency.json", [
        {"file": "saliency/class_sample_0_img00.png", "image_id": ids[0], "kind": "class_sample", "label": "cat",
         "predicted": "cat", "confidence": 0.97},
        {"file": "saliency/mistake_0_img05.png", "image_id": ids[5], "kind": "mistake", "label": "dog",
         "predicted": "fox", "confidence": 0.91}])
    _write(insight / "robustness.json", ROBUSTNESS)
    (root / "runs" / "20260101T000000Z-abc").mkdir(parents=True)
    return {"images": 2 + 2 + 1, "hash": dhash}


@pytest.fixture
def project(tmp_path, monkeypatch, make_params):
    from sluice.lake import Lake

    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    params = make_params({"lake": {"root": str(root / "lake")}})
    expected = build_project(root, Lake(str(root / "lake")))
    return root, params, expected


def test_report_without_any_input_says_not_run(tmp_path, monkeypatch, make_params):
    from train.run_report import write_report

    monkeypatch.chdir(tmp_path)
    done = write_report(make_params())
    html = Path(done["report"]).read_text()
    assert done["run_id"] is None and "run_copy" not in done
    assert done["not_run"] == ["data", "training", "confusion", "groups", "label-issues", "saliency", "robustness",
                               "tradeoff"]
    for stage in ("quality_report", "train", "evaluate", "oof", "insight", "compress"):
        assert f"the <code>{stage}</code> stage writes it" in html


def test_report_has_every_section_and_a_copy_in_the_run_folder(project):
    from train.run_report import write_report

    root, params, _ = project
    done = write_report(params)
    assert done["not_run"] == [] and done["run_id"] == "20260101T000000Z-abc"
    html = (root / "reports" / "run.html").read_text()
    assert (root / "runs" / "20260101T000000Z-abc" / "report.html").read_text() == html
    assert not re.search(r"(?:src|href)=['\"]?(?:https?:)?//", html)
    assert "<script>1</script>" not in html  # the dataset page's script is not carried over
    assert "href='quality/docs/index.html'" in html  # the Data Docs link, relative to the report
    assert html.count('<tr class=issue>') == 3 and "agreement 0.667, votes 3" in html
    # test issues are summarised apart and listed after the train and val ones
    assert "<b id='test-issue-count'>1</b> label issues for a person to review" in html
    rows = re.findall(r"<tr class=issue>(.*?)</tr>", html, re.S)
    assert [re.findall(r"<td[^>]*>(train|val|test)</td>", r) for r in rows] == [["train"], ["val"], ["test"]]
    assert "quality warning: estimated label noise 0.167" in html and "quality warning: class: recall" in html
    # the trade-off table gained robustness columns from robustness.json
    assert "corruption mean" in html and "pgd @ eps 0.03" in html and "0.1250" in html


def test_stale_sections_are_flagged(project):
    from train.run_report import write_report

    root, params, _ = project
    body = json.loads((root / "reports/metrics/eval.json").read_text())
    (root / "reports/metrics/eval.json").write_text(json.dumps({**body, "dataset_hash": "f" * 64}))
    html = Path(write_report(params)["report"]).read_text()
    assert "describe another snapshot than the run: evaluation" in html


def test_sluice_report_command(project, run_cli):
    import yaml

    root, params, _ = project
    (root / "params.yaml").write_text(yaml.safe_dump({"lake": {"root": str(root / "lake")}}))
    done = run_cli("report", "--out", "out/r.html", cwd=root, env={"SLUICE_PARAMS": str(root / "params.yaml")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["out/r.html", "runs/20260101T000000Z-abc/report.html"]
    assert "Label issues" in (root / "out" / "r.html").read_text()
    again = run_cli("report", "-o", "out/s.html", cwd=root, env={"SLUICE_PARAMS": str(root / "params.yaml")})
    assert again.returncode == 0 and again.stdout.split()[0] == "out/s.html"  # -o as every other command takes it


def _floats(pattern: str, dom: str) -> list[tuple]:
    return [tuple(float(x) if re.fullmatch(r"[-\d.e]+", x) else x for x in m) for m in re.findall(pattern, dom)]


def test_report_renders_offline_in_headless_chromium(project, offline_chromium):
    from train.run_report import write_report

    root, params, expected = project
    dom, requests = offline_chromium(Path(write_report(params)["report"]))
    assert requests == []
    decoded = int(re.search(r'data-images-decoded="(\d+)"', dom).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    assert decoded == total == expected["images"]  # 2 thumbnails, 2 overlays, 1 dataset-page sample
    # training curves: every CSV value, as drawn
    acc = _floats(r'<circle class="pt" data-series="(\w+)" data-x="([\d.]+)" data-y="([\d.]+)"', dom.split(
        'id="curve-accuracy"')[1].split("</svg>")[0])
    assert acc == [(s, float(r["epoch"]), r[s]) for s in ("accuracy", "val_accuracy") for r in CURVE]
    # confusion matrix: one cell per pair with the count of CSV rows
    cells = re.findall(r'<rect class="cell" data-row="(\w+)" data-col="(\w+)" data-count="(\d+)"', dom)
    assert len(cells) == 9 and {(a, p): int(n) for a, p, n in cells if int(n)} == CONFUSION
    # per-group bars with their intervals
    bars = _floats(r'<rect class="bar" data-label="(\w+)" data-value="([\d.]+)" data-low="([\d.]+)" '
                   r'data-high="([\d.]+)"', dom.split('id="groups-class"')[1].split("</svg>")[0])
    assert bars == [("cat", 0.9, 0.6, 0.9), ("dog", 0.8, 0.6, 0.9), ("fox", 0.6, 0.6, 0.9)]
    # robustness: a chart per corruption and per attack, a line per variant, every point
    for corruption in ("gaussian_noise", "blur"):
        chart = dom.split(f'id="robust-{corruption}"')[1].split("</svg>")[0]
        pts = _floats(r'data-series="(\w+)" data-x="([\d.]+)" data-y="([\d.]+)"', chart)
        assert pts == [(v, float(s), a) for v in ("fp32", "int8") for s, a in
                       sorted(ROBUSTNESS[v][corruption].items(), key=lambda kv: float(kv[0]))]
    pgd = _floats(r'data-series="(\w+)" data-x="([\d.]+)" data-y="([\d.]+)"',
                  dom.split('id="attack-pgd"')[1].split("</svg>")[0])
    assert ("fp32", 0.03, 0.125) in pgd and ("int8", 0.01, 0.6) in pgd and len(pgd) == 6
    # saliency overlays grouped by kind with their labels; the trade-off scatter
    assert re.findall(r'<figure class="saliency" data-kind="(\w+)" data-label="(\w+)" data-predicted="(\w+)"', dom) == [
        ("class_sample", "cat", "cat"), ("mistake", "dog", "fox")]
    assert _floats(r'data-label="(\w+)" data-x="([\d.]+)" data-y="([\d.]+)"',
                   dom.split('id="tradeoff-latency"')[1].split("</svg>")[0]) == [("fp32", 22.5, 0.98), ("int8", 44.0, 0.97)]
    assert 'class="not-run"' not in dom
