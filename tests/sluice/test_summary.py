"""The headline metrics: `reports/metrics/summary.json` from what the stages wrote, the one file a plain
`dvc metrics show` prints (real DVC), with the detail files still tracked; dvc_plots/ is ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from sluice import init, summary
from sluice.config import load_params_file, parse_params
from sluice.pipeline import SUMMARY, build

REPO = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")


def _write(path: str, body: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(body))


def _stage_outputs() -> None:
    _write("data/manifests/clean.json", {"rows": {"raw_images": 1700, "images": 1675, "quarantine": 0}})
    _write("data/manifests/dedup.json", {"reconcile": {"merged_duplicates": 33}})
    _write("data/manifests/export.json", {"counts": {"train": 1183, "val": 130, "test": 329, "total": 1642}})
    _write("reports/metrics/labels.json", {"dawid_skene_accuracy": 0.965, "workers": {"w": {"a": 1}}})
    _write("reports/metrics/eval.json", {"test": {"accuracy": 0.9878, "per_class": {"0": {"recall": 1.0}}}})
    _write("reports/metrics/label_issues.json", {"noise_rate_estimate": 0.0084, "test": {"issues": 3}})
    _write("reports/metrics/compress.json", {"variants": {"int8": {"accuracy": 0.9878}},
                                             "vs_fp32_eager": {"int8": {"speedup_b64": 1.66}}})
    _write("reports/quality/summary.json", {"layers": {"bronze": {"failed": 1}, "gold": {"failed": 0}}, "success": True})


def test_figures_from_what_the_stages_wrote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = parse_params({"lake": {"root": "lake"}})
    assert summary.figures(params) == {}  # nothing run yet: nothing made up
    _stage_outputs()
    assert summary.figures(params) == {
        "images_landed": 1700, "images_clean": 1675, "quarantined": 0, "duplicates_merged": 33,
        "dataset_train": 1183, "dataset_val": 130, "dataset_test": 329, "crowd_label_accuracy": 0.965,
        "label_noise_estimate": 0.0084, "test_label_issues": 3, "test_accuracy": 0.9878, "int8_accuracy": 0.9878, "int8_speedup_b64": 1.66,
        "quality_checks_failed": 1, "quality_passed": True}
    _write("data/manifests/dataset.json", {"leakage": {"subjects": {"units": 0}}})  # no subject named: no figure
    assert "subjects_in_one_split" not in summary.figures(params)
    _write("data/manifests/dataset.json", {"leakage": {"subjects": {"units": 244, "rows": 741}}})
    assert summary.figures(params)["subjects_in_one_split"] == 244


def test_pipeline_declares_only_the_summary_as_metrics():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    doc = build(raw, load_params_file(REPO / "params.yaml"), REPO)
    assert doc["metrics"] == [SUMMARY] == ["reports/metrics/summary.json"]
    assert not [name for name, stage in doc["stages"].items() if "metrics" in stage]
    uncached = {next(iter(o)) for s in doc["stages"].values() for o in s.get("outs", []) if isinstance(o, dict)}
    assert {"reports/metrics/eval.json", "reports/metrics/compress.json", "reports/quality/summary.json",
            SUMMARY} <= uncached  # the detail files stay tracked (committed, cache: false)
    deps = doc["stages"]["summary"]["deps"]
    assert "reports/metrics/eval.json" in deps and "data/manifests/export.json" in deps
    assert "data/manifests/crawl.json" not in deps
    assert build({}, parse_params({}))["metrics"] == [SUMMARY]  # a user's project too


def test_dvc_metrics_show_prints_the_summary_by_default(tmp_path, monkeypatch):
    repo = tmp_path / "proj"
    repo.mkdir()
    env = {**os.environ, "SLUICE_PARAMS": str(repo / "params.yaml"), "PYTHONPATH": str(REPO)}

    def run(*cmd):
        out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout

    run("git", "init", "-q")
    run(DVC, "init", "-q")
    (repo / ".gitignore").write_text(init.GITIGNORE)
    (repo / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (repo / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    monkeypatch.chdir(repo)
    _stage_outputs()
    run(sys.executable, "-m", "sluice.summary")
    shown = run(DVC, "metrics", "show").splitlines()
    assert shown[0].split()[0] == "Path" and [line.split()[0] for line in shown[1:]] == [SUMMARY]
    assert len(shown[0].split()) == 16  # Path + 15 figures, not hundreds of per-class keys
    assert "test.per_class.0.recall" in run(DVC, "metrics", "show", "reports/metrics/eval.json")
    (repo / "dvc_plots").mkdir()
    (repo / "dvc_plots" / "index.html").write_text("<html/>")
    ignored = subprocess.run(["git", "check-ignore", "dvc_plots/index.html", SUMMARY, "reports/quality/summary.json"],
                             cwd=repo, capture_output=True, text=True).stdout.split()
    assert ignored == ["dvc_plots/index.html"]  # plots output ignored; the metrics files are committed
