"""The ``sluice`` command line: building the parser (``sluice --help``) loads no heavy library."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "great_expectations", "dask", "scrapy", "deltalake", "polars", "pyarrow")
# Command modules that still import heavy libraries at module level, owned by others: transform.labels
# (its split into a package gives the commands their own light module). The lead empties this after merging.
HEAVY_ALLOWED: tuple[str, ...] = ()


def _heavy_modules_after_build_parser() -> list[str]:
    code = ("import sluice.cli, sys; "
            f"sluice.cli.COMMAND_MODULES[:] = [m for m in sluice.cli.COMMAND_MODULES if m not in {HEAVY_ALLOWED!r}]; "
            "sluice.cli.build_parser(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return eval(out.stdout)


def test_help_imports_no_heavy_library():
    assert _heavy_modules_after_build_parser() == []


def test_help_lists_every_command(run_cli):
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("tables", "sql", "crawl", "quality", "dataset", "train"):
        assert command in proc.stdout


def _main_with(monkeypatch, argv: list[str], handler) -> int:
    """Run ``sluice.cli.main(argv)`` in-process with ``sluice tables`` replaced by ``handler``."""
    import sluice.cli
    import sluice.commands

    codes = []
    monkeypatch.setattr(sluice.commands, "_tables", handler)
    monkeypatch.setattr(sluice.cli, "exit_process", codes.append)
    sluice.cli.main(argv)
    return codes[0]


def test_quiet_and_verbose_reach_child_processes_through_the_environment(monkeypatch, capsys):
    from sluice.stage import stage_logger

    monkeypatch.delenv("SLUICE_LOG", raising=False)
    seen = []

    def handler(args):
        seen.append(os.environ["SLUICE_LOG"])
        log = stage_logger("probe")
        log.info("an info line")
        log.warning("a warning line")
        log.debug("a debug line")
        return 0

    assert _main_with(monkeypatch, ["--quiet", "tables"], handler) == 0
    err = capsys.readouterr().err
    assert "[probe] a warning line" in err and "info line" not in err
    assert _main_with(monkeypatch, ["-v", "tables"], handler) == 0
    err = capsys.readouterr().err
    assert "[probe] an info line" in err and "[probe] a debug line" in err
    assert seen == ["quiet", "verbose"]


def test_bad_log_setting_is_one_line_exit_2(run_cli):
    proc = run_cli("tables", params={}, env={"SLUICE_LOG": "loud"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sluice: error: SLUICE_LOG: unknown verbosity 'loud'; use one of quiet, normal, verbose"
    both = run_cli("--quiet", "--verbose", "tables")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_role_set_refuses_the_commands_that_do_not_apply_it(run_cli, tmp_path):
    """With $SLUICE_ROLE set, `sluice tables` or `sluice labels workers` would show what the role hides or masks:
    refused in one line (they ran with full access); the query commands apply it; an empty role is full access."""
    params = {"lake": {"root": str(tmp_path / "lake")},
              "access": {"roles": {"analyst": {"tables": ["dataset"], "mask_columns": ["worker_id"]}}}}
    for argv in (["tables"], ["labels", "workers"], ["history", "raw_images"]):
        proc = run_cli(*argv, params=params, env={"SLUICE_ROLE": "analyst"})
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"$SLUICE_ROLE is 'analyst', and `sluice {argv[0]}` reads the lake without applying roles" in proc.stderr
    for argv in (["sql", "select 1"], ["duplicates"]):  # they apply the role themselves
        assert "applying roles" not in run_cli(*argv, params=params, env={"SLUICE_ROLE": "analyst"}).stderr
    assert run_cli("tables", params=params, env={"SLUICE_ROLE": ""}).returncode == 0
