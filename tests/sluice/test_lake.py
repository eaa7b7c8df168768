import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sluice.errors import InputError, SchemaMismatch
from sluice.lake import Lake

from tests.sluice.test_catalog import raw_rows  # noqa: E402  (shared row builder)


def test_merge_insert_is_idempotent(lake):
    assert lake.merge_insert("raw_images", raw_rows(range(10))) == 10
    assert lake.merge_insert("raw_images", raw_rows(range(10))) == 0
    assert lake.merge_insert("raw_images", raw_rows(range(5, 15))) == 5
    assert lake.count("raw_images") == 15
    # the same bytes from another source are another row (provenance is kept)
    assert lake.merge_insert("raw_images", raw_rows(range(3), source="other")) == 3


def test_merge_source_with_repeated_keys_inserts_once(lake):
    assert lake.merge_insert("raw_images", pa.concat_tables([raw_rows([1, 2]), raw_rows([1])])) == 2


def test_upsert_and_predicate_overwrite(lake):
    q = lambda stage, keys: pa.table({
        "source_table": ["raw_images"] * len(keys), "row_key": keys, "stage": [stage] * len(keys),
        "check": ["c"] * len(keys), "reason": ["r"] * len(keys), "run_id": ["x"] * len(keys),
        "quarantined_at": pa.array([0] * len(keys), pa.timestamp("us", tz="UTC")),
    })
    lake.append("quarantine", q("ingest", ["a", "b"]))
    lake.append("quarantine", q("clean", ["c", "d", "e"]))
    lake.overwrite("quarantine", q("clean", ["d"]), predicate="stage = 'clean'")
    rows = lake.read("quarantine").to_pylist()
    assert sorted((r["stage"], r["row_key"]) for r in rows) == [("clean", "d"), ("ingest", "a"), ("ingest", "b")]


def test_update_columns_sets_only_those_columns_on_matching_keys(lake):
    rows = lambda ids: pa.table({
        "image_id": [f"i{k}" for k in ids], "width": [32] * len(ids), "height": [32] * len(ids),
        "mode": ["RGB"] * len(ids), "pixels": [bytes([k]) * 4 for k in ids], "pixel_hash": [f"h{k}" for k in ids],
        "phash": [k for k in ids], "run_id": ["clean-1"] * len(ids)})
    lake.merge_insert("images", rows([1, 2, 3]))
    groups = pa.table({"image_id": ["i1", "i2", "i9"], "dup_group": ["i1", "i1", "i9"], "is_canonical": [True, False, True]})
    assert lake.update_columns("images", groups, ["dup_group", "is_canonical"], run_id="dedup-1") == 2
    got = {r["image_id"]: r for r in lake.read("images").to_pylist()}
    assert len(got) == 3  # the unknown key i9 inserts nothing
    assert (got["i2"]["dup_group"], got["i2"]["is_canonical"], got["i2"]["pixels"], got["i2"]["run_id"]) == \
        ("i1", False, b"\x02" * 4, "clean-1")
    assert got["i3"]["dup_group"] is None
    assert lake.history("images")[0]["sluice.run_id"] == "dedup-1"
    with pytest.raises(SchemaMismatch, match="no column 'colour'"):
        lake.update_columns("images", groups, ["colour"])
    with pytest.raises(SchemaMismatch, match="non-key"):
        lake.update_columns("images", groups, ["image_id"])
    with pytest.raises(SchemaMismatch, match="'is_canonical' has type"):
        lake.update_columns("images", pa.table({"image_id": ["i1"], "is_canonical": [b"x"]}), ["is_canonical"])
    with pytest.raises(SchemaMismatch, match="unexpected column 'dup_group'"):  # a column it was not told to set
        lake.update_columns("images", groups, ["is_canonical"])


def test_time_travel_and_history(lake):
    lake.merge_insert("raw_images", raw_rows([1]), run_id="run-1")
    lake.merge_insert("raw_images", raw_rows([2]), run_id="run-2")
    v = lake.version("raw_images")
    assert lake.read("raw_images", version=v - 1).num_rows == 1
    assert lake.history("raw_images")[0]["sluice.run_id"] == "run-2"
    with pytest.raises(InputError, match="no version 99"):
        lake.read("raw_images", version=99)


def test_reading_a_missing_table(lake):
    assert lake.read("labels").num_rows == 0
    with pytest.raises(InputError, match="does not exist yet"):
        lake.table("labels")


def test_mismatched_write_names_column_and_writes_nothing(lake):
    with pytest.raises(SchemaMismatch, match="content"):
        lake.merge_insert("raw_images", raw_rows([1]).drop_columns(["content"]))
    assert not lake.exists("raw_images")


WRITER = textwrap.dedent("""
    import sys, datetime as dt
    import pyarrow as pa
    from sluice.lake import Lake
    root, start, stop, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    lake = Lake(root, retries=50)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for lo in range(start, stop, batch):
        ids = range(lo, min(lo + batch, stop))
        lake.merge_insert("raw_images", pa.table({
            "image_id": [f"{i:064x}" for i in ids], "content": [b"x" * 10] * len(ids),
            "source": ["s"] * len(ids), "source_uri": [f"f{i}" for i in ids],
            "fetched_at": [now] * len(ids), "run_id": ["w"] * len(ids)}))
        print(lo, flush=True)
""")


def _writer(tmp_path, *args):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.getcwd())


def test_concurrent_writers_lose_and_double_nothing(tmp_path):
    root = tmp_path / "lake"
    Lake(str(root)).merge_insert("raw_images", raw_rows([10_000]))  # table exists; both race on commits
    # overlapping key ranges: 0-59 and 30-89 -> exactly 90 distinct rows (+1 seed row)
    procs = [_writer(tmp_path, root, 0, 60, 10), _writer(tmp_path, root, 30, 90, 10)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ids = Lake(str(root)).read("raw_images", columns=["image_id"]).column("image_id")
    assert len(ids) == 91 and pc.count_distinct(ids).as_py() == 91


def test_sigkill_mid_write_leaves_table_readable_and_rerun_completes(tmp_path):
    root = tmp_path / "lake"
    proc = _writer(tmp_path, root, 0, 1000, 10)
    # killed as soon as the 11th of 100 commits is reported, not after a fixed sleep: on a fast machine
    # the writer finished all 40 commits it then had within 0.3 s of its first, and the kill came too late
    assert [proc.stdout.readline().strip() for _ in range(11)] == [str(lo) for lo in range(0, 110, 10)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lake = Lake(str(root))
    landed = lake.count("raw_images")
    assert 110 <= landed < 1000 and landed % 10 == 0  # whole commits only
    rerun = _writer(tmp_path, root, 0, 1000, 10)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    ids = lake.read("raw_images", columns=["image_id"]).column("image_id")
    assert len(ids) == 1000 and pc.count_distinct(ids).as_py() == 1000


def test_a_write_overtaken_by_compaction_and_vacuum_runs_again_from_head(lake):
    """A writer loaded version v; maintenance then compacted v's files away and vacuumed them with retention 0.
    Reading v fails (file not found) before anything is committed: the write retries from HEAD."""
    from deltalake.exceptions import DeltaError

    from sluice.catalog import with_retries
    from sluice.maintenance import maintain_table

    for lo in range(0, 30, 10):
        lake.merge_insert("raw_images", raw_rows(range(lo, lo + 10)))
    stale = lake.table("raw_images")  # what a slow writer loaded
    maintain_table(lake, "raw_images", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    data = raw_rows(range(25, 40))
    calls = []

    def attempt():
        table = stale if not calls else lake.table("raw_images")
        calls.append(table.version())
        return table.merge(data, "t.image_id = s.image_id", source_alias="s", target_alias="t") \
            .when_not_matched_insert_all().execute()

    with pytest.raises((DeltaError, OSError), match="not found"):  # the stale snapshot's files are gone
        lake.table("raw_images", stale.version()).to_pyarrow_table()
    with_retries(attempt, 3, "merge")
    assert len(calls) == 2 and calls[1] > calls[0]
    ids = lake.read("raw_images", columns=["image_id"]).column("image_id")
    assert len(ids) == 40 and pc.count_distinct(ids).as_py() == 40


def test_batches_stream_a_table_of_large_values_one_file_at_a_time(tmp_path, monkeypatch):
    """pyarrow's default scan reads 4 files ahead: over pixels or raw image bytes that is 4 files in memory."""
    from deltalake import DeltaTable, write_deltalake

    rng = np.random.default_rng(0)
    for f in range(6):  # 6 files of 40 rows x 256 KB = 10 MB each
        write_deltalake(str(tmp_path / "t"), pa.table({"image_id": [f"{f}-{i}" for i in range(40)],
                                                      "content": pa.array([rng.bytes(1 << 18) for _ in range(40)])}),
                        mode="append")
    lake = Lake(str(tmp_path / "lake"))
    monkeypatch.setattr(lake, "dataset", lambda name, version=None: DeltaTable(str(tmp_path / "t")).to_pyarrow_dataset())
    file_bytes, peak, rows = 40 << 18, 0, []
    for batch in lake.batches("raw_images", ["image_id", "content"], 8):
        peak = max(peak, pa.total_allocated_bytes())
        rows += batch.column("image_id").to_pylist()
    assert sorted(rows) == sorted(f"{f}-{i}" for f in range(6) for i in range(40))
    assert peak < 2.5 * file_bytes, peak / file_bytes  # the default scan held ~4 files (measured 4x)
