"""The quality gate of one layer: ``python -m quality.gate bronze|silver|gold|snapshot``.

Runs the layer's suites, writes every failing row to ``quarantine`` (stage ``quality_<layer>``,
check = the expectation's name; a rerun replaces the stage's rows so fixed rows are re-admitted),
stores the GX results and rebuilds Data Docs, writes ``reports/quality/<layer>.json`` (what
downstream DVC stages depend on) and logs a one-screen summary (stderr). A failed critical check raises
``QualityGateFailed`` (exit 3) naming the checks and the report; warnings never stop the pipeline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quality.checks import LAYERS, Env
from sluice.class_order import ordered
from sluice.errors import ConfigError, InputError, QualityGateFailed
from sluice.lake import Lake
from sluice.runs import new_run_id
from sluice.stage import Quarantine, stage_logger


def resolve_classes(params, con, tables: set[str]) -> tuple[list[str] | None, str]:
    """The class list checks compare against, and where it came from."""
    if params.quality.classes:
        return list(params.quality.classes), "quality.classes"
    if params.labels.classes:
        return list(params.labels.classes), "labels.classes"
    for table, sql in (("labels", "SELECT DISTINCT label FROM labels WHERE status = 'resolved' AND label IS NOT NULL"),
                       ("dataset", "SELECT DISTINCT label FROM dataset")):
        if table in tables:
            try:
                found = ordered(r[0] for r in con.execute(sql).fetchall())
            except Exception:  # a malformed table is reported by its own schema check
                continue
            if found:
                return found, f"inferred from {table} (set quality.classes to catch a dropped class)"
    return None, "unknown"


def build_env(params, lake: Lake) -> Env:
    from sluice.catalog import TABLES
    from sluice.sql import connect

    con = connect(lake)
    columns = {}
    for name in TABLES:
        if lake.exists(name):
            schema = lake.dataset(name).schema
            columns[name] = {f.name: str(f.type) for f in schema}
    classes, origin = resolve_classes(params, con, set(columns))
    q = params.quality
    return Env(lake, con, params, classes, origin, columns, Path(q.manifests_dir), Path(q.snapshot_dir))


def _check_severity_names(params, names: set[str]) -> None:
    unknown = sorted(set(params.quality.severity) - names)
    if unknown:
        raise ConfigError(f"quality.severity: unknown check '{unknown[0]}' (see `sluice quality checks` for names)")


def all_check_names(env: Env) -> set[str]:
    from quality.suites import suites_for

    names = set()
    for layer in LAYERS:
        for suite in suites_for(layer, env):
            names |= {suite.check_name(c) for c in suite.checks}
            if suite.required and suite.table:
                names.add(f"{suite.name}.table_exists")
    return names


def quarantine_rows(results, layer: str, run_id: str) -> Quarantine:
    """The failing rows of ``results``: one per (check, row key), in the table the check ran on."""
    quarantine = Quarantine(f"quality_{layer}", "", run_id)
    for r in results:
        if r.success is False and r.table:
            details = json.dumps({"severity": r.severity, "observed": _short(r.observed), "detail": r.detail},
                                 sort_keys=True, default=str)
            for key in dict.fromkeys(r.keys):
                quarantine.add(key, r.name, r.description, details, source_table=r.table)
    return quarantine


def _short(value):
    text = value if isinstance(value, (int, float, bool)) or value is None else str(value)
    return text[:200] if isinstance(text, str) else text


def run_layer(layer: str, params, lake: Lake | None = None, run_id: str | None = None, docs: bool = True,
              only: list[str] | None = None) -> dict:
    """Validate ``layer``; return its report (the content of ``<reports>/<layer>.json``)."""
    from quality.engine import run_suite
    from quality.gxcontext import build_docs, forget_results, open_context
    from quality.suites import suites_for

    if layer not in LAYERS:
        raise InputError(f"unknown layer '{layer}'; layers: {', '.join(LAYERS)}")
    lake = lake or Lake.from_params(params)
    run_id = run_id or new_run_id(f"quality_{layer}")
    q = params.quality
    env = build_env(params, lake)
    _check_severity_names(params, all_check_names(env))
    suites = suites_for(layer, env)
    if only:
        unknown = sorted(set(only) - {s.name for s in suites})
        if unknown:
            raise InputError(f"no suite '{unknown[0]}' in layer {layer} (suites: {', '.join(s.name for s in suites)})")
        suites = [s for s in suites if s.name in only]
    reports = Path(q.reports_dir)
    ctx = open_context(reports)
    forget_results(ctx, [n for s in suites for n in (s.name, f"{s.name}.aggregates")])
    results = []
    for suite in suites:
        results += run_suite(ctx, env, suite, dict(q.severity), q.batch_rows, run_id, q.max_quarantine_per_check)
    quarantine = quarantine_rows(results, layer, run_id)
    n_quarantined = len(quarantine)
    # Replaces this gate's earlier rows (only these suites' with --suite); a clean rerun commits nothing.
    quarantine.write(lake, replace=True, checks=[f"{s.name}." for s in suites] if only else None)
    docs = build_docs(ctx, reports) if docs else None
    report = {
        "layer": layer,
        "success": not any(r.success is False and r.severity == "critical" for r in results),
        "classes": env.classes, "classes_origin": env.classes_origin,
        "critical_failures": [r.name for r in results if r.success is False and r.severity == "critical"],
        "warnings": [r.name for r in results if r.success is False and r.severity == "warning"],
        "counts": {"checks": len(results), "passed": sum(r.success is True for r in results),
                   "failed": sum(r.success is False for r in results),
                   "skipped": sum(r.success is None for r in results), "quarantined": n_quarantined},
        "versions": {t: lake.version(t) for t in sorted(env.columns)},
        "checks": [r.as_json() for r in results],
        "data_docs": str(docs) if docs else None,
    }
    path = reports / f"{layer}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    report["path"] = str(path)
    report["run_id"] = run_id
    return report


def render_summary(report: dict) -> str:
    """The one-screen text summary of a layer report."""
    c = report["counts"]
    status = "PASSED" if report["success"] else "FAILED"
    lines = [f"{status}: {c['passed']} passed, {c['failed']} failed "
             f"({len(report['critical_failures'])} critical), {c['skipped']} skipped; {c['quarantined']} rows quarantined"]
    for check in report["checks"]:
        if check["success"] is False:
            mark = "CRITICAL" if check["severity"] == "critical" else "warning "
            what = check["detail"] or (f"{check['unexpected']} of {check['elements']} rows" if check["elements"] > 1
                                       else f"observed {check['observed']!r}")
            if check["sample"] and not check["detail"]:
                what += f", e.g. {', '.join(str(s) for s in check['sample'][:3])}"
            lines.append(f"  {mark} {check['name']}: {check['description']} -- {what}"[:220])
    skipped = sorted({c["skipped"] for c in report["checks"] if c["skipped"]})
    if skipped:
        lines.append(f"  skipped: {'; '.join(skipped)}"[:220])
    lines.append(f"  classes: {len(report['classes'] or [])} ({report['classes_origin']})")
    lines.append(f"  report: {report.get('path')}  data docs: {report['data_docs']}")
    return "\n".join(lines)


def gate_with(layer: str, params, only: list[str] | None = None, docs: bool = True) -> dict:
    """Run the gate, log its summary, and raise ``QualityGateFailed`` on a critical failure."""
    report = run_layer(layer, params, only=only, docs=docs)
    log = stage_logger(f"quality_{layer}")
    (log.info if report["success"] else log.warning)(render_summary(report))
    if not report["success"]:
        docs_note = f"; data docs: {report['data_docs']}" if report["data_docs"] else ""
        raise QualityGateFailed(f"quality gate '{layer}' failed: {', '.join(report['critical_failures'])} "
                                f"(report: {report['path']}{docs_note})")
    return report


def main() -> None:
    from sluice.stage import stage_main
    from sluice.config import load_params

    def go():
        if len(sys.argv) != 2 or sys.argv[1] not in LAYERS:
            raise InputError(f"usage: python -m quality.gate {{{'|'.join(LAYERS)}}}")
        gate_with(sys.argv[1], load_params())

    stage_main(go)


if __name__ == "__main__":
    main()
