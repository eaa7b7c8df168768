"""Sections of the run report about model insight: label issues with thumbnails and suggested
labels, saliency overlays, robustness curves and the compression trade-off (with robustness columns
when the insight stage measured them).

Inputs: ``reports/metrics/label_issues.json`` and the gold ``label_issues`` table (oof stage), the
snapshot's pixels for thumbnails, ``<report.insight_dir>/saliency.json`` with its PNGs and
``<report.insight_dir>/robustness.json`` (insight stage), ``reports/metrics/compress.json``.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from sluice import svg
from train.report_sections import Inputs, file_uri, fmt, not_run, png_uri, read_json, table


def _issue_rows(lake, dataset_hash: str | None, limit: int) -> list[dict] | None:
    """The ranked label issues of this snapshot from the lake, or None without a table."""
    import pyarrow.compute as pc

    if lake is None or not lake.exists("label_issues"):
        return None
    flt = pc.field("dataset_hash") == dataset_hash if dataset_hash else None
    rows = sorted(lake.read("label_issues", filter=flt).to_pylist(), key=lambda r: r["rank"])
    test = [r for r in rows if r.get("split") == "test"]
    kept = [r for r in rows if r.get("split") != "test"]
    # train+val first, but the test split keeps a quarter of the rows at least: its list is the one to review by hand
    shown_test = min(len(test), max(limit // 4, limit - len(kept)))
    return kept[:limit - shown_test] + test[:shown_test]


def _files(lake, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each image's name as the user's data gives it (``item_id``, else its URI) and its URI: what to open and fix."""
    import pyarrow.compute as pc

    if not ids or not lake.exists("raw_images"):
        return {}
    rows = lake.read("raw_images", ["image_id", "item_id", "source_uri"], filter=pc.field("image_id").isin(ids))
    out: dict[str, tuple[str, str]] = {}
    for r in sorted(rows.to_pylist(), key=lambda r: r["source_uri"]):
        out.setdefault(r["image_id"], (r["item_id"] or r["source_uri"].rsplit("/", 1)[-1], r["source_uri"]))
    return out


def _thumbnails(snapshot_dir: Path, ids: list[str]) -> dict[str, str]:
    """PNG data URIs of the snapshot's pixels for ``ids`` (train and val splits, where present)."""
    from sluice import snapshot_store

    wanted, out = set(ids), {}
    if not wanted or not (snapshot_dir / "manifest.json").is_file():
        return out
    manifest = snapshot_store.read_manifest(snapshot_dir)
    for split in ("train", "val", "test"):
        if split not in manifest.get("splits", {}) or len(out) == len(wanted):
            continue
        part = snapshot_store.load_split(snapshot_dir, split)
        for i, image_id in enumerate(part.ids):
            if image_id in wanted and image_id not in out:
                out[image_id] = png_uri(np.asarray(part.images[i]))
    return out


def label_issues_section(inp: Inputs, lake, limit: int) -> str:
    s = read_json(inp.label_issues)
    if s is None:
        return not_run("label issues", inp.label_issues, "oof")
    pairs = ", ".join(f"{escape(k)}: {v}" for k, v in (s.get("issues_by_pair") or {}).items()) or "none"
    out = [f"<p>Confident learning (<code>{escape(str(s.get('method')))}</code>, ranked by "
           f"<code>{escape(str(s.get('rank_by')))}</code>) on out-of-fold predictions of {s.get('images')} images "
           f"({s.get('folds')} folds x {s.get('epochs')} epochs, out-of-fold accuracy {fmt(s.get('oof_accuracy'))}): "
           f"<b id='issue-count'>{s.get('issues')}</b> label issues, estimated noise rate "
           f"<b>{fmt(s.get('noise_rate_estimate'), 3)}</b>. Given -> suggested: {pairs}.</p>"]
    t = s.get("test")
    if t:
        out.append(f"<p>Test split ({t.get('images')} images, predicted by {escape(str(t.get('predicted_by')))}, accuracy "
                   f"{fmt(t.get('accuracy'))}; <code>{escape(str(t.get('method')))}</code>): "
                   f"<b id='test-issue-count'>{t.get('issues')}</b> label issues for a "
                   f"person to review (estimated noise rate {fmt(t.get('noise_rate_estimate'), 3)}); the dataset "
                   "stage never acts on them.</p>")
    for w in s.get("warnings", []):
        out.append(f'<p class="warn">quality warning: {escape(w)}</p>')
    rows = _issue_rows(lake, s.get("dataset_hash"), limit)
    if rows is None:
        out.append('<p class="not-run">Not run: the lake has no <code>label_issues</code> table (the oof stage '
                   "writes it), so no thumbnails.</p>")
        return "".join(out)
    if not rows:
        return "".join(out) + "<p>No label issues for this snapshot.</p>"
    thumbs = _thumbnails(inp.snapshot, [r["image_id"] for r in rows])
    files = _files(lake, [r["image_id"] for r in rows])
    body = []
    for r in rows:
        uri = thumbs.get(r["image_id"])
        img = (f'<img class="thumb" src="{uri}" alt="{escape(r["image_id"][:12])}" title="{escape(r["image_id"])}">'
               if uri else '<span class="muted">[not in the snapshot]</span>')
        ev = json.loads(r.get("evidence") or "{}")
        evidence = ", ".join(f"{k} {round(v, 3) if isinstance(v, float) else v}" for k, v in sorted(ev.items())) or "–"
        body.append([str(r["rank"]), escape(r.get("split") or ""), img, f"<b>{escape(r['given_label'])}</b>",
                     f"<b class=ok>{escape(r['suggested_label'])}</b>", fmt(r.get("self_confidence"), 3),
                     fmt(r.get("margin"), 3), escape(evidence), _file_cell(files.get(r["image_id"]), r["image_id"])])
    total = (s.get("issues") or 0) + ((t or {}).get("issues") or 0)
    shown = f"the first {len(rows)} of {total}" if len(rows) < total else "all"
    return "".join(out) + f"<p class=muted>Most doubtful first, train and val, then test ({shown}):</p>" + table(
        ["rank", "split", "image", "given", "suggested", "self-confidence", "margin", "evidence (labels table)",
         "file"], body, cls="issue", numeric={0, 5, 6})


def _file_cell(file: tuple[str, str] | None, image_id: str) -> str:
    if file is None:
        return f"<code>{escape(image_id[:12])}</code>"
    return f'<code title="{escape(file[1])}">{escape(file[0])}</code>'


def _resolve(insight_dir: Path, name: str) -> Path | None:
    for p in (insight_dir / name, insight_dir / "saliency" / name, Path(name)):
        if p.is_file():
            return p
    return None


def saliency_section(inp: Inputs, limit: int) -> str:
    path = inp.insight_dir / "saliency.json"
    entries = read_json(path)
    if entries is None:
        return not_run("saliency overlays", path, "insight")
    out = ["<p>Grad-CAM overlays: where the model looked for the class it predicted (warm = more).</p>"]
    kinds = {"class_sample": "A sample per class", "mistake": "Most confident mistakes"}
    for kind in [*kinds, *sorted({e.get("kind") for e in entries} - set(kinds) - {None})]:
        chosen = [e for e in entries if e.get("kind") == kind][:limit]
        if not chosen:
            continue
        figs = []
        for e in chosen:
            found = _resolve(inp.insight_dir, str(e.get("file", "")))
            cap = (f"label {escape(str(e.get('label')))}, predicted {escape(str(e.get('predicted')))} "
                   f"({fmt(e.get('confidence'), 2)})")
            img = (f'<img class="overlay" src="{file_uri(found)}" alt="{escape(str(e.get("file")))}">' if found
                   else f'<span class="muted">[missing {escape(str(e.get("file")))}]</span>')
            figs.append(f'<figure class="saliency" data-kind="{escape(kind)}" data-label="{escape(str(e.get("label")))}" '
                        f'data-predicted="{escape(str(e.get("predicted")))}">{img}<figcaption>{cap}</figcaption></figure>')
        out.append(f"<h3>{escape(kinds.get(kind, kind))} ({len(chosen)})</h3><div>{''.join(figs)}</div>")
    if len(out) == 1:
        out.append("<p>saliency.json lists no images.</p>")
    return "".join(out)


def _curve(points: dict) -> list[tuple[float, float]]:
    return sorted((float(k), float(v)) for k, v in points.items() if v is not None)


def robustness_section(inp: Inputs) -> str:
    path = inp.insight_dir / "robustness.json"
    doc = read_json(path)
    if doc is None:
        return not_run("robustness curves", path, "insight")
    adversarial = doc.get("adversarial") or {}
    variants = [v for v in doc if v != "adversarial"]
    corruptions = sorted({c for v in variants for c in doc[v]})
    charts = [svg.line_chart({v: _curve(doc[v].get(c, {})) for v in variants if c in doc[v]},
                             chart_id=f"robust-{c}", title=f"{c}", x_label="severity", y_label="accuracy",
                             y_min=0.0, y_max=1.0, width=400, height=240) for c in corruptions]
    attacks = sorted({a for v in adversarial.values() for a in v})
    charts += [svg.line_chart({v: _curve(adversarial[v][a]) for v in adversarial if a in adversarial[v]},
                              chart_id=f"attack-{a}", title=f"{a} (adversarial)", x_label="eps", y_label="accuracy",
                              y_min=0.0, y_max=1.0, width=400, height=240) for a in attacks]
    if not charts:
        return "<p>robustness.json holds no curves.</p>"
    return ("<p>Accuracy under common corruptions (severity 1-5) and adversarial attacks (by eps), one line per "
            "model variant.</p>" f'<div class="charts">{"".join(charts)}</div>')


def robustness_columns(doc: dict | None) -> dict[str, dict[str, float]]:
    """Per variant: mean accuracy over every corruption and severity, and each attack's accuracy at its
    largest eps."""
    if not doc:
        return {}
    cols: dict[str, dict[str, float]] = {}
    for v, by_corruption in doc.items():
        if v == "adversarial":
            continue
        accs = [float(a) for sev in by_corruption.values() for a in sev.values() if a is not None]
        if accs:
            cols.setdefault(v, {})["corruption mean"] = sum(accs) / len(accs)
    for v, by_attack in (doc.get("adversarial") or {}).items():
        for attack, curve in by_attack.items():
            pts = _curve(curve)
            if pts:
                cols.setdefault(v, {})[f"{attack} @ eps {pts[-1][0]:g}"] = pts[-1][1]
    return cols


def tradeoff_section(inp: Inputs) -> str:
    doc = read_json(inp.compress_metrics)
    if doc is None:
        return not_run("compression trade-off", inp.compress_metrics, "compress")
    variants = doc.get("variants") or {}
    robust = robustness_columns(read_json(inp.insight_dir / "robustness.json"))
    extra = sorted({k for cols in robust.values() for k in cols}, key=lambda k: (not k.startswith("corruption"), k))
    head = ["variant", "accuracy", "drop (points)", "agreement", "params", "MACs", "size (bytes)", "gzip (bytes)",
            "eager b64 (ms)", "compiled b64 (ms)", *extra]
    rows = []
    for name, m in variants.items():
        rows.append([f"<b>{escape(name)}</b>", fmt(m.get("accuracy")), fmt(m.get("accuracy_drop_points"), 2),
                     fmt(m.get("agreement_with_fp32")), m.get("params", "–"), m.get("macs", "–"),
                     m.get("size_bytes", "–"), m.get("size_gzip_bytes", "–"), fmt(m.get("eager_b64_ms"), 2),
                     fmt(m.get("compiled_b64_ms"), 2), *(fmt(robust.get(name, {}).get(k)) for k in extra)])
    latency = [(n, m["eager_b64_ms"], m["accuracy"]) for n, m in variants.items()
               if m.get("eager_b64_ms") is not None and m.get("accuracy") is not None]
    peak = max((m.get("size_bytes") or 0 for m in variants.values()), default=0) or 1
    sizes = [{"label": n, "value": m["size_bytes"], "colour": svg.PALETTE[i % len(svg.PALETTE)]}
             for i, (n, m) in enumerate(variants.items()) if m.get("size_bytes") is not None]
    targets = doc.get("targets_met") or {}
    met = ", ".join(f"<span class={'ok' if ok else 'bad'}>{escape(t)}</span>" for t, ok in targets.items())
    note = ("" if robust else '<p class="not-run part">Not run: no robustness columns (' + escape(
        str(inp.insight_dir / "robustness.json")) + " is missing; the <code>insight</code> stage writes it).</p>")
    return (table(head, rows, cls="variant", numeric=set(range(1, len(head))))
            + (f"<p>Targets: {met}</p>" if met else "") + note + '<div class="charts">'
            + svg.scatter(latency, chart_id="tradeoff-latency", title="Test accuracy vs eager CPU latency (batch 64)",
                          x_label="ms per batch of 64", y_label="accuracy")
            + svg.interval_bars(sizes, chart_id="tradeoff-size", title="Model size on disk", x_label="bytes",
                                x_max=float(peak))
            + "</div>")
