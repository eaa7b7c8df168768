"""Stage ``report`` (``python -m train.run_report``; ``sluice report``): one HTML page per run that
works offline.

Sections: the data (the dataset page's sections), training curves, the test confusion matrix,
per-group metrics with confidence intervals, label issues with thumbnails and suggested labels,
saliency overlays, robustness curves and the compression trade-off. Charts are inline SVG
(``sluice.svg``), images PNG data URIs; the page loads nothing, so it opens from a file, a mail
attachment or an artefact store with no network. A section whose input is missing says "Not run"
and names the file and the stage that writes it.

Written to ``report.out`` (``reports/run.html``) and copied to ``<train.runs_dir>/<run_id>/report.html``
beside the run's metrics, so every training run keeps its report.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from sluice import paths
from sluice.config import Params
from train.report_insight import label_issues_section, robustness_section, saliency_section, tradeoff_section
from train.report_sections import (CSS, Inputs, confusion_section, curves_section, data_section, fmt, groups_section,
                                   read_json)

STAGE = "report"


def inputs_of(params: Params) -> Inputs:
    return Inputs(train_metrics=paths.TRAIN_METRICS, train_curve=paths.TRAIN_CURVE, eval_metrics=paths.EVAL_METRICS,
                  confusion=paths.CONFUSION, label_issues=Path(params.insight.metrics),
                  groups=Path(params.insight.groups_metrics), compress_metrics=Path(params.compress.metrics),
                  quality_dir=Path(params.quality.reports_dir), snapshot=Path(params.train.snapshot),
                  insight_dir=Path(params.report.insight_dir), runs_dir=Path(params.train.runs_dir))


def _header(inp: Inputs) -> tuple[str, str | None]:
    t = read_json(inp.train_metrics)
    if t is None:
        return (f'<p class="not-run">Not run: no training run ({escape(str(inp.train_metrics))} is missing; the '
                "<code>train</code> stage writes it).</p>"), None
    r = t.get("recipe") or {}
    line = (f"<p>Run <b id='run-id'>{escape(str(t.get('run_id')))}</b>, finished {escape(str(t.get('finished_at')))}: "
            f"{escape(str(r.get('arch')))} (width {r.get('width')}, depth {r.get('depth')}, recipe "
            f"{escape(str(r.get('recipe')))}), {t.get('epochs')} epochs in {fmt(t.get('seconds'), 1)} s on "
            f"{escape(str(t.get('hardware')))}. Test accuracy <b>{fmt(t.get('test_accuracy'))}</b>, val accuracy "
            f"{fmt(t.get('val_accuracy'))}. Snapshot content hash <code>{escape(str(t.get('dataset_hash')))}</code>.</p>")
    # outputs of other stages that describe another snapshot are flagged, not silently mixed
    stale = [f"{name} ({escape(str(path))}: {escape(str(h)[:12])})" for name, path in
             (("evaluation", inp.eval_metrics), ("label issues", inp.label_issues))
             if (h := (read_json(path) or {}).get("dataset_hash")) and h != t.get("dataset_hash")]
    if stale:
        line += ('<p class="warn">These sections describe another snapshot than the run: ' + ", ".join(stale)
                 + " (rerun the stages: <code>dvc repro</code>).</p>")
    return line, t.get("run_id")


def render(params: Params, out: Path, lake=None) -> tuple[str, str | None, list[str]]:
    """The page's HTML, the run id it reports on (None without a training run) and the sections that
    say "Not run" (an input missing)."""
    inp = inputs_of(params)
    header, run_id = _header(inp)
    rep = params.report
    sections = [
        ("data", "Data", lambda: data_section(inp, out)),
        ("training", "Training curves", lambda: curves_section(inp)),
        ("confusion", "Confusion matrix (test)", lambda: confusion_section(inp)),
        ("groups", "Per-group metrics", lambda: groups_section(inp)),
        ("label-issues", "Label issues", lambda: label_issues_section(inp, lake, rep.max_label_issues)),
        ("saliency", "Saliency", lambda: saliency_section(inp, rep.max_saliency)),
        ("robustness", "Robustness", lambda: robustness_section(inp)),
        ("tradeoff", "Compression trade-off", lambda: tradeoff_section(inp)),
    ]
    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title, _ in sections)
    built = [(sid, title, build()) for sid, title, build in sections]
    not_run = [sid for sid, _, html in built if 'class="not-run"' in html]
    body = "".join(f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>' for sid, title, html in built)
    # tells a headless browser (and the tests) how many images decoded; the page works without it
    script = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
              "document.body.dataset.imagesDecoded=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
              "document.body.dataset.imagesTotal=i.length;});</script>")
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    title = f"Sluice run {run_id}" if run_id else "Sluice run report"
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{header}<nav>{nav}</nav>{body}"
            f"<p class='muted'>Written {when} by <code>sluice report</code>; self-contained: no script or style is "
            f"loaded from anywhere.</p>{script}</body></html>")
    return html, run_id, not_run


def write_report(params: Params, out: Path | str | None = None, lake=None) -> dict:
    """Write the report to ``out`` (default ``report.out``) and the run's folder; returns where."""
    from sluice.lake import Lake

    out = Path(out or params.report.out)
    if lake is None:
        try:
            lake = Lake.from_params(params)
        except Exception:  # noqa: BLE001 - no lake is a "not run" section, not a failure
            lake = None
    html, run_id, not_run = render(params, out, lake)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    written = {"report": str(out), "bytes": len(html.encode()), "run_id": run_id, "not_run": not_run}
    run_dir = Path(params.train.runs_dir) / run_id if run_id else None
    if run_dir is not None and run_dir.is_dir():
        shutil.copyfile(out, run_dir / "report.html")
        written["run_copy"] = str(run_dir / "report.html")
    return written


def run(params: Params) -> dict:
    from sluice.stage import stage_logger

    done = write_report(params)
    stage_logger(STAGE).info("wrote %s (%d KiB)%s%s", done["report"], done["bytes"] // 1024,
                             f", copy in {done['run_copy']}" if "run_copy" in done else "",
                             f"; not run: {', '.join(done['not_run'])}" if done["not_run"] else "")
    return done


def main() -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    stage_main(lambda: run(load_params()) and None)


if __name__ == "__main__":
    main()
