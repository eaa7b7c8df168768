"""Small charts as inline SVG strings: line charts, horizontal bars with intervals, heatmaps, scatter.

For HTML reports that must work offline (no script, no network): each chart is one ``<svg>`` element
to paste into a page. Every drawn value also sits in ``data-*`` attributes (``data-series``,
``data-x``, ``data-y``, ``data-value``, ``data-count``...), so a test reading the rendered DOM can
check that a chart carries the numbers it was given, not only that it exists.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#3b6ea5", "#e0a030", "#c0504d", "#2a7a2a", "#7b5aa6", "#3aa0a0", "#a0522d", "#777777")
FONT = 'font-family="system-ui,sans-serif"'


def num(v: float | int | None) -> str:
    """A number as a data attribute carries it: 6 significant digits, '' for none."""
    return "" if v is None else f"{float(v):.6g}"


def _attr(s) -> str:
    return escape(str(s), quote=True)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _open(chart_id: str, width: int, height: int, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="{_attr(chart_id)}" class="chart" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(label)}" {FONT}>')


def _legend(names: list[str], x: float, y: float) -> str:
    out = []
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{y + i * 15 - 8}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="{y + i * 15 + 1}" font-size="11">{escape(name)}</text>')
    return "".join(out)


def line_chart(series: dict[str, list[tuple[float, float | None]]], *, chart_id: str, title: str, x_label: str,
               y_label: str, y_min: float | None = None, y_max: float | None = None, width: int = 520,
               height: int = 280) -> str:
    """One polyline per series (points with a None y are skipped), dots carrying their values."""
    points = [(x, y) for pts in series.values() for x, y in pts if y is not None]
    if not points:
        return f'<p class="muted" id="{_attr(chart_id)}">{escape(title)}: no values.</p>'
    left, right, top, bottom = 56, 130, 26, 42
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else y_min
    y1 = max(ys) if y_max is None else y_max
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return left + pw * (x - x0) / (x1 - x0)

    def py(y):
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out = [_open(chart_id, width, height, title),
           f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 5}" y="{py(t) + 4:.1f}" font-size="10" text-anchor="end">{t:g}</text>')
    distinct = sorted(set(xs))
    for t in (distinct if len(distinct) <= 12 else _ticks(x0, x1, 7)):
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>'
               f'<text x="12" y="{top + ph / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2})">{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        drawn = [(x, y) for x, y in pts if y is not None]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in drawn)
        out.append(f'<polyline class="line" data-series="{_attr(name)}" points="{path}" fill="none" '
                   f'stroke="{colour}" stroke-width="2"/>')
        for x, y in drawn:
            out.append(f'<circle class="pt" data-series="{_attr(name)}" data-x="{num(x)}" data-y="{num(y)}" '
                       f'cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"><title>{escape(name)} '
                       f'at {x:g}: {y:.4g}</title></circle>')
    out.append(_legend(list(series), left + pw + 12, top + 8))
    out.append("</svg>")
    return "".join(out)


def interval_bars(bars: list[dict], *, chart_id: str, title: str, x_label: str, x_max: float = 1.0,
                  width: int = 560) -> str:
    """Horizontal bars ``{label, value, low?, high?, n?}`` from 0 to ``x_max``, with interval whiskers."""
    row, top = 20, 26
    left = int(min(280, max(60, 14 + 6.2 * max((len(str(b["label"])) for b in bars), default=0))))
    height = top + row * len(bars) + 36
    pw = width - left - 70

    def px(v):
        return left + pw * max(0.0, min(v, x_max)) / x_max

    out = [_open(chart_id, width, height, title),
           f'<text x="4" y="16" font-size="13" font-weight="600">{escape(title)}</text>']
    for t in _ticks(0, x_max):
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + row * len(bars)}" stroke="#eee"/>'
                   f'<text x="{px(t):.1f}" y="{top + row * len(bars) + 13}" font-size="10" '
                   f'text-anchor="middle">{t:g}</text>')
    for i, b in enumerate(bars):
        y, value = top + i * row, b.get("value")
        low, high = b.get("low"), b.get("high")
        out.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">{escape(str(b["label"])[:42])}'
                   "</text>")
        if value is None:
            out.append(f'<text x="{left + 4}" y="{y + 14}" font-size="11" fill="#777">no examples</text>')
            continue
        out.append(f'<rect class="bar" data-label="{_attr(b["label"])}" data-value="{num(value)}" '
                   f'data-low="{num(low)}" data-high="{num(high)}" data-n="{b.get("n", "")}" x="{left}" y="{y + 4}" '
                   f'width="{px(value) - left:.1f}" height="{row - 8}" fill="{b.get("colour", PALETTE[0])}">'
                   f'<title>{escape(str(b["label"]))}: {value:.4g}'
                   + (f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else "")
                   + (f", n={b['n']}" if b.get("n") is not None else "") + "</title></rect>")
        if low is not None and high is not None:
            mid = y + row / 2
            out.append(f'<path class="whisker" d="M{px(low):.1f},{mid:.1f}H{px(high):.1f}M{px(low):.1f},{mid - 4:.1f}'
                       f'V{mid + 4:.1f}M{px(high):.1f},{mid - 4:.1f}V{mid + 4:.1f}" stroke="#222" fill="none"/>')
        shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
        out.append(f'<text x="{px(high if high is not None else value) + 5:.1f}" y="{y + 14}" font-size="10">'
                   f"{shown}</text>")
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" font-size="11" text-anchor="middle">{escape(x_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(matrix: list[list[int]], rows: list[str], cols: list[str], *, chart_id: str, title: str,
            row_title: str, col_title: str) -> str:
    """A count matrix as coloured cells (shade: share of the row; diagonal blue, off-diagonal red)."""
    cell, left, top = 34, 70, 44
    width, height = left + cell * len(cols) + 20, top + cell * len(rows) + 30
    out = [_open(chart_id, width, height, title),
           f'<text x="4" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
           f'<text x="{left + cell * len(cols) / 2}" y="32" font-size="11" text-anchor="middle">{escape(col_title)}</text>',
           f'<text x="12" y="{top + cell * len(rows) / 2}" font-size="11" text-anchor="middle" '
           f'transform="rotate(-90 12 {top + cell * len(rows) / 2})">{escape(row_title)}</text>']
    for j, c in enumerate(cols):
        out.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 3}" font-size="10" '
                   f'text-anchor="middle">{escape(str(c))[:5]}</text>')
    for i, r in enumerate(rows):
        total = sum(matrix[i]) or 1
        out.append(f'<text x="{left - 4}" y="{top + i * cell + cell / 2 + 4}" font-size="10" '
                   f'text-anchor="end">{escape(str(r))[:8]}</text>')
        for j, c in enumerate(cols):
            n = int(matrix[i][j])
            share = n / total
            rgb = (59, 110, 165) if i == j else (192, 80, 77)
            fill = "#fff" if n == 0 else "#%02x%02x%02x" % tuple(int(255 - (255 - v) * (0.15 + 0.85 * share)) for v in rgb)
            ink = "#fff" if share > 0.55 else "#222"
            out.append(f'<rect class="cell" data-row="{_attr(r)}" data-col="{_attr(c)}" data-count="{n}" '
                       f'x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                       f'fill="{fill}" stroke="#ddd"><title>{escape(str(r))} -> {escape(str(c))}: {n}</title></rect>')
            if n:
                out.append(f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" font-size="10" '
                           f'text-anchor="middle" fill="{ink}">{n}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter(points: list[tuple[str, float, float]], *, chart_id: str, title: str, x_label: str, y_label: str,
            width: int = 520, height: int = 280) -> str:
    """Labelled points ``(label, x, y)``."""
    if not points:
        return f'<p class="muted" id="{_attr(chart_id)}">{escape(title)}: no values.</p>'
    left, right, top, bottom = 60, 110, 26, 42
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    pad_x, pad_y = (max(xs) - min(xs)) * 0.08 or 1.0, (max(ys) - min(ys)) * 0.15 or 0.01
    x0, x1, y0, y1 = min(xs) - pad_x, max(xs) + pad_x, min(ys) - pad_y, max(ys) + pad_y
    x0 = max(x0, 0.0) if min(xs) >= 0 else x0
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return left + pw * (x - x0) / (x1 - x0)

    def py(y):
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out = [_open(chart_id, width, height, title),
           f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>']
    for t in _ticks(y0, y1):
        out.append(f'<text x="{left - 5}" y="{py(t) + 4:.1f}" font-size="10" text-anchor="end">{t:g}</text>')
    for t in _ticks(x0, x1, 6):
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>'
               f'<text x="12" y="{top + ph / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2})">{escape(y_label)}</text>')
    for i, (label, x, y) in enumerate(points):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<circle class="pt" data-label="{_attr(label)}" data-x="{num(x)}" data-y="{num(y)}" '
                   f'cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{colour}"><title>{escape(label)}: {x:g}, '
                   f'{y:.4g}</title></circle><text x="{px(x) + 8:.1f}" y="{py(y) + 4:.1f}" font-size="11">'
                   f"{escape(label)}</text>")
    out.append("</svg>")
    return "".join(out)
