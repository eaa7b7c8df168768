"""The run report's label-issue list (train/report_insight.py): what it shows of each split, and which file each is."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from sluice.lake import Lake
from train.report_insight import _files, _issue_rows


def _issues(lake: Lake, splits: list[str]) -> None:
    n = len(splits)
    lake.append("label_issues", pa.table({
        "image_id": [f"img{k:04d}" for k in range(n)], "dataset_hash": ["h"] * n, "given_label": ["cat"] * n,
        "suggested_label": ["dog"] * n, "self_confidence": [0.1] * n, "margin": [0.1] * n, "score": [0.1] * n,
        "rank": pa.array(range(1, n + 1), pa.int32()), "evidence": ["{}"] * n, "run_id": ["r"] * n, "split": splits}))


def test_the_test_split_keeps_a_quarter_of_the_list(tmp_path):
    """40 train issues and 5 test ones under a limit of 40: the 5 test issues are shown (none were: the train and
    val ones filled the list); with few train issues the test ones fill the rest."""
    lake = Lake(str(tmp_path / "lake"))
    _issues(lake, ["train"] * 40 + ["test"] * 5)
    rows = _issue_rows(lake, "h", 40)
    assert [r["split"] for r in rows] == ["train"] * 35 + ["test"] * 5
    assert [r["split"] for r in _issue_rows(lake, "h", 8)] == ["train"] * 6 + ["test"] * 2


def test_each_issue_names_its_file(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lake.append("raw_images", pa.table({
        "image_id": ["a" * 64, "a" * 64, "b" * 64], "content": [b"x", b"x", b"y"], "source": ["s", "s", "s"],
        "source_uri": ["/d/z/copy.jpg", "/d/cat/1.jpg", "/d/dog/2.jpg"], "item_id": [None, "cat/1.jpg", None],
        "fetched_at": [now] * 3, "run_id": ["r"] * 3}))
    assert _files(lake, ["a" * 64, "b" * 64]) == {"a" * 64: ("cat/1.jpg", "/d/cat/1.jpg"),
                                                 "b" * 64: ("2.jpg", "/d/dog/2.jpg")}
