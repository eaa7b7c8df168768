"""Inline SVG charts carry the numbers they draw (data-* attributes) and parse as XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from sluice import svg


def _parse(chart: str) -> ET.Element:
    return ET.fromstring(chart)  # well-formed: a browser renders it inline


def test_line_chart_points_carry_series_x_and_y():
    chart = svg.line_chart({"loss": [(1, 2.5), (2, 1.25), (3, None)], "val <loss>": [(1, 3.0), (2, 0.5)]},
                           chart_id="c", title="Loss & co", x_label="epoch", y_label="loss")
    root = _parse(chart)
    pts = [(c.get("data-series"), c.get("data-x"), c.get("data-y")) for c in root.iter("{http://www.w3.org/2000/svg}circle")]
    assert pts == [("loss", "1", "2.5"), ("loss", "2", "1.25"), ("val <loss>", "1", "3"), ("val <loss>", "2", "0.5")]
    assert root.get("id") == "c" and "Loss &amp; co" in chart


def test_line_chart_without_values_says_so():
    assert "no values" in svg.line_chart({"a": [(1, None)]}, chart_id="c", title="t", x_label="x", y_label="y")


def test_interval_bars_carry_value_and_interval():
    chart = svg.interval_bars([{"label": "cat", "value": 0.9, "low": 0.8, "high": 0.95, "n": 40},
                               {"label": "dog", "value": None}], chart_id="b", title="t", x_label="recall")
    bars = re.findall(r'data-label="(\w+)" data-value="([\d.]+)" data-low="([\d.]+)" data-high="([\d.]+)" data-n="(\d+)"',
                      chart)
    assert bars == [("cat", "0.9", "0.8", "0.95", "40")]
    assert "no examples" in chart and 'class="whisker"' in chart and ">0.900</text>" in chart
    _parse(chart)
    sizes = svg.interval_bars([{"label": "fp32", "value": 651323}], chart_id="s", title="t", x_label="bytes",
                              x_max=651323.0)
    assert 'data-value="651323"' in sizes and ">651,323</text>" in sizes


def test_heatmap_cells_carry_counts():
    chart = svg.heatmap([[5, 1], [0, 7]], ["a", "b"], ["a", "b"], chart_id="h", title="t", row_title="actual",
                        col_title="predicted")
    cells = re.findall(r'data-row="(\w)" data-col="(\w)" data-count="(\d+)"', chart)
    assert cells == [("a", "a", "5"), ("a", "b", "1"), ("b", "a", "0"), ("b", "b", "7")]
    _parse(chart)


def test_scatter_points_carry_labels():
    chart = svg.scatter([("fp32", 22.3, 0.98), ("int8", 13.4, 0.97)], chart_id="s", title="t", x_label="ms",
                        y_label="acc")
    assert re.findall(r'data-label="(\w+)" data-x="([\d.]+)" data-y="([\d.]+)"', chart) == [
        ("fp32", "22.3", "0.98"), ("int8", "13.4", "0.97")]
    _parse(chart)
