"""The quality report: ``python -m quality.report`` (DVC stage ``quality_report``).

Collects the layer reports the gates wrote into ``reports/quality/summary.json`` (a DVC metric),
rebuilds the Data Docs site from the GX store, writes the dataset page ``reports/quality/dataset.html``
and logs the one-screen summary of every layer (``sluice quality report`` prints it on stdout).
"""

from __future__ import annotations

import json
from pathlib import Path

from quality.checks import LAYERS
from sluice.errors import InputError


def summarize(reports_dir: Path) -> dict:
    layers = {}
    for layer in LAYERS:
        path = reports_dir / f"{layer}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            layers[layer] = {"success": r["success"], "checks": r["counts"]["checks"], "passed": r["counts"]["passed"],
                             "failed": r["counts"]["failed"], "skipped": r["counts"]["skipped"],
                             "critical_failures": len(r["critical_failures"]), "warnings": len(r["warnings"]),
                             "quarantined": r["counts"]["quarantined"]}
    if not layers:
        raise InputError(f"{reports_dir}: no gate reports (<layer>.json) yet; run `sluice quality gate LAYER` first")
    return {"success": all(v["success"] for v in layers.values()), "layers": layers}


def render(summary: dict, reports_dir: Path) -> str:
    lines = ["quality summary" + ("" if summary["success"] else "  -- CRITICAL FAILURES")]
    for layer, v in summary["layers"].items():
        r = json.loads((reports_dir / f"{layer}.json").read_text())
        status = "passed" if v["success"] else "FAILED"
        lines.append(f"  {layer:<9} {status:<7} {v['passed']:>3}/{v['checks']:<3} checks  {v['warnings']} warning(s)  "
                     f"{v['quarantined']} quarantined")
        for name in r["critical_failures"]:
            lines.append(f"      critical: {name}")
        for name in r["warnings"]:
            lines.append(f"      warning:  {name}")
    lines.append(f"  reports: {reports_dir}/<layer>.json, {reports_dir}/summary.json, {reports_dir}/dataset.html, "
                 f"{reports_dir}/docs/index.html")
    return "\n".join(lines)


def build_report(params, lake=None, docs: bool = True) -> dict:
    from quality.gate import build_env
    from quality.page import write_page
    from sluice.lake import Lake

    reports = Path(params.quality.reports_dir)
    summary = summarize(reports)
    (reports / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    lake = lake or Lake.from_params(params)
    env = build_env(params, lake)
    write_page(params, lake, env.classes)
    if docs:
        from quality.gxcontext import build_docs, open_context

        build_docs(open_context(reports), reports)
    return summary


def main() -> None:
    from sluice.config import load_params
    from sluice.stage import stage_logger, stage_main

    def go():
        params = load_params()
        summary = build_report(params)
        stage_logger("quality_report").info(render(summary, Path(params.quality.reports_dir)))

    stage_main(go)


if __name__ == "__main__":
    main()
