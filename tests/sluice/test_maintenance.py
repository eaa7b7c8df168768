"""Lake maintenance: compaction and vacuum that keep tagged versions and never race a writer."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sluice.lake import Lake
from sluice.maintenance import VacuumRefused, maintain_table, protected_versions
from tests.sluice.test_versions import BIN, _git, _init_repo


def _versions(lake: Lake, n: int) -> None:
    for i in range(n):
        lake.overwrite("annotators", pa.table({"worker_id": [f"w{i}", "x"], "votes": [i, 1],
                                               "is_spammer": [False, False], "is_adversarial": [False, False],
                                               "run_id": ["r", "r"]}))


def _readable(lake: Lake, version: int) -> bool:
    try:
        lake.read("annotators", version=version)
        return True
    except FileNotFoundError:
        return False


def test_maintain_keeps_protected_versions_and_removes_the_rest(lake):
    _versions(lake, 5)  # versions 0 (create) .. 5
    orphan = Path(lake.uri("annotators")) / "part-00000-orphan-of-a-failed-write.parquet"
    orphan.write_bytes(b"not committed")
    _age(orphan, hours=2)  # orphans younger than the floor (1 h) are never touched
    dry = maintain_table(lake, "annotators", {2}, retention_hours=0, target_file_mb=1, dry_run=True)
    assert dry.orphans == [orphan.name] and len(dry.removed) == 3 and orphan.exists()
    report = maintain_table(lake, "annotators", {2}, retention_hours=0, target_file_mb=1, dry_run=False)
    assert not orphan.exists() and report.orphans == [orphan.name]
    assert report.broken_versions == [] and report.kept_versions == [2]
    assert _readable(lake, 2) and _readable(lake, 5)
    assert not _readable(lake, 1) and not _readable(lake, 3)
    assert lake.read("annotators").column("worker_id").to_pylist() == ["w4", "x"]


def test_maintain_with_a_week_of_retention_removes_nothing_recent(lake):
    _versions(lake, 3)
    report = maintain_table(lake, "annotators", set(), retention_hours=168, target_file_mb=1, dry_run=False)
    assert report.removed == [] and all(_readable(lake, v) for v in range(1, 4))


def test_maintain_refuses_a_version_the_table_does_not_have(lake):
    _versions(lake, 2)
    with pytest.raises(VacuumRefused, match="references version"):
        maintain_table(lake, "annotators", {9}, retention_hours=0, target_file_mb=1, dry_run=False)


def test_protected_versions_come_from_tagged_manifests_and_unknown_tags_refuse(tmp_path, lake, run_cli):
    repo = tmp_path / "repo"
    _init_repo(repo)
    lock = {"schema": "2.0", "stages": {"export": {"cmd": "x", "outs": [
        {"path": "data/dataset", "md5": "0" * 32 + ".dir"},
        {"path": "data/manifests/export.json", "md5": "1" * 32}]}}}
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    manifests = repo / "data/manifests"
    manifests.mkdir(parents=True)
    for tag, versions in (("v1", {"dataset": 1, "images": 3}), ("v2", {"dataset": 4, "images": 3})):
        (manifests / "export.json").write_text(json.dumps({"table_versions": versions, "content_hash": tag}))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", tag)
        _git(repo, "tag", tag)
    _git(repo, "tag", "code-only", "HEAD~1")  # a second tag on v1's commit is the same version
    workspace = tmp_path / "snap" / "manifest.json"
    workspace.parent.mkdir()
    workspace.write_text(json.dumps({"table_versions": {"dataset": 6, "images": 5}}))
    keep, unknown = protected_versions(repo, workspace)
    assert keep == {"dataset": {1, 4, 6}, "images": {3, 5}} and unknown == []

    # a tagged version whose manifest is neither in git nor in any DVC cache: vacuum must refuse
    (manifests / "export.json").unlink()
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "manifest moved to dvc")
    _git(repo, "tag", "v3")
    _versions(lake, 2)
    result = run_cli("lake", "maintain", "--retention-hours", "0", cwd=repo,
                     params={"lake": {"root": lake.root}})
    assert result.returncode == 2, result.stderr
    assert "refusing to vacuum" in result.stderr and "v3" in result.stderr and "Traceback" not in result.stderr
    assert all(_readable(lake, v) for v in range(1, 3))




def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_a_write_in_flight_survives_maintenance_with_zero_retention(lake):
    """The file of a write that has not committed yet looks like an orphan; it must survive, then commit."""
    _versions(lake, 3)
    inflight = Path(lake.uri("annotators")) / "part-00000-in-flight.parquet"
    pq.write_table(lake.read("annotators"), inflight)  # written, not committed yet
    report = maintain_table(lake, "annotators", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    assert inflight.exists() and report.orphans == [] and report.held == [inflight.name]


def test_idle_maintenance_commits_nothing_and_reports_nothing(lake):
    _versions(lake, 4)
    first = maintain_table(lake, "annotators", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    assert len(first.removed) == 3 and first.version_after > first.version_before
    again = maintain_table(lake, "annotators", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    assert (again.removed, again.orphans, again.held) == ([], [], [])
    assert again.version_after == again.version_before == first.version_after


def test_time_travel_to_a_vacuumed_version_names_the_oldest_readable_one(lake, run_cli):
    _versions(lake, 4)
    maintain_table(lake, "annotators", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    head = lake.version("annotators")
    params = {"lake": {"root": lake.root}}
    out = run_cli("sql", "select count(*) from annotators", "--at", "annotators=2", params=params)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "annotators@2: its data files were vacuumed" in out.stderr
    assert f"oldest readable version is {head - 2}" in out.stderr  # the two vacuum commits keep the last write's files
    out = run_cli("history", "annotators", params=params)
    assert out.returncode == 0 and f"versions before {head - 2} were vacuumed" in out.stderr


def test_cli_maintain_says_the_floor_and_is_honest_when_idle(lake, run_cli):
    _versions(lake, 2)
    params = {"lake": {"root": lake.root}}
    out = run_cli("lake", "maintain", "--retention-hours", "0", params=params)
    assert out.returncode == 0 and "kept for at least 1 h" in out.stderr and "removed 1 old file(s)" in out.stderr
    out = run_cli("lake", "maintain", "--retention-hours", "0", params=params)
    assert "removed 0 old file(s) and 0 orphan(s)" in out.stderr, out.stderr


def test_maintenance_racing_a_writer_loses_nothing(lake):
    """`lake maintain --retention-hours 0` in a loop while a writer commits batch after batch: every
    batch lands and HEAD stays readable (before the orphan floor, in-flight files were deleted)."""
    import threading

    from sluice.lake_health import readable
    from tests.sluice.test_catalog import raw_rows

    lake.merge_insert("raw_images", raw_rows(range(5)))
    batches = [range(100 * b, 100 * b + 50) for b in range(1, 7)]
    errors = []

    def write():
        try:
            for rows in batches:
                lake.merge_insert("raw_images", raw_rows(rows))
        except Exception as err:  # pragma: no cover - reported by the assertion below
            errors.append(err)

    writer = threading.Thread(target=write)
    writer.start()
    rounds = 0
    while writer.is_alive() or rounds == 0:
        maintain_table(lake, "raw_images", set(), retention_hours=0, target_file_mb=1, dry_run=False)
        rounds += 1
    writer.join()
    assert errors == []
    assert readable(lake, "raw_images") and lake.count("raw_images") == 5 + 50 * len(batches)


def test_maintain_compacts_small_files_into_fewer_and_keeps_every_row(lake):
    from tests.sluice.test_catalog import raw_rows

    for b in range(6):
        lake.append("raw_images", raw_rows(range(10 * b, 10 * b + 10)))
    assert len(lake.table("raw_images").file_uris()) == 6
    report = maintain_table(lake, "raw_images", set(), retention_hours=168, target_file_mb=1, dry_run=False)
    assert report.compacted == {"numFilesAdded": 1, "numFilesRemoved": 6}
    assert len(lake.table("raw_images").file_uris()) == 1 and lake.count("raw_images") == 60
    assert lake.merge_insert("raw_images", raw_rows(range(65))) == 5


def test_a_step_that_writers_keep_overtaking_is_deferred_not_failed(lake):
    from deltalake import DeltaTable

    from sluice.maintenance import _unless_overtaken

    _versions(lake, 2)
    stale = DeltaTable(lake.uri("annotators"))
    lake.overwrite("annotators", lake.read("annotators"))  # a writer commits after the step loaded the table
    lake.retries = 1
    deferred = []
    assert _unless_overtaken(lambda: stale.delete("worker_id = 'x'"), lake, "delete x", deferred) is None
    assert deferred == ["delete x"]  # a real commit conflict, on every retry
    with pytest.raises(ValueError):  # anything else is not swallowed
        _unless_overtaken(lambda: int("x"), lake, "parse", deferred)
