"""The key index behind merge-insert: append-only ingest that stays exactly once."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sluice import key_index
from sluice.lake import Lake
from tests.sluice.test_catalog import raw_rows


def _ids(lake: Lake) -> list[str]:
    return sorted(lake.read("raw_images", columns=["image_id"]).column("image_id").to_pylist())


def _forget(lake: Lake) -> None:
    """As if a new process: drop this process's index of the table."""
    key_index._INDEXES.pop(lake.uri("raw_images"), None)


def test_merge_insert_appends_without_rewriting_files(lake):
    lake.merge_insert("raw_images", raw_rows(range(10)))
    files = set(lake.table("raw_images").file_uris())
    assert lake.merge_insert("raw_images", raw_rows(range(5, 15))) == 5
    assert files < set(lake.table("raw_images").file_uris())  # nothing removed: a plain append
    assert lake.history("raw_images")[0]["operation"] == "WRITE"


def test_a_duplicate_left_by_a_racing_or_killed_writer_is_repaired_by_the_next_writer(lake):
    lake.merge_insert("raw_images", raw_rows(range(10)))
    # a writer that appended keys already present and died before its post-commit check
    late = raw_rows([3, 4]).set_column(6, "run_id", pa.array(["late", "late"]))
    lake.append("raw_images", late)
    assert len(_ids(lake)) == 12
    for fresh in (False, True):  # this process's index sees it on refresh; a new process on its first build
        if fresh:
            lake.append("raw_images", late)
            _forget(lake)
        assert lake.merge_insert("raw_images", raw_rows([20 + fresh])) == 1
        rows = lake.read("raw_images")
        assert len(rows) == 11 + fresh and pc.count_distinct(rows.column("image_id")).as_py() == len(rows)
        kept = rows.filter(pc.is_in(rows.column("image_id"), pa.array([f"{i:064x}" for i in (3, 4)])))
        # every writer keeps the same copy: the one that sorts first by its columns ("late" < "r")
        assert kept.column("run_id").to_pylist() == ["late", "late"]
    assert lake.history("raw_images")[0]["operation"] == "WRITE"
    assert any(h.get("sluice.operation") == "repair duplicate keys" for h in lake.history("raw_images"))


def test_an_other_writers_append_of_my_keys_counts_as_already_present(lake):
    lake.merge_insert("raw_images", raw_rows(range(3)))
    other = Lake(lake.root)
    other.append("raw_images", raw_rows([7, 8]))  # not through merge_insert: the index learns it on refresh
    assert lake.merge_insert("raw_images", raw_rows([7, 8, 9])) == 1
    assert _ids(lake) == [f"{i:064x}" for i in (0, 1, 2, 7, 8, 9)]


def test_a_deleted_key_can_land_again(lake):
    lake.merge_insert("raw_images", raw_rows(range(4)))
    lake.table("raw_images").delete(f"image_id = '{2:064x}'")
    assert lake.merge_insert("raw_images", raw_rows(range(4))) == 1
    assert len(_ids(lake)) == 4


def test_the_index_follows_compaction(lake):
    for b in range(4):
        lake.merge_insert("raw_images", raw_rows(range(10 * b, 10 * b + 10)))
    lake.table("raw_images").optimize.compact()
    assert len(lake.table("raw_images").file_uris()) == 1
    assert lake.merge_insert("raw_images", raw_rows(range(35, 45))) == 5
    assert len(_ids(lake)) == 45 == len(set(_ids(lake)))


def test_batch_files_are_compacted_as_they_pile_up_and_nothing_is_lost(lake, monkeypatch):
    import sluice.lake

    monkeypatch.setattr(sluice.lake, "AUTO_COMPACT_FILES", 4)
    for b in range(9):
        assert lake.merge_insert("raw_images", raw_rows(range(10 * b, 10 * b + 10))) == 10
    ops = [h.get("sluice.operation") for h in lake.history("raw_images")]
    assert ops.count("compact batch files") >= 1
    assert len(lake.table("raw_images").file_uris()) < 9
    assert lake.merge_insert("raw_images", raw_rows(range(95))) == 5  # the index kept every key through it
    assert len(_ids(lake)) == 95 == len(set(_ids(lake)))


def test_a_whole_batch_appended_twice_is_repaired_in_bounded_commits(lake, monkeypatch):
    import sluice.lake

    monkeypatch.setattr(sluice.lake, "REPAIR_KEYS", 7)
    lake.merge_insert("raw_images", raw_rows(range(3)))
    lake.append("raw_images", raw_rows(range(100, 130)))
    lake.append("raw_images", raw_rows(range(100, 130)))  # two racers landed the same batch
    assert lake.merge_insert("raw_images", raw_rows([7])) == 1
    assert len(_ids(lake)) == 34 == len(set(_ids(lake)))
    ops = [h.get("sluice.operation") for h in lake.history("raw_images")]
    assert ops.count("repair duplicate keys") == 5  # 30 keys, 7 a commit


def _compact_and_vacuum(lake: Lake) -> None:
    """What `sluice lake maintain --retention-hours 0` does between a writer's log read and its file reads."""
    table = lake.table("raw_images")
    table.optimize.compact()
    lake.table("raw_images").vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def _pinned(lake: Lake, version: int):
    """An opener whose HEAD is ``version``: the log as a writer read it just before maintenance ran."""
    from deltalake import DeltaTable

    return lambda v: DeltaTable(lake.uri("raw_images"), version=version if v is None else v)


def test_a_file_vacuumed_under_the_first_build_rebuilds_at_the_newest_version(lake):
    for b in range(3):
        lake.append("raw_images", raw_rows(range(10 * b, 10 * b + 10)))
    seen = lake.table("raw_images").version()
    _compact_and_vacuum(lake)
    index = key_index.KeyIndex(("image_id",), _local=lake.uri("raw_images"))
    assert index.refresh(_pinned(lake, seen)) == []
    assert index.version == lake.table("raw_images").version() > seen
    assert index.contains(key_index.key_hashes(raw_rows(range(30)), ("image_id",))).all()


def test_a_file_vacuumed_under_a_refresh_rebuilds_and_still_reports_duplicates(lake):
    lake.append("raw_images", raw_rows(range(10)))
    index = key_index.KeyIndex(("image_id",), _local=lake.uri("raw_images"))
    index.refresh(_pinned(lake, lake.table("raw_images").version()))
    lake.append("raw_images", raw_rows(range(8, 12)))  # a racer's batch with two keys already present
    seen = lake.table("raw_images").version()
    _compact_and_vacuum(lake)  # its file is compacted away and deleted before this index reads it
    index._dt = _pinned(lake, seen)(None)
    dups = index.refresh(_pinned(lake, seen), latest=False)
    assert index.version == lake.table("raw_images").version() > seen
    found = sorted({k for d in dups for k in d.keys.column("image_id").to_pylist()})
    assert found == [f"{i:064x}" for i in (8, 9)]  # found again at the newest version (both copies)
    assert index.contains(key_index.key_hashes(raw_rows(range(12)), ("image_id",))).all()
    assert lake.merge_insert("raw_images", raw_rows(range(15))) == 3  # and the lake repairs them on the way
    assert len(_ids(lake)) == 15 == len(set(_ids(lake)))
