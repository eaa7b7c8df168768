"""The process exit path every command and stage goes through (``sluice.stage.exit_process``)."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from sluice.stage import stage_main
    from sluice.errors import InputError

    done = []
    def slow_writer():
        time.sleep(0.3)
        done.append(1)
        print("thread finished", flush=True)

    atexit.register(lambda: print("atexit ran"))

    def work():
        # idle executor workers (Inductor, Dask, ...) only leave when threading's exit hook says so
        pool = ThreadPoolExecutor(2)
        pool.submit(time.sleep, 0.01).result()
        threading.Thread(target=slow_writer).start()
        print("buffered line without flush")
        if sys.argv[1] == "fail":
            raise InputError("bad input at row 3")
        return 0

    stage_main(work)
""")


def run(tmp_path, mode):
    script = tmp_path / "stage.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=60)


def test_exit_keeps_code_output_threads_and_atexit(tmp_path):
    ok = run(tmp_path, "ok")  # (a hang here is a join that waits on an idle executor worker)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["buffered line without flush", "thread finished", "atexit ran"]


def test_user_error_exits_2_with_one_line(tmp_path):
    bad = run(tmp_path, "fail")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "sluice: error: bad input at row 3"
    assert "thread finished" in bad.stdout and "atexit ran" in bad.stdout


def test_help_and_unknown_command(run_cli):
    assert run_cli("--help").returncode == 0
    unknown = run_cli("no-such-command")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_stage_record_reconciles_and_names_versions_and_rows(lake, capsys):
    import pyarrow as pa
    import pytest

    from sluice.stage import Quarantine, stage_record

    q = Quarantine("probe", "raw_images", "run-1")
    q.add("k1", "bad_thing", details="x")
    q.write(lake)
    record = stage_record("probe", lake, ["quarantine"], 3, run_id="run-1", read={"raw_images": 7}, new=2,
                         quarantined=1)
    assert record == {"reconcile": {"rows_in": 3, "new": 2, "quarantined": 1}, "run_id": "run-1",
                      "versions": {"raw_images": 7, "quarantine": lake.version("quarantine")}, "rows": {"quarantine": 1}}
    err = capsys.readouterr().err
    assert "[probe] reconcile: in 3 = new 2 + quarantined 1  OK" in err
    assert f"[probe] tables: quarantine v{lake.version('quarantine')} (1 rows)" in err
    with pytest.raises(AssertionError, match="4 rows in but 3 accounted"):
        stage_record("probe", lake, [], 4, new=3)
    assert isinstance(q.table(), pa.Table)


def test_quarantine_replace_can_be_narrowed_to_some_checks(lake):
    from sluice.stage import Quarantine

    q = Quarantine("gate", "images", "run-1")
    q.add("a", "suite_a.check1")
    q.add("b", "suite_b.check1")
    q.write(lake, replace=True)
    q = Quarantine("gate", "images", "run-2")
    q.add("c", "suite_a.check2")
    q.write(lake, replace=True, checks=["suite_a."])
    rows = sorted((r["row_key"], r["check"]) for r in lake.read("quarantine").to_pylist())
    assert rows == [("b", "suite_b.check1"), ("c", "suite_a.check2")]
    version = lake.version("quarantine")
    Quarantine("gate", "images", "run-3").write(lake, replace=True, checks=["suite_c."])  # nothing to replace
    assert lake.version("quarantine") == version


def test_a_record_without_a_stage_is_printed_under_its_logger_name(capsys):
    """A module that logs through logging.getLogger("sluice.x") rather than stage_logger must not crash the
    handler ("Formatting field not found in record: 'stage'") and lose its message."""
    import logging

    from sluice.stage import configure_logging

    configure_logging("normal")
    logging.getLogger("sluice.erase").warning("crowd_votes: %d row(s) of erased data not written again", 3)
    err = capsys.readouterr().err
    assert "[erase] crowd_votes: 3 row(s) of erased data not written again" in err and "Logging error" not in err
