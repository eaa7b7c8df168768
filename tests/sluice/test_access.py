"""Roles: a role without `content` cannot read it through any query shape, in `sluice sql`, the shell,
`sluice.connect()` and `sluice.table()`; unknown roles and bad role params are one line."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess

import pyarrow as pa
import pytest
import yaml

import sluice
from sluice import access, shell, sql
from sluice.config import load_params, parse_params
from sluice.errors import ConfigError, InputError
from tests.sluice.test_catalog import raw_rows

ROLES = {"analyst": {"tables": ["raw_images", "crowd_votes"], "deny_columns": ["content"],
                     "mask_columns": ["worker_id"]},
         "labeller": {"tables": ["crowd_votes"]}}


@pytest.fixture
def lake_with_votes(lake):
    lake.merge_insert("raw_images", raw_rows(range(4), source="a"))
    n = 3
    lake.merge_insert("crowd_votes", pa.table({
        "vote_id": [f"v{i}" for i in range(n)], "item_ref": ["x"] * n, "item": ["x"] * n, "item_key": ["auto"] * n,
        "worker_id": ["w1", "w2", "w1"], "label": ["cat"] * n, "status": ["approved"] * n,
        "submitted_at": [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * n, "source_file": ["v.csv"] * n,
        "source_format": ["csv"] * n, "run_id": ["r"] * n}))
    return lake


@pytest.fixture
def params(lake_with_votes, tmp_path, monkeypatch):
    raw = {"lake": {"root": lake_with_votes.root}, "access": {"roles": ROLES}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SLUICE_PARAMS", str(path))
    monkeypatch.delenv("SLUICE_ROLE", raising=False)
    load_params.cache_clear()
    yield raw
    load_params.cache_clear()


def analyst():
    return access.resolve("analyst")


def test_views_hold_only_the_roles_tables_and_columns(params, lake_with_votes):
    con = sql.connect(lake_with_votes, role=analyst())
    assert sorted(r[0] for r in con.execute("show tables").fetchall()) == ["crowd_votes", "raw_images"]
    assert "content" not in [r[0] for r in con.execute("describe raw_images").fetchall()]
    assert con.execute("select count(*) from raw_images").fetchone() == (4,)
    masked = [r[0] for r in con.execute("select worker_id from crowd_votes order by vote_id").fetchall()]
    assert masked == [hashlib.sha256(w.encode()).hexdigest() for w in ["w1", "w2", "w1"]]
    assert con.execute("select count(distinct worker_id) from crowd_votes").fetchone() == (2,)  # joins/counts still work
    # no name reaches around the views: no other table, view or registered dataset
    objects = con.execute("select table_name from duckdb_tables() union all "
                          "select view_name from duckdb_views() where not internal").fetchall()
    assert sorted(r[0] for r in objects) == ["crowd_votes", "raw_images"]


def test_no_query_shape_reads_a_denied_column(params, lake_with_votes):
    role = analyst()
    root = lake_with_votes.root
    shapes = [
        "select content from raw_images",
        "select r.content from raw_images r",
        "select length(content) from raw_images",
        "select * from (select content from raw_images)",
        "with x as (select * from raw_images) select content from x",
        "select image_id from raw_images where content is not null",
        "select * from images",  # a table the role does not see
        "describe images",
        "select * from raw_images, images",
        f"select content from delta_scan('{root}/raw_images')",
        f"select content from read_parquet('{root}/raw_images/*.parquet')",
        f"select * from read_blob('{root}/raw_images/*.parquet')",
        f"select * from glob('{root}/*')",
        "select * from query_table('images')",
    ]
    for shape in shapes:
        with pytest.raises(InputError, match="role 'analyst'") as err:
            sql.query(shape, lake_with_votes, role=role)
        assert "\n" not in str(err.value), shape
    for shape in ["select * from raw_images", "select * exclude (source) from raw_images", "from raw_images"]:
        result = sql.query(shape, lake_with_votes, role=role)
        assert result.num_rows == 4 and "content" not in result.column_names, shape
    summary = sql.query("summarize raw_images", lake_with_votes, role=role)
    assert "content" not in summary.column("column_name").to_pylist()


def test_pinned_versions_and_denied_pins(params, lake_with_votes):
    role = analyst()
    for version, rows in [(0, 0), (1, 4)]:  # 0: the empty table create wrote
        assert sql.query("select count(*) n from raw_images", lake_with_votes, {"raw_images": version}, role).to_pylist() == [{"n": rows}]
    with pytest.raises(InputError, match="role 'analyst' may not read table 'images'"):
        sql.connect(lake_with_votes, {"images": 0}, role)


def test_python_api_and_env(params, monkeypatch):
    con = sluice.connect(role="analyst")
    assert con.execute("select count(*) from raw_images").fetchone() == (4,)
    table = sluice.table("raw_images", role="analyst", to="arrow")
    assert table.num_rows == 4 and "content" not in table.column_names
    assert sluice.table("crowd_votes", role="analyst").get_column("worker_id")[0] != "w1"
    with pytest.raises(InputError, match="role 'labeller' may not read table 'raw_images'"):
        sluice.table("raw_images", role="labeller")
    monkeypatch.setenv("SLUICE_ROLE", "labeller")
    assert [r[0] for r in sluice.connect().execute("show tables").fetchall()] == ["crowd_votes"]
    with pytest.raises(InputError, match="role 'labeller'"):
        sluice.table("raw_images")
    assert "content" in sluice.table("raw_images", role="", to="arrow").column_names  # "" = full access
    with pytest.raises(InputError, match="unknown role 'nobody'; roles in params access.roles: analyst, labeller"):
        sluice.connect(role="nobody")


def test_role_params_are_checked():
    with pytest.raises(ConfigError, match="unknown key 'access.roles.a.colums'"):
        parse_params({"access": {"roles": {"a": {"colums": []}}}})
    for role, message in [({"tables": ["imgs"]}, "access.roles.a.tables: unknown table 'imgs'"),
                          ({"deny_columns": ["contnet"]}, "access.roles.a.deny_columns: unknown column 'contnet'"),
                          ({"mask_columns": ["images.worker_id"]}, "unknown column 'images.worker_id'"),
                          ({"deny_columns": ["content"], "mask_columns": ["raw_images.content"]}, "both denied and masked")]:
        with pytest.raises(ConfigError, match=message):
            access.resolve("b", parse_params({"access": {"roles": {"a": role, "b": {}}}}))
    assert access.resolve(None, parse_params({})) is None
    with pytest.raises(InputError, match="params define no roles"):
        access.resolve("x", parse_params({}))


def test_cli_role(run_cli, params):
    out = run_cli("sql", "select count(*) as n from raw_images", "--role", "analyst", "--format", "csv", params=params)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['"n"', "4"]
    out = run_cli("sql", "select content from raw_images", "--role", "analyst", params=params)
    assert out.returncode == 2 and out.stderr.strip() == "sluice: error: role 'analyst' may not read column 'content'"
    out = run_cli("sql", "select * from raw_images", params=params, env={"SLUICE_ROLE": "labeller"})
    assert out.returncode == 2 and "role 'labeller' may not read table 'raw_images'" in out.stderr
    out = run_cli("sql", "select 1", "--role", "boss", params=params)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "unknown role 'boss'" in out.stderr


def test_shell_with_a_role_is_the_enforcing_prompt(params, tmp_path):
    import os
    import sys

    queries = "select count(*) as n from raw_images\nselect content from raw_images\n"
    out = subprocess.run([sys.executable, "-m", "sluice.cli", "shell", "--role", "analyst"], input=queries, text=True,
                         capture_output=True, cwd=tmp_path, env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "role 'analyst'" in out.stderr and "may not read column 'content'" in out.stderr
    assert "4" in out.stdout


def test_duckdb_init_with_a_role(run_cli, params, tmp_path, lake_with_votes):
    out = run_cli("duckdb-init", "--role", "analyst", params=params)
    assert out.returncode == 0, out.stderr
    assert "file permissions" in out.stderr and "images AS" not in out.stdout.replace("raw_images AS", "")
    assert f"'{lake_with_votes.root}/raw_images/'" in out.stdout and f"'{lake_with_votes.root}/'" not in out.stdout
    binary = shell.duckdb_binary()
    if binary is None:
        pytest.skip("the duckdb-cli package is not installed")
    script = tmp_path / "lake.sql"
    script.write_text(out.stdout)
    got = subprocess.run([binary, "-csv", "-init", str(script), "-c", "select count(*) n, max(length(worker_id)) "
                          "from crowd_votes"], capture_output=True, text=True, timeout=120)
    assert got.stdout.split()[-1] == "3,64", got.stderr
    got = subprocess.run([binary, "-init", str(script), "-c", f"select * from delta_scan('{lake_with_votes.root}/images')"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode != 0 or "Permission" in got.stderr + got.stdout
