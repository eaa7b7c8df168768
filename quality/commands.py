"""``sluice quality gate|report|summary|checks|diff``."""

from __future__ import annotations

import json
from pathlib import Path

LAYER_CHOICES = ["bronze", "silver", "gold", "snapshot"]


def register(sub) -> None:
    q = sub.add_parser("quality", help="data-quality gates, reports and dataset diffs",
                       description="Great Expectations suites per table, run as one gate per layer. "
                                   "A failed critical check exits 3; warnings are reported only.")
    qs = q.add_subparsers(dest="quality_command", metavar="SUBCOMMAND", required=True)

    g = qs.add_parser("gate", help="validate one layer (as the DVC stage quality_<layer> does)")
    g.add_argument("layer", choices=LAYER_CHOICES)
    g.add_argument("--suite", action="append", help="only this suite (repeatable), e.g. --suite dataset")
    g.add_argument("--no-docs", action="store_true", help="skip rebuilding the Data Docs site")
    g.set_defaults(func=_gate)

    r = qs.add_parser("report", help="summary.json, Data Docs and the dataset page from the last gate runs")
    r.set_defaults(func=_report)

    s = qs.add_parser("summary", help="print the one-screen summary of the last gate runs (exit 3 on a critical failure)")
    s.set_defaults(func=_summary)

    c = qs.add_parser("checks", help="list every check: name, severity (after quality.severity), description")
    c.add_argument("layer", nargs="?", choices=LAYER_CHOICES)
    c.set_defaults(func=_checks)

    d = qs.add_parser("diff", help="compare two dataset versions: class balance, duplicates, labels, rows",
                      description="Compare two versions of the training set. A and B name a version as everywhere in "
                                  "sluice: @N (Delta version N of the gold dataset table), a git ref (tag, branch "
                                  "or commit of a dataset version), current, or a snapshot folder (data/dataset).")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--json", action="store_true", help="print the comparison as JSON")
    d.set_defaults(func=_diff)


def _params():
    from sluice.config import load_params

    return load_params()


def _gate(args) -> int:
    from quality.gate import gate_with

    gate_with(args.layer, _params(), only=args.suite, docs=not args.no_docs)
    return 0


def _report(args) -> int:
    from quality.report import build_report, render

    params = _params()
    print(render(build_report(params), Path(params.quality.reports_dir)))
    return 0


def _summary(args) -> int:
    from quality.report import render, summarize
    from sluice.errors import QualityGateFailed

    reports = Path(_params().quality.reports_dir)
    summary = summarize(reports)
    print(render(summary, reports))
    if not summary["success"]:
        raise QualityGateFailed(f"critical quality checks failed (see {reports}/summary.json)")
    return 0


def _checks(args) -> int:
    from quality.checks import LAYERS
    from quality.gate import build_env
    from quality.suites import suites_for
    from sluice.lake import Lake

    params = _params()
    env = build_env(params, Lake.from_params(params))
    overrides = dict(params.quality.severity)
    for layer in [args.layer] if args.layer else LAYERS:
        for suite in suites_for(layer, env):
            for check in suite.checks:
                name = suite.check_name(check)
                print(f"{layer:<9} {overrides.get(name, check.severity):<8} {check.kind:<9} {name:<50} {check.description}")
    return 0


def _diff(args) -> int:
    from quality.diff import compare, load_side, render
    from sluice.lake import Lake

    lake = Lake.from_params(_params())
    diff = compare(load_side(args.a, lake), load_side(args.b, lake))
    print(json.dumps(diff, indent=2, sort_keys=True, default=str) if args.json else render(diff))
    return 0
