"""The lake from DuckDB's own tools: the stock CLI through `sluice duckdb-init`, and `sluice shell`."""

from __future__ import annotations

import io
import subprocess

import pytest

from sluice import shell
from sluice.config import load_params
from tests.sluice.test_sql import filled  # noqa: F401  (fixture)

COUNT = "select source, count(*) as n from raw_images group by 1 order by 1"


@pytest.fixture
def params(filled, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "params.yaml"
    path.write_text(f"lake:\n  root: {filled.root}\n")
    monkeypatch.setenv("SLUICE_PARAMS", str(path))
    load_params.cache_clear()
    yield {"lake": {"root": filled.root}}
    load_params.cache_clear()


def test_the_stock_duckdb_cli_reads_the_init_script_offline(run_cli, params, tmp_path):
    binary = shell.duckdb_binary()
    if binary is None:
        pytest.skip("the duckdb-cli package is not installed")
    out = run_cli("duckdb-init", params=params)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "lake.sql"
    script.write_text(out.stdout)
    assert "INSTALL" not in out.stdout and "enable_external_access = false" in out.stdout
    got = subprocess.run([binary, "-csv", "-init", str(script), "-c", COUNT], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["source,n", "a,4", "b,6"]
    refused = subprocess.run([binary, "-init", str(script), "-c", "select * from read_csv('/etc/passwd')"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "disabled by configuration" in refused.stdout + refused.stderr
    loose = run_cli("duckdb-init", "--allow-files", "--at", "raw_images=@1", params=params)
    assert "enable_external_access" not in loose.stdout and "(TYPE delta, VERSION 1)" in loose.stdout


def test_sluice_shell_runs_the_duckdb_cli_with_every_table(run_cli, params):
    if shell.duckdb_binary() is None:
        pytest.skip("the duckdb-cli package is not installed")
    import os
    import sys

    env = {**os.environ, "SLUICE_PARAMS": os.environ["SLUICE_PARAMS"]}
    got = subprocess.run([sys.executable, "-m", "sluice.cli", "shell"], input=f"{COUNT};\n", capture_output=True,
                         text=True, timeout=120, env=env)
    assert got.returncode == 0, got.stderr
    assert "a" in got.stdout and "4" in got.stdout and "6" in got.stdout


def test_the_fallback_prompt_is_the_sandboxed_connection(params, monkeypatch, capsys):
    monkeypatch.setattr(shell, "duckdb_binary", lambda: None)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{COUNT}\nselect 1; select 2\nselect * from read_csv('/etc/passwd')\n"))
    args = shell_args()
    assert shell._shell(args) == 0
    out, err = capsys.readouterr()
    assert "(2 rows)" in out and "exactly one statement" in err and "disabled by configuration" in err


def shell_args(**kw):
    import argparse

    return argparse.Namespace(at=None, allow_files=False, role=None, **kw)
