"""Damaged Delta logs: one line naming table, version and what to do; `sluice lake doctor` changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from sluice.lake_health import LakeDamaged, diagnose


def _versions(lake, n: int) -> Path:
    for i in range(n):
        lake.overwrite("annotators", pa.table({"worker_id": [f"w{i}", "x"], "votes": [i, 1],
                                               "is_spammer": [False, False], "is_adversarial": [False, False],
                                               "run_id": ["r", "r"]}))
    return Path(lake.uri("annotators")) / "_delta_log"


def _truncate(log: Path, version: int) -> None:
    path = log / f"{version:020d}.json"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


def _overwrite(log: Path, version: int) -> None:
    (log / f"{version:020d}.json").write_text("42\n")  # what `COPY (select 42) TO ...` left


def _gap(log: Path, version: int) -> None:
    (log / f"{version:020d}.json").unlink()


DAMAGE = [
    (_truncate, 4, "version 4: 00000000000000000004.json line .* is not valid JSON", "move 00000000000000000004.json out"),
    (_overwrite, 4, "version 4: 00000000000000000004.json line 1 is not a JSON object", "returns to version 3"),
    (_gap, 2, "version 2: commit file 00000000000000000002.json is missing", "restore it from a backup"),
]


@pytest.mark.parametrize("damage, version, problem, advice", DAMAGE)
def test_damaged_logs_are_named_in_one_line(lake, damage, version, problem, advice):
    log = _versions(lake, 4)
    damage(log, version)
    found = diagnose("annotators", log.parent)
    assert found is not None and found.version == version
    for call in (lambda: lake.table("annotators"), lambda: lake.read("annotators"), lambda: lake.history("annotators")):
        with pytest.raises(LakeDamaged, match=f"table 'annotators' has a damaged Delta log at {problem}.*{advice}"):
            call()


def test_missing_checkpoint(lake):
    log = _versions(lake, 3)
    lake.table("annotators").create_checkpoint()
    _versions(lake, 1)
    next(log.glob("*.checkpoint.parquet")).unlink()
    with pytest.raises(LakeDamaged, match="version 3: _last_checkpoint names checkpoint 3 but its file is missing; "
                                          "every commit up to it is still there: move _delta_log/_last_checkpoint"):
        lake.table("annotators")
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == 3


def test_healthy_tables_have_no_diagnosis(lake):
    log = _versions(lake, 3)
    assert diagnose("annotators", log.parent) is None


def test_cli_tables_sql_history_and_doctor(lake, run_cli):
    log = _versions(lake, 4)
    _truncate(log, 4)
    before = sorted((p.name, p.stat().st_size) for p in log.iterdir())
    params = {"lake": {"root": lake.root}}
    for args in (("tables",), ("sql", "select count(*) from annotators"), ("history", "annotators")):
        out = run_cli(*args, params=params)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
        assert "table 'annotators' has a damaged Delta log at version 4" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("lake", "doctor", params=params)
    assert out.returncode == 1 and "damaged" in out.stdout and "nothing was changed" in out.stderr
    assert sorted((p.name, p.stat().st_size) for p in log.iterdir()) == before


def test_a_first_commit_missing_is_named_without_an_impossible_advice(lake):
    log = _versions(lake, 3)
    _gap(log, 0)
    found = diagnose("annotators", log.parent)
    assert found.version == 0 and "first commit" in found.problem and "versions -1" not in found.line()


def test_a_deleted_newest_commit_is_seen_only_against_a_manifest(lake, tmp_path, run_cli):
    """Deleting the newest commit file leaves a valid, older table: only a recorded version can tell."""
    from sluice.lake_health import doctor, recorded_versions
    from sluice.runs import lake_identity, write_manifest

    log = _versions(lake, 4)  # versions 0..3 (create + 3 overwrites)
    head = lake.table("annotators").version()
    manifests = tmp_path / "manifests"
    write_manifest("labels", {"versions": {"annotators": head}}, directory=manifests, lake=lake)
    recorded = recorded_versions(lake_identity(lake)["id"], manifests)
    assert [r["status"] for r in doctor(lake, ["annotators"], recorded)] == ["ok"]
    (log / f"{head:020d}.json").unlink()
    assert diagnose("annotators", log.parent) is None  # undetectable from the log itself, by construction
    [row] = doctor(lake, ["annotators"], recorded_versions(lake_identity(lake)["id"], manifests))
    assert (row["status"], row["version"]) == ("behind manifest", head - 1)
    assert f"recorded version {head}" in row["detail"] and "labels.json" in row["detail"]
    out = run_cli("lake", "doctor", params={"lake": {"root": lake.root}, "paths": {"manifests": str(manifests)}})
    assert out.returncode == 1 and "behind manifest" in out.stdout and "Traceback" not in out.stderr
    assert f"table 'annotators' is at version {head - 1} but" in out.stderr and "1 behind their manifests" in out.stderr


def test_manifests_of_another_lake_are_not_compared(lake, tmp_path):
    from sluice.lake import Lake
    from sluice.lake_health import doctor, recorded_versions
    from sluice.runs import lake_identity, write_manifest

    _versions(lake, 2)
    other = Lake(str(tmp_path / "other"))
    other.overwrite("annotators", pa.table({"worker_id": ["w"], "votes": [1], "is_spammer": [False],
                                            "is_adversarial": [False], "run_id": ["r"]}))
    write_manifest("labels", {"versions": {"annotators": 99}}, directory=tmp_path / "m", lake=other)
    recorded = recorded_versions(lake_identity(lake, create=True)["id"], tmp_path / "m")
    assert recorded == {} and [r["status"] for r in doctor(lake, ["annotators"], recorded)] == ["ok"]


def test_a_version_the_table_never_had_is_not_called_vacuumed(lake, run_cli):
    from sluice.errors import UserError
    from sluice.lake_health import require_readable

    _versions(lake, 2)
    head = lake.version("annotators")
    with pytest.raises(UserError, match=rf"^annotators has no version 99 \(latest is {head}\)$"):
        require_readable(lake, "annotators", 99)
    require_readable(lake, "annotators", head)
    out = run_cli("sql", "select count(*) from annotators", "--at", "annotators=99", params={"lake": {"root": lake.root}})
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"sluice: error: annotators has no version 99 (latest is {head})"], \
        out.stderr
