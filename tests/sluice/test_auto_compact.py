"""The automatic compaction of merge-insert's batch files: only small files, each row rewritten once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sluice import key_index
from sluice.auto_compact import compaction_target
from sluice.lake import Lake
from tests.sluice.test_catalog import raw_rows


def _optimize_commits(lake: Lake) -> list[tuple[set[str], set[str]]]:
    """(added, removed) paths of every OPTIMIZE commit of raw_images, oldest first, read from the log."""
    commits = []
    for log in sorted(Path(lake.uri("raw_images"), "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if any(a.get("commitInfo", {}).get("operation") == "OPTIMIZE" for a in actions):
            commits.append(({a["add"]["path"] for a in actions if "add" in a},
                            {a["remove"]["path"] for a in actions if "remove" in a}))
    return commits


def _batch(b: int, rows: int = 50):
    """A batch of rows whose files' sizes follow their row counts (incompressible contents, as images)."""
    table = raw_rows(range(rows * b, rows * b + rows))
    contents = pa.array([np.random.default_rng(i).bytes(2000) for i in range(rows * b, rows * b + rows)], pa.binary())
    return table.set_column(table.schema.get_field_index("content"), "content", contents)


def _ids(lake: Lake) -> list[str]:
    return lake.read("raw_images", columns=["image_id"]).column("image_id").to_pylist()


def test_a_compacted_file_is_never_rewritten_and_is_snappy_like_the_batch_files(lake, monkeypatch):
    import sluice.lake

    monkeypatch.setattr(sluice.lake, "AUTO_COMPACT_FILES", 4)
    for b in range(20):
        assert lake.merge_insert("raw_images", _batch(b)) == 50
    commits = _optimize_commits(lake)
    assert len(commits) >= 3
    compacted = set()
    for added, removed in commits:
        assert not removed & compacted  # only batch files were merged
        compacted |= added
    big = max(compacted, key=lambda p: pq.ParquetFile(Path(lake.uri("raw_images"), p)).metadata.num_rows)
    meta = pq.ParquetFile(Path(lake.uri("raw_images"), big)).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    assert len(_ids(lake)) == 1000 == len(set(_ids(lake)))


def test_the_key_index_takes_a_compaction_in_without_reading_the_compacted_file(lake, monkeypatch):
    import sluice.lake

    monkeypatch.setattr(sluice.lake, "AUTO_COMPACT_FILES", 4)
    read = []
    original = key_index.KeyIndex.read_file

    def spy(self, path, columns=None):
        read.append(path)
        return original(self, path, columns)

    monkeypatch.setattr(key_index.KeyIndex, "read_file", spy)
    for b in range(4):
        lake.merge_insert("raw_images", raw_rows(range(10 * b, 10 * b + 10)))
    (added, removed), = _optimize_commits(lake)
    assert len(removed) == 4 and len(added) == 1
    assert lake.merge_insert("raw_images", raw_rows(range(35, 45))) == 5  # keys 35-39 found in the compacted file
    assert not added & set(read)
    assert len(_ids(lake)) == 45 == len(set(_ids(lake)))


def test_compaction_target_merges_the_small_files_and_leaves_each_big_one_alone():
    batch, files = 1000, 4  # bytes of a batch of 10 rows; files a pile
    assert compaction_target([batch] * 3, [10] * 3, files, 10) is None  # too few files
    assert compaction_target([batch] * 4, [10] * 4, files, 10) == 4 * batch  # one bin of all of them
    sizes, rows = [3800, 3900] + [batch] * 5, [40, 40] + [10] * 5
    target = compaction_target(sizes, rows, files, 10)
    assert 5 * batch > target >= 4 * batch  # the 5 small files in two bins (4 + 1, the 1 left alone)...
    assert target < 3800 + batch and target < 2 * 3800  # ...and a big file's bin takes no other file
    assert compaction_target([3800, 3900] + [batch] * 3, [40, 40] + [10] * 3, files, 10) is None  # 3 small files
    assert compaction_target([3800, 3900, 3900, 3900, batch], [40] * 4 + [10], files, 10) is None  # many big ones
    assert compaction_target([200 << 20] + [batch] * 4, [10] * 5, files, 10) == 4 * batch  # over half the cap: big


def test_minus_removes_a_multiset():
    a = np.array([b"a", b"b", b"b", b"c"], "S16")
    assert key_index._minus(a, [np.array([b"b"], "S16")]).tolist() == [b"a", b"b", b"c"]
    assert key_index._minus(a, [np.array([b"d"], "S16")]) is None
    assert key_index._minus(a, [np.array([b"b", b"b", b"b"], "S16")]) is None


def test_auto_compaction_follows_the_lake_setting_and_can_be_off_for_a_single_compactor(tmp_path, make_params):
    for files, compactions in ((4, 1), (0, 0)):
        lake = Lake.from_params(make_params({"lake": {"root": str(tmp_path / str(files)), "auto_compact_files": files}}))
        for b in range(6):
            lake.merge_insert("raw_images", _batch(b, 5))
        assert len(_optimize_commits(lake)) == compactions
        assert len(lake.table("raw_images").file_uris()) == (3 if files else 6)  # off: maintain compacts them
