"""Sections of the run report about the data and the model: the dataset page's sections, training
curves, the test confusion matrix, per-group metrics with intervals.

Each section is a function of files the stages wrote (paths in ``Inputs``) returning an HTML
fragment; a missing input gives a plain "not run" line naming the file and the stage that writes
it, never an exception. Charts come from ``sluice.svg`` (inline SVG carrying its numbers).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np

from sluice import svg

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1240px}
h1{font-size:22px}h2{font-size:19px;margin-top:36px;border-bottom:2px solid #ccc}h3{font-size:16px;margin-top:22px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777;font-size:12px}.not-run{color:#8a6d3b;background:#fcf8e3;padding:6px 10px;border-radius:4px}
.warn{color:#b22}.ok{color:#2a7a2a}.bad{color:#b22}.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
img.thumb{width:64px;height:64px;image-rendering:pixelated;border:1px solid #ccc}
img.px{width:48px;height:48px;image-rendering:pixelated;border:1px solid #ccc}
figure{display:inline-block;margin:4px;text-align:center;font-size:11px;max-width:300px;vertical-align:top}
figure img.overlay{height:128px;width:auto;image-rendering:pixelated;border:1px solid #ccc}
nav a{margin-right:10px}.grid{display:flex;flex-wrap:wrap;gap:4px;align-items:center}.row{margin:6px 0}
.row b{display:inline-block;width:70px}.group{display:inline-flex;gap:4px;padding:4px;margin:4px;border:1px solid #ddd}
.canon{outline:3px solid #3b6ea5}
"""


@dataclass
class Inputs:
    """Where the stages left what the report shows (all relative to the project folder)."""

    train_metrics: Path
    train_curve: Path
    eval_metrics: Path
    confusion: Path
    label_issues: Path
    groups: Path
    compress_metrics: Path
    quality_dir: Path
    snapshot: Path
    insight_dir: Path
    runs_dir: Path


def read_json(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def read_csv(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def not_run(what: str, path: Path | str, stage: str) -> str:
    return (f'<p class="not-run">Not run: no {escape(what)} ({escape(str(path))} is missing; '
            f"the <code>{escape(stage)}</code> stage writes it).</p>")


def png_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def file_uri(path: Path) -> str:
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
    return f"data:{mime.get(path.suffix.lower(), 'image/png')};base64," + base64.b64encode(path.read_bytes()).decode()


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return escape(str(v))


def table(head: list[str], rows: list[list], cls: str = "", numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(f'<th{" class=n" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(f'<tr{f" class={cls}" if cls else ""}>' + "".join(
        f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def interval(p: dict | None) -> str:
    if not p or p.get("value") is None:
        return "–"
    return f"{p['value']:.3f} <span class=muted>[{p['low']:.3f}, {p['high']:.3f}] n={p['n']}</span>"


# --- data ------------------------------------------------------------------------------------------

_SECTION = re.compile(r'<section id="([^"]+)"><h2>(.*?)</h2>(.*?)</section>', re.S)


def data_section(inp: Inputs, report_path: Path) -> str:
    """The dataset page's sections (reports/quality/dataset.html), embedded as they are."""
    page = inp.quality_dir / "dataset.html"
    if not page.is_file():
        return not_run("dataset page", page, "quality_report")
    html = page.read_text(encoding="utf-8")
    docs = os.path.relpath(inp.quality_dir / "docs" / "index.html", report_path.parent).replace(os.sep, "/")
    parts = []
    for sid, title, body in _SECTION.findall(html):
        body = body.replace("href='docs/index.html'", f"href='{escape(docs)}'")
        parts.append(f'<div class="data-part" id="data-{sid}"><h3>{title}</h3>{body}</div>')
    if not parts:
        return f'<p class="not-run">Not run: {escape(str(page))} has no sections.</p>'
    return (f'<p class="muted">From the dataset page <code>{escape(str(page))}</code> (the quality_report stage); '
            f'Data Docs: <a href="{escape(docs)}">{escape(docs)}</a>.</p>' + "".join(parts))


# --- model ----------------------------------------------------------------------------------------

def _float(v: str | None) -> float | None:
    try:
        return None if v in (None, "") else float(v)
    except ValueError:
        return None


def curves_section(inp: Inputs) -> str:
    rows = read_csv(inp.train_curve)
    if not rows:
        return not_run("training curve", inp.train_curve, "train")
    epochs = [_float(r["epoch"]) for r in rows]

    def series(*cols: str) -> dict:
        return {c: list(zip(epochs, (_float(r.get(c)) for r in rows))) for c in cols if any(r.get(c) for r in rows)}

    acc = series("accuracy", "val_accuracy", "test_accuracy")
    loss = series("loss", "val_loss")
    speed = series("images_per_s")
    return ('<div class="charts">'
            + svg.line_chart(acc, chart_id="curve-accuracy", title="Accuracy per epoch", x_label="epoch",
                             y_label="accuracy", y_min=0.0, y_max=1.0)
            + svg.line_chart(loss, chart_id="curve-loss", title="Loss per epoch", x_label="epoch", y_label="loss",
                             y_min=0.0)
            + (svg.line_chart(speed, chart_id="curve-speed", title="Training throughput", x_label="epoch",
                              y_label="images/s", y_min=0.0) if speed else "")
            + "</div>")


def classes_of(inp: Inputs, fallback: list[str]) -> list[str]:
    manifest = read_json(inp.snapshot / "manifest.json")
    if manifest and manifest.get("classes"):
        return [str(c) for c in manifest["classes"]]
    return fallback


def confusion_section(inp: Inputs) -> str:
    rows = read_csv(inp.confusion)
    if rows is None:
        return not_run("confusion matrix", inp.confusion, "evaluate")
    ev = read_json(inp.eval_metrics) or {}
    test = ev.get("test") or {}
    seen = sorted({r["actual"] for r in rows} | {r["predicted"] for r in rows})
    classes = classes_of(inp, list(test.get("per_class", {})) or seen)
    classes += [c for c in seen if c not in classes]
    at = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for r in rows:
        matrix[at[r["actual"]]][at[r["predicted"]]] += 1
    head = (f'<p>Test accuracy <b>{fmt(test.get("accuracy"))}</b> on {test.get("count", sum(map(sum, matrix)))} images'
            f' (macro precision {fmt(test.get("macro_precision"))}, macro recall {fmt(test.get("macro_recall"))}; '
            f'model <code>{escape(str(ev.get("model", "?")))}</code>).</p>') if test else ""
    per_class = test.get("per_class") or {}
    detail = table(["class", "precision", "recall", "support"],
                   [[escape(c), fmt(m.get("precision")), fmt(m.get("recall")), m.get("support")]
                    for c, m in per_class.items()], numeric={1, 2, 3}) if per_class else ""
    chart = svg.heatmap(matrix, classes, classes, chart_id="confusion", title="Test confusion matrix",
                        row_title="actual", col_title="predicted")
    return head + f'<div class="charts">{chart}{detail}</div>'


def groups_section(inp: Inputs) -> str:
    g = read_json(inp.groups)
    if g is None:
        return not_run("per-group metrics", inp.groups, "oof")
    out = [f"<p>Out-of-fold predictions on {g.get('count')} train+val images: accuracy {interval(g.get('accuracy'))}. "
           "Intervals are 95% Wilson score intervals.</p>"]
    for w in g.get("warnings", []):
        out.append(f'<p class="warn">quality warning: {escape(w)}</p>')
    cls = (g.get("class") or {}).get("groups", {})
    if cls:
        bars = [{"label": c, **m["recall"]} for c, m in cls.items()]
        gap = g["class"].get("gap", {})
        out.append('<h3>Per class</h3><div class="charts">'
                   + svg.interval_bars(bars, chart_id="groups-class", title="Recall per class (out-of-fold)",
                                       x_label="recall")
                   + table(["class", "precision", "recall"], [[escape(c), interval(m["precision"]), interval(m["recall"])]
                                                             for c, m in cls.items()], cls="group-row")
                   + f"</div><p>Gap best-worst recall: <b>{fmt(gap.get('gap'), 3)}</b> ({escape(str(gap.get('best')))}"
                   f" vs {escape(str(gap.get('worst')))}).</p>")
    for dim, body in g.items():
        if dim in ("count", "accuracy", "class", "warnings") or not isinstance(body, dict) or "groups" not in body:
            continue
        groups = body["groups"]
        bars = [{"label": name, **m["accuracy"]} for name, m in groups.items()]
        gap = body.get("gap", {})
        out.append(f"<h3>Per {escape(dim.replace('_', ' '))}</h3><div class='charts'>"
                   + svg.interval_bars(bars, chart_id=f"groups-{dim}", title=f"Accuracy per {dim.replace('_', ' ')}",
                                       x_label="accuracy")
                   + table([dim, "accuracy", "macro precision", "macro recall"],
                           [[escape(name), interval(m["accuracy"]), fmt(m.get("macro_precision"), 3),
                             fmt(m.get("macro_recall"), 3)] for name, m in groups.items()], cls="group-row")
                   + f"</div><p>Gap best-worst accuracy: <b>{fmt(gap.get('gap'), 3)}</b> "
                   f"({escape(str(gap.get('best')))} vs {escape(str(gap.get('worst')))}).</p>")
    return "".join(out)
