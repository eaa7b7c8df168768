"""``reports/metrics/summary.json``: a dozen headline figures across the stages, the one metrics file
``dvc metrics show`` prints by default (the pipeline's ``summary`` stage, ``python -m sluice.summary``).

It is read from what the stages already wrote (manifests and metric files); a figure whose stage is
not in the project is left out. The detail files stay tracked and committed; show one with
``dvc metrics show reports/metrics/eval.json`` (docs/versioning.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sluice import paths


def _load(path: Path | str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _first(*values):
    return next((v for v in values if v is not None), None)


def figures(params) -> dict:
    """The headline figures (only those whose inputs exist), in a fixed order."""
    manifests = Path(params.paths.manifests)
    m = {name: _load(manifests / f"{name}.json") for name in ("ingest_public", "clean", "dedup", "dataset", "export")}
    labels, evaluate = _load(paths.LABELS_METRICS), _load(paths.EVAL_METRICS)
    train, compress, insight = _load(paths.TRAIN_METRICS), _load(params.compress.metrics), _load(params.insight.metrics)
    quality = _load(Path(params.quality.reports_dir) / "summary.json")
    layers = [v for v in (quality.get("layers") or {}).values() if isinstance(v, dict)]
    out = {
        "images_landed": _first(_get(m["clean"], "rows.raw_images"), _get(m["ingest_public"], "rows.raw_images")),
        "images_clean": _get(m["clean"], "rows.images"),
        "quarantined": _first(_get(m["clean"], "rows.quarantine"), _get(m["ingest_public"], "rows.quarantine")),
        "duplicates_merged": _first(_get(m["dedup"], "reconcile.merged_duplicates"),
                                    _get(m["dataset"], "reconcile.merged_duplicates")),
        **{f"dataset_{s}": _first(_get(m["export"], f"counts.{s}"), _get(m["dataset"], f"counts.{s}.rows"))
           for s in ("train", "val", "test")},
        "subjects_in_one_split": _get(m["dataset"], "leakage.subjects.units") or None,  # patients of 2+ images
        "crowd_label_accuracy": labels.get("dawid_skene_accuracy"),
        "label_noise_estimate": insight.get("noise_rate_estimate"),
        "test_label_issues": _get(insight, "test.issues"),  # wrong test labels to review
        "test_accuracy": _first(_get(evaluate, "test.accuracy"), train.get("test_accuracy")),
        "int8_accuracy": _get(compress, "variants.int8.accuracy"),
        "int8_speedup_b64": _get(compress, "vs_fp32_eager.int8.speedup_b64"),
        "quality_checks_failed": sum(int(v.get("failed") or 0) for v in layers) if layers else None,
        "quality_passed": quality.get("success"),
    }
    return {k: v for k, v in out.items() if v is not None}


def write(params, path: Path | str = paths.SUMMARY_METRICS) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(figures(params), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def main() -> None:
    from sluice.stage import stage_logger, stage_main

    def run() -> int:
        from sluice.config import load_params

        path = write(load_params())
        stage_logger("summary").info("%s: %d figures", path, len(json.loads(path.read_text())))
        return 0

    stage_main(run)


if __name__ == "__main__":
    main()
