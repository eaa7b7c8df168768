"""Landing records: every batch is one commit whose cost (not the reading of the files) is recorded, so
that whether a commit grows with the table can be read from the ingest manifest."""

from types import SimpleNamespace

from ingest.landing import commit_summary, land
from ingest.sources.base import Record


def test_every_batch_commit_is_timed_and_summarised(lake):
    source = SimpleNamespace(name="s", license=None)
    records = [Record(uri=f"f{k}", content=f"image {k}".encode()) for k in range(40)]
    records.insert(7, Record(uri="bad", reject="empty_file"))
    stats = land(lake, source, iter(records), run_id="r1", batch_rows=3)
    assert stats.inserted == 40 and stats.quarantined == 1
    commits = stats.as_dict()["commits"]
    assert commits["batches"] == len(stats.commit_s) == 14  # 41 records in batches of 3 (the rejection counts)
    assert all(s > 0 for s in stats.commit_s)
    again = land(lake, source, iter(records[:6]), run_id="r2", batch_rows=3)
    assert again.inserted == 0 and again.as_dict()["commits"] == {"batches": 2}  # too few to summarise


def test_commit_summary_compares_the_first_and_last_tenth():
    seconds = [1.0] * 10 + [5.0] * 80 + [3.0, 3.0, 3.0, 9.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert commit_summary(seconds) == {"batches": 100, "median_s_first_tenth": 1.0, "median_s_last_tenth": 3.0,
                                       "last_vs_first": 3.0}
    assert commit_summary([0.5] * 9) == {"batches": 9}


def test_large_images_cut_a_batch_before_its_row_count(lake):
    """Phone photos of 5-15 MB in batches of 2,000 rows would hold tens of GB: a batch also ends once its
    images reach batch_bytes (here 1,000 bytes: 4 images of 300 bytes, the fourth crossing the bound)."""
    source = SimpleNamespace(name="s", license=None)
    records = [Record(uri=f"f{k}", content=bytes([k]) * 300) for k in range(10)]
    stats = land(lake, source, iter(records), run_id="r1", batch_rows=2000, batch_bytes=1000)
    assert stats.inserted == 10 and len(stats.commit_s) == 3  # 4 + 4 + 2
    assert lake.count("raw_images") == 10
