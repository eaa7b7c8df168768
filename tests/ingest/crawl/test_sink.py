"""The crawl's lake sink: a batch ends at batch_rows images or once its images hold batch_bytes."""

from __future__ import annotations

import datetime as dt

from ingest.crawl.items import Fetch
from ingest.crawl.sink import LakeSink
from sluice.lake import Lake


def test_large_images_cut_a_batch_before_its_row_count(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    sink = LakeSink(lake, "shop", "run-1", batch_rows=500, batch_bytes=1000)
    now = dt.datetime.now(dt.timezone.utc)
    for k in range(10):  # 300 bytes each: batches of 4, 4 and 2
        sink.add(Fetch(f"http://shop.invalid/{k}.png", "image", "image", now, status=200, bytes=300,
                       body=bytes([k]) * 300))
    counters = sink.close()
    assert counters["commits"] == 3 and lake.count("raw_images") == 10
