"""Racing writers, maintenance under writers, damaged Delta logs: nothing lost, nothing doubled, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.compute as pc
import pytest
import yaml

from sluice.lake import Lake
from sluice.lake_health import readable
from tests.faults.conftest import RUNS, env, run
from tests.sluice.test_catalog import raw_rows
from tests.sluice.test_lake import WRITER
from tests.sluice.test_lake_health import _gap, _overwrite, _truncate, _versions

pytestmark = pytest.mark.slow


def _writers(tmp_path, root, ranges, batch: int) -> list[subprocess.Popen]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return [subprocess.Popen([sys.executable, str(script), str(root), str(lo), str(hi), str(batch)], env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for lo, hi in ranges]


def _ids(root) -> tuple[int, int]:
    ids = Lake(str(root)).read("raw_images", columns=["image_id"]).column("image_id")
    return len(ids), pc.count_distinct(ids).as_py()


def test_four_racing_writers(tmp_path, faults):
    """4 processes merge-insert overlapping key ranges into one table: every key exactly once."""
    ranges = [(0, 60), (20, 80), (40, 100), (60, 120)]
    for i in range(RUNS):
        root = tmp_path / f"lake{i}"
        Lake(str(root)).merge_insert("raw_images", raw_rows([10_000]))  # the table exists; all race on commits
        procs = _writers(tmp_path, root, ranges, 10)
        codes = [p.wait(timeout=300) for p in procs]
        rows, distinct = _ids(root)
        faults.add(121, rows, codes == [0] * 4 and rows == distinct == 121, f"exit codes {codes}" if any(codes) else "")
    faults.check()


def test_maintain_under_writers(tmp_path, faults):
    """`sluice lake maintain --retention-hours 0` in a loop while 2 writers commit: all succeed, HEAD readable."""
    for i in range(RUNS):
        root = tmp_path / f"lake{i}"
        Lake(str(root)).merge_insert("raw_images", raw_rows([10_000]))
        params = tmp_path / f"p{i}.yaml"
        params.write_text(yaml.safe_dump({"lake": {"root": str(root)}}))
        procs = _writers(tmp_path, root, [(0, 80), (40, 120)], 4)
        rounds, failures = 0, []
        while rounds == 0 or any(p.poll() is None for p in procs):
            result = run(["-m", "sluice.cli", "lake", "maintain", "--retention-hours", "0", "--table", "raw_images"],
                         tmp_path, params)
            rounds += 1
            if result.returncode != 0:
                failures.append(result.stderr.strip().splitlines()[-1:])
        codes = [p.wait(timeout=300) for p in procs]
        errors = [p.stderr.read().strip().splitlines()[-1:] for p in procs if p.returncode]
        lake = Lake(str(root))
        rows, distinct = _ids(root)
        ok = codes == [0, 0] and not failures and readable(lake, "raw_images") and rows == distinct == 121
        faults.add(121, rows, ok, f"{rounds} maintain rounds" if ok else f"writers {codes} {errors}, maintain {failures}")
    faults.check()


DAMAGE = {"truncated": (_truncate, 3), "gap": (_gap, 2), "overwritten": (_overwrite, 3)}


def test_damaged_delta_log(tmp_path, faults):
    """A truncated, gapped or overwritten commit: `tables`, `sql`, `history` answer one line naming table and version."""
    for kind, (damage, version) in DAMAGE.items():
        lake = Lake(str(tmp_path / kind / "lake"))
        log = _versions(lake, 4)
        damage(log, version)
        params = tmp_path / f"{kind}.yaml"
        params.write_text(yaml.safe_dump({"lake": {"root": lake.root}}))
        lines = []
        for args in (["tables"], ["sql", "select count(*) from annotators"], ["history", "annotators"]):
            result = run(["-m", "sluice.cli", *args], tmp_path, params)
            err = result.stderr.strip().splitlines()
            lines.append(result.returncode == 2 and len(err) == 1 and "Traceback" not in result.stderr
                         and f"table 'annotators' has a damaged Delta log at version {version}" in err[0])
        doctor = run(["-m", "sluice.cli", "lake", "doctor"], tmp_path, params)
        ok = all(lines) and doctor.returncode == 1 and "nothing was changed" in doctor.stderr
        faults.add("-", "-", ok, f"{kind} log: one line")
    faults.check()
