"""The dataset page: look at the data instead of reading about it.

One self-contained HTML file (inline SVG charts, images as PNG data URIs, no script or style from the
network) beside the Data Docs: class distribution per split, a sample grid per class, near-duplicate
groups side by side, quarantined images with their reasons, annotator accuracies and the gates'
status. Pixels come only from the silver ``images`` table (already decoded and verified), never from
raw bytes, so a quarantined decompression bomb is listed, not opened. Every query is bounded.
"""

from __future__ import annotations

import base64
import io
import json
import math
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from sluice.held_out import SIDES_SQL

SPLIT_COLOURS = {"train": "#3b6ea5", "val": "#e0a030", "test": "#c0504d"}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top;max-width:460px;overflow-wrap:anywhere}
.grid{display:flex;flex-wrap:wrap;gap:4px;align-items:center}.row{margin:6px 0}
.row b{display:inline-block;width:70px}
img.px{width:48px;height:48px;image-rendering:pixelated;border:1px solid #ccc}
.group{display:inline-flex;gap:4px;padding:4px;margin:4px;border:1px solid #ddd;border-radius:4px}
.canon{outline:3px solid #3b6ea5}.ok{color:#2a7a2a}.bad{color:#b22}.muted{color:#777;font-size:12px}
"""


def png_data_uri(pixels: bytes) -> str | None:
    """A PNG data URI for a normalized HxWx3 uint8 buffer (square), or None if it is not one."""
    side = math.isqrt(len(pixels) // 3) if pixels else 0
    if side == 0 or side * side * 3 != len(pixels):
        return None
    buf = io.BytesIO()
    Image.fromarray(np.frombuffer(pixels, np.uint8).reshape(side, side, 3)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(pixels, title: str, cls: str = "px") -> str:
    uri = png_data_uri(pixels) if pixels else None
    if uri is None:
        return f'<span class="muted" title="{escape(title)}">[no pixels]</span>'
    return f'<img class="{cls}" src="{uri}" title="{escape(title)}" alt="{escape(title)}">'


def bar_chart(classes: list[str], counts: dict[tuple[str, str], int], splits: list[str]) -> str:
    """Grouped bars: one group per class, one bar per split, with axis labels and a legend."""
    width, height, left, bottom, top = max(420, 60 * len(classes) + 80), 260, 50, 40, 20
    peak = max(counts.values(), default=0) or 1
    group = (width - left - 10) / max(len(classes), 1)
    bar = group * 0.8 / max(len(splits), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="class-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="class distribution per split">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#888"/>']
    for t in range(5):
        v = peak * t / 4
        y = height - bottom - (height - bottom - top) * t / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{v:.0f}</text>')
    for i, cls in enumerate(classes):
        x0 = left + i * group + group * 0.1
        for j, split in enumerate(splits):
            n = counts.get((cls, split), 0)
            h = (height - bottom - top) * n / peak
            parts.append(f'<rect class="bar" data-class="{escape(cls)}" data-split="{split}" data-count="{n}" '
                         f'x="{x0 + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar * 0.95:.1f}" '
                         f'height="{h:.1f}" fill="{SPLIT_COLOURS.get(split, "#888")}"><title>{escape(cls)} / {split}: {n}'
                         f'</title></rect>')
        parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{height - bottom + 14}" font-size="11" '
                     f'text-anchor="middle">{escape(cls)}</text>')
    for j, split in enumerate(splits):
        parts.append(f'<rect x="{left + 10 + j * 80}" y="{height - 14}" width="10" height="10" '
                     f'fill="{SPLIT_COLOURS.get(split, "#888")}"/><text x="{left + 24 + j * 80}" y="{height - 5}" '
                     f'font-size="11">{split}</text>')
    parts.append("</svg>")
    return "".join(parts)


def accuracy_chart(workers: list[tuple]) -> str:
    row, width = 18, 520
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="annotator-chart" width="{width}" '
             f'height="{row * len(workers) + 10}" role="img" aria-label="annotator accuracy">']
    for i, (worker, votes, acc, spam, adv) in enumerate(workers):
        w = 300 * (acc or 0)
        colour = "#b22" if spam or adv else "#3b6ea5"
        parts.append(f'<text x="0" y="{i * row + 13}" font-size="11">{escape(str(worker))[:22]}</text>'
                     f'<rect x="150" y="{i * row + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{156 + w:.1f}" y="{i * row + 13}" font-size="11">'
                     f'{"n/a" if acc is None else f"{acc:.2f}"}</text>')
    parts.append("</svg>")
    return "".join(parts)


class _Data:
    """Bounded reads for the page through DuckDB views over the lake."""

    def __init__(self, con, tables: set[str]):
        self.con, self.tables = con, tables

    def has(self, *tables: str) -> bool:
        return all(t in self.tables for t in tables)

    def rows(self, sql: str, *args) -> list[tuple]:
        return self.con.execute(sql, list(args)).fetchall()


def _distribution(d: _Data, classes: list[str] | None):
    if d.has("dataset"):
        rows = d.rows("SELECT label, split, count(*) FROM dataset GROUP BY ALL")
        source = "gold dataset table"
    elif d.has("labels"):
        rows = d.rows("SELECT label, 'train', count(*) FROM labels WHERE status = 'resolved' GROUP BY ALL")
        source = "resolved labels (no dataset table yet)"
    else:
        return "<p class='muted'>No dataset or labels table yet.</p>"
    counts = {(str(lab), split): n for lab, split, n in rows}
    present = sorted({c for c, _ in counts})
    classes = list(classes or []) + [c for c in present if c not in (classes or [])]
    splits = [s for s in ("train", "val", "test") if any(k[1] == s for k in counts)] or ["train"]
    table = "<table><tr><th>class</th>" + "".join(f"<th>{s}</th>" for s in splits) + "</tr>" + "".join(
        f"<tr><td>{escape(c)}</td>" + "".join(f"<td>{counts.get((c, s), 0)}</td>" for s in splits) + "</tr>"
        for c in classes) + "</table>"
    return f"<p class='muted'>From the {source}.</p>{bar_chart(classes, counts, splits)}{table}"


SAMPLE_BUDGET = 400  # images the samples section embeds at most: 8 a class for 50 classes, 1 for 400 of ImageNet's 1,000


def _samples(d: _Data, per_class: int) -> str:
    if per_class == 0 or not d.has("images") or not (d.has("dataset") or d.has("labels")):
        return "<p class='muted'>No labelled images yet.</p>"
    source = ("SELECT image_id, label FROM dataset" if d.has("dataset")
              else "SELECT image_id, label FROM labels WHERE status = 'resolved'")
    classes = d.rows(f"SELECT count(DISTINCT label) FROM ({source})")[0][0]
    per = max(1, min(per_class, SAMPLE_BUDGET // max(classes, 1)))  # a page of many classes stays a page
    shown = SAMPLE_BUDGET // per
    rows = d.rows(f"SELECT label, image_id, pixels FROM (SELECT s.label, s.image_id, i.pixels, row_number() OVER "
                  f"(PARTITION BY s.label ORDER BY s.image_id) AS rn, dense_rank() OVER (ORDER BY s.label) AS k "
                  f"FROM ({source}) s JOIN images i USING (image_id)) WHERE rn <= ? AND k <= ? ORDER BY label, image_id",
                  per, shown)
    note = (f"<p class='muted'>{per} image{'s' if per > 1 else ''} a class"
            + (f", the first {shown} of {classes} classes" if classes > shown else "")
            + f" (at most {SAMPLE_BUDGET} images on this page; <code>sluice sql \"select * from dataset where label = "
            "'...'\"</code> for the rest)</p>") if per < per_class or classes > shown else ""
    out, current = [note], None
    for label, image_id, pixels in rows:
        if label != current:
            out.append(("</div>" if current is not None else "") + f'<div class="row grid" data-class="{escape(str(label))}">'
                       f"<b>{escape(str(label))}</b>")
            current = label
        out.append(_img(pixels, f"{label} {image_id[:12]}"))
    return "".join(out) + ("</div>" if current is not None else "")


def _dup_groups(d: _Data, limit: int) -> str:
    if limit == 0 or not d.has("images", "image_groups"):
        return "<p class='muted'>No duplicate groups yet (run the dedup stage).</p>"
    groups = d.rows("SELECT dup_group, count(*) AS n FROM image_groups GROUP BY 1 HAVING n > 1 "
                    "ORDER BY n DESC, dup_group LIMIT ?", limit)
    total = d.rows("SELECT count(*) FROM (SELECT dup_group FROM image_groups GROUP BY 1 HAVING count(*) > 1)")[0][0]
    if not groups:
        return "<p>No duplicate groups.</p>"
    members = d.rows("SELECT g.dup_group, g.image_id, i.pixels, g.is_canonical, g.match_kind FROM image_groups g "
                     "JOIN images i USING (image_id) WHERE g.dup_group IN "
                     f"({', '.join('?' for _ in groups)}) ORDER BY g.dup_group, NOT g.is_canonical, g.image_id",
                     *[g for g, _ in groups])
    by_group: dict[str, list] = {}
    for group, image_id, pixels, canonical, kind in members:
        title = f"{image_id[:12]}{' (canonical)' if canonical else f' ({kind})' if kind else ''}"
        by_group.setdefault(group, []).append(_img(pixels, title, "px canon" if canonical else "px"))
    html = "".join(f'<span class="group" data-group="{escape(g)}">{"".join(by_group.get(g, []))}</span>' for g, _ in groups)
    return f"<p>{total} groups with more than one member; the largest {len(groups)} (canonical outlined):</p>{html}"


_HINTS = (f"SELECT image_id, bool_or(side = 'test') AS t, bool_or(side = 'train') AS tr FROM ({SIDES_SQL}) "
          "GROUP BY 1")  # the side of its source's split each image is on (sluice/held_out.py)


def _leakage(d: _Data, limit: int) -> str:
    """Groups whose members came from the source's test and train splits, side by side, with the
    match kind of each copy and where the dataset stage put it (moved to train, dropped, kept)."""
    if limit == 0 or not d.has("images", "image_groups", "raw_images"):
        return "<p class='muted'>No duplicate groups yet (run the dedup stage).</p>"
    cross = (f"SELECT g.dup_group FROM image_groups g JOIN ({_HINTS}) h USING (image_id) GROUP BY 1 "
             "HAVING bool_or(h.t) AND bool_or(h.tr)")
    total = d.rows(f"SELECT count(*) FROM ({cross})")[0][0]
    if not total:
        return "<p>No near-duplicate group spans the source's test and train splits.</p>"
    shown = [g for (g,) in d.rows(f"{cross} ORDER BY 1 LIMIT ?", limit)]
    split = "d.split" if d.has("dataset") else "NULL"
    joined = "LEFT JOIN dataset d USING (image_id)" if d.has("dataset") else ""
    members = d.rows(f"SELECT g.dup_group, g.image_id, i.pixels, h.t, g.match_kind, g.match_score, {split} "
                     f"FROM image_groups g JOIN images i USING (image_id) LEFT JOIN ({_HINTS}) h USING (image_id) "
                     f"{joined} WHERE g.dup_group IN ({', '.join('?' for _ in shown)}) "
                     "ORDER BY g.dup_group, NOT coalesce(h.t, false), g.image_id", *shown)
    rows: dict[str, list] = {}
    for group, image_id, pixels, is_test, kind, score, now in members:
        where = "source test" if is_test else "source train"
        fate = f"dataset: {now}" if now else "not in dataset"
        how = f"{kind} {score:.3f}" if kind and score is not None else (kind or "")
        rows.setdefault(group, []).append(f"<td>{_img(pixels, f'{image_id[:12]} {where}')}<br>"
                                          f"<span class='muted'>{where}; {escape(how)}; {fate}</span></td>")
    body = "".join(f'<tr class="leak" data-leak="{escape(g)}">{"".join(rows.get(g, []))}</tr>' for g in shown)
    return (f"<p>{total} near-duplicate groups span the source's test and train splits "
            f"(showing {len(shown)}): a test image with a copy in train inflates test accuracy.</p>"
            f"<table>{body}</table>")


def _subjects(d: _Data) -> str:
    """How many subjects its sources name (a patient, a lesion: raw_images.subject) have several dataset rows, and
    in how many splits they are (one each, the dataset stage's promise; the gold gate checks it)."""
    import duckdb

    if not d.has("dataset", "image_groups", "raw_images"):
        return ""
    try:
        (subjects, rows, split_apart), = d.rows(
            "SELECT count(*), coalesce(sum(n), 0), count(*) FILTER (WHERE splits > 1) FROM (SELECT r.source, r.subject, "
            "count(DISTINCT d.image_id) n, count(DISTINCT d.split) splits FROM dataset d JOIN image_groups g "
            "USING (image_id) JOIN image_groups m ON m.dup_group = g.dup_group JOIN raw_images r ON r.image_id = "
            "m.image_id WHERE r.subject IS NOT NULL GROUP BY 1, 2 HAVING count(DISTINCT d.image_id) > 1)")
    except duckdb.Error:  # a lake from before raw_images.subject
        return ""
    if not subjects:
        return ""
    return (f"<p>{subjects} subjects its sources name (a patient, a lesion) have several rows in the dataset "
            f"({rows} rows); {split_apart} of them are in more than one split.</p>")


def _quarantined(d: _Data, limit: int) -> str:
    if limit == 0 or not d.has("quarantine"):
        return "<p>Nothing quarantined.</p>"
    summary = d.rows('SELECT stage, "check", count(*) FROM quarantine GROUP BY ALL ORDER BY 3 DESC, 1, 2')
    pixels_of = ("LEFT JOIN images i ON i.image_id = q.row_key" if d.has("images") else "")
    via_raw = ("LEFT JOIN (SELECT DISTINCT source_uri, image_id FROM raw_images) r ON r.source_uri = q.row_key "
               "LEFT JOIN images i2 ON i2.image_id = r.image_id" if d.has("images", "raw_images") else "")
    pix = ("coalesce(i.pixels, i2.pixels)" if via_raw else "i.pixels") if pixels_of else "NULL"
    rows = d.rows(f'SELECT q.stage, q."check", q.reason, q.row_key, q.details, {pix} FROM quarantine q {pixels_of} '
                  f'{via_raw} ORDER BY q.stage, q."check", q.row_key LIMIT ?', limit)
    head = "<table><tr><th>stage</th><th>check</th><th>rows</th></tr>" + "".join(
        f"<tr><td>{escape(s)}</td><td>{escape(c)}</td><td>{n}</td></tr>" for s, c, n in summary) + "</table>"
    body = "<table><tr><th></th><th>stage / check</th><th>row</th><th>reason</th></tr>" + "".join(
        f'<tr class="quarantined"><td>{_img(p, k) if p else "<span class=muted>[not decoded]</span>"}</td>'
        f"<td>{escape(s)}<br><span class=muted>{escape(c)}</span></td><td>{escape(k)}</td>"
        f"<td>{escape(r)}<br><span class=muted>{escape((det or '')[:160])}</span></td></tr>"
        for s, c, r, k, det, p in rows) + "</table>"
    return head + f"<p class='muted'>First {len(rows)} rows (images shown when their pixels reached silver):</p>" + body


def _annotators(d: _Data) -> str:
    if not d.has("annotators"):
        return "<p class='muted'>No annotators table (no crowd votes yet).</p>"
    workers = d.rows("SELECT worker_id, votes, accuracy, is_spammer, is_adversarial FROM annotators "
                     "ORDER BY accuracy DESC NULLS LAST, worker_id LIMIT 200")
    table = "<table><tr><th>worker</th><th>votes</th><th>accuracy</th><th>flags</th></tr>" + "".join(
        f"<tr class='annotator'><td>{escape(str(w))}</td><td>{v}</td><td>{'n/a' if a is None else f'{a:.3f}'}</td>"
        f"<td>{' '.join(f for f, on in (('spammer', s), ('adversarial', adv)) if on)}</td></tr>"
        for w, v, a, s, adv in workers) + "</table>"
    return accuracy_chart(workers) + table


def _gates(reports_dir: Path) -> str:
    rows = []
    for layer in ("bronze", "silver", "gold", "snapshot"):
        path = reports_dir / f"{layer}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        status = "<span class='ok'>passed</span>" if r["success"] else "<span class='bad'>FAILED</span>"
        failing = ", ".join(r["critical_failures"] + r["warnings"]) or "-"
        rows.append(f"<tr><td>{layer}</td><td>{status}</td><td>{r['counts']['passed']}/{r['counts']['checks']}</td>"
                    f"<td>{escape(failing)}</td></tr>")
    if not rows:
        return "<p class='muted'>No gate has run yet.</p>"
    return ("<table><tr><th>layer</th><th>gate</th><th>passed</th><th>failed checks</th></tr>" + "".join(rows)
            + "</table><p><a href='docs/index.html'>Great Expectations Data Docs</a></p>")


def _privacy(rows: list[dict] | None) -> str:
    """The compliance report (sluice/privacy_report.py, `sluice privacy report`) as a table."""
    if not rows:
        return "<p class='muted'>No privacy report.</p>"

    def cells(r: dict) -> str:
        count = "" if r["count"] is None else str(r["count"])
        share = "" if r["share"] is None else f"{100 * r['share']:.1f}%"
        values = (r["section"], str(r["item"]), count, share, r["detail"])
        return "<tr class='privacy'>" + "".join(f"<td>{escape(v)}</td>" for v in values) + "</tr>"

    return ("<table><tr><th>section</th><th>item</th><th>count</th><th>share</th><th>detail</th></tr>"
            + "".join(cells(r) for r in rows)
            + "</table><p class='muted'>See docs/privacy.md; `sluice privacy report` prints the same.</p>")


def render_page(con, tables: set[str], classes: list[str] | None, params, reports_dir: Path,
                privacy: list[dict] | None = None) -> str:
    q = params.quality
    d = _Data(con, tables)
    sections = [
        ("Quality gates", _gates(reports_dir)),
        ("Class distribution per split", _distribution(d, classes)),
        ("Samples per class", _samples(d, q.page_samples_per_class)),
        ("Near-duplicate groups", _dup_groups(d, q.page_max_dup_groups)),
        ("Test/train leakage", _leakage(d, q.page_max_dup_groups) + _subjects(d)),
        ("Quarantined rows", _quarantined(d, q.page_max_quarantined)),
        ("Annotator accuracy", _annotators(d)),
        ("Privacy", _privacy(privacy)),
    ]
    body = "".join(f'<section id="{escape(t.lower().replace(" ", "-"))}"><h2>{escape(t)}</h2>{html}</section>'
                   for t, html in sections)
    # reports in the DOM how many images the browser decoded (checked by the headless-browser test)
    script = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
              "document.body.dataset.imagesDecoded=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
              "document.body.dataset.imagesTotal=i.length;});</script>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sluice dataset</title>"
            f"<style>{CSS}</style></head><body><h1>Sluice dataset</h1>{body}{script}</body></html>")


def write_page(params, lake, classes: list[str] | None) -> Path:
    from sluice.sql import connect

    reports = Path(params.quality.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    con = connect(lake)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    path = reports / "dataset.html"
    from sluice.privacy_report import report

    path.write_text(render_page(con, tables, classes, params, reports, report(lake, params)))
    return path
