import json

import pytest

from sluice import sql
from sluice.errors import InputError

from tests.sluice.test_catalog import raw_rows


@pytest.fixture
def filled(lake):
    lake.merge_insert("raw_images", raw_rows(range(4), source="a"))
    lake.merge_insert("raw_images", raw_rows(range(4, 10), source="b"))
    return lake


def test_every_table_is_a_view_under_its_name(filled):
    con = sql.connect(filled)
    rows = con.execute("select source, count(*) from raw_images group by 1 order by 1").fetchall()
    assert rows == [("a", 4), ("b", 6)]


def test_time_travel_by_version(filled):
    first = filled.version("raw_images") - 1
    assert sql.query("select count(*) n from raw_images", filled, {"raw_images": first}).to_pylist() == [{"n": 4}]


def test_uses_native_delta_scan_for_local_lakes(filled):
    plan = sql.connect(filled).execute("explain select count(*) from raw_images").fetchall()
    assert "DELTA_SCAN" in str(plan).upper() or sql._delta_extension() is None


@pytest.mark.parametrize("statement", ["DELETE FROM raw_images", "  drop table raw_images", "COPY raw_images TO 'x.csv'"])
def test_read_only(filled, statement):
    with pytest.raises(InputError, match="read-only"):
        sql.query(statement, filled)


def test_a_refusal_names_the_statement_as_written(filled):
    """DuckDB files INSTALL under LOAD, and answers a query nested too deep with a hint to SET a limit, a statement
    sluice sql refuses: the message names INSTALL, and drops the hint."""
    with pytest.raises(InputError, match="read-only: INSTALL statements are not allowed"):
        sql.query("install httpfs", filled)
    with pytest.raises(InputError, match="read-only: LOAD statements are not allowed"):
        sql.query("  load httpfs", filled)
    with pytest.raises(InputError) as err:
        sql.query("select " + "abs(" * 1200 + "1" + ")" * 1200, filled)
    assert "Max expression depth limit" in str(err.value) and "SET" not in str(err.value)


def test_a_catalog_table_not_written_yet_is_named_as_such(filled):
    """`select * from quarantine` in a lake where nothing was quarantined: said so, not DuckDB's bare catalog error."""
    with pytest.raises(InputError, match=r"table 'quarantine' is not in the lake yet: no stage has written to it"):
        sql.query("select * from quarantine", filled)
    with pytest.raises(InputError, match="query failed: Catalog Error: Table with name nope does not exist"):
        sql.query("select * from nope", filled)


def test_bad_sql_and_bad_pins(filled):
    with pytest.raises(InputError, match="query failed: .*nope"):
        sql.query("select nope from raw_images", filled)
    with pytest.raises(InputError, match="expected TABLE=VERSION"):
        sql.parse_pins(["raw_images"])
    with pytest.raises(InputError, match="expected TABLE=@N"):
        sql.parse_pins(["raw_images=@x"])
    assert sql.parse_pins(["raw_images=3", "labels=@4"]) == {"raw_images": 3, "labels": 4}
    with pytest.raises(InputError, match="unknown table 'rawimages'"):
        sql.connect(filled, {"rawimages": 1})


def test_cli_sql_formats(run_cli, filled, tmp_path):
    params = {"lake": {"root": filled.root}}
    out = run_cli("sql", "select source, count(*) as n from raw_images group by 1 order by 1", params=params)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["source", "n"] and "(2 rows)" in out.stdout
    out = run_cli("sql", "select source, count(*) as n from raw_images group by 1 order by 1", "--format", "json", params=params)
    assert json.loads(out.stdout) == [{"source": "a", "n": 4}, {"source": "b", "n": 6}]  # json: one array
    out = run_cli("sql", "select source, count(*) as n from raw_images group by 1 order by 1", "--format", "jsonl", params=params)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [{"source": "a", "n": 4}, {"source": "b", "n": 6}]
    out = run_cli("sql", "select image_id, content from raw_images limit 1", "--format", "csv", params=params)
    assert out.stdout.splitlines()[0] == '"image_id","content"' and "<2 bytes>" in out.stdout
    target = tmp_path / "o.parquet"
    out = run_cli("sql", "select * from raw_images", "--format", "parquet", "-o", str(target), params=params)
    assert out.returncode == 0 and target.stat().st_size > 0
    out = run_cli("sql", "select * from raw_images", "--format", "parquet", params=params)
    assert out.returncode == 2 and "needs --output" in out.stderr


def test_cli_tables_and_history(run_cli, filled):
    params = {"lake": {"root": filled.root}}
    out = run_cli("tables", params=params)
    line = next(l for l in out.stdout.splitlines() if l.startswith("raw_images"))
    assert line.split()[:4] == ["raw_images", "bronze", "10", "2"]
    out = run_cli("history", "raw_images", params=params)
    assert out.returncode == 0 and "merge_insert" in out.stdout
    out = run_cli("history", "labels", params=params)
    assert out.returncode == 2 and "does not exist yet" in out.stderr


# ------------------------------------------------------------------------------------ sandbox (issue 15.1)
@pytest.mark.parametrize("statement", [
    "select 1; COPY (select 42) TO '{tmp}/x.csv'",
    "/* harmless */ COPY (select 42) TO '{tmp}/x.csv'",
    "-- a comment\nCOPY (select 42) TO '{tmp}/x.csv'",
    "ATTACH '{tmp}/evil.db' AS evil",
    "EXPLAIN ANALYZE COPY (select 42) TO '{tmp}/x.csv'",
    "COPY (select 42) TO '{lake}/raw_images/_delta_log/00000000000000000099.json'",
    "select 1; select 2",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "CALL pragma_version()",
])
def test_only_one_read_statement_is_run(filled, tmp_path, statement):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(InputError, match="read-only|exactly one statement"):
        sql.query(statement.format(tmp=tmp_path, lake=filled.root), filled)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("statement", [
    "select * from read_csv('/etc/passwd')",
    "select * from read_blob('/etc/hostname')",
    "select * from read_text('/etc/hostname')",
    "select * from glob('/etc/*')",
])
def test_files_outside_the_lake_cannot_be_read(filled, statement):
    with pytest.raises(InputError, match="query failed: .*(Permission|disabled)"):
        sql.query(statement, filled)


@pytest.mark.parametrize("statement", ["with a as (select 1 x) select * from a", "describe raw_images",
                                       "show tables", "explain select count(*) from raw_images",
                                       "summarize raw_images", "from raw_images limit 1"])
def test_read_statements_are_allowed(filled, statement):
    assert sql.query(statement, filled).num_rows >= 1


def test_the_python_connection_is_sandboxed_too(filled, tmp_path):
    import duckdb

    con = sql.connect(filled)
    assert con.execute("select count(*) from raw_images").fetchone() == (10,)
    assert con.execute(f"select count(*) from delta_scan('{filled.uri('raw_images')}')").fetchone() == (10,)
    for statement in ("select * from read_csv('/etc/passwd')", f"COPY (select 1) TO '{tmp_path}/x.csv'",
                      "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    assert not (tmp_path / "x.csv").exists()


def test_cli_refuses_a_hidden_write_in_one_line(run_cli, filled, tmp_path):
    out = run_cli("sql", f"select 1; COPY (select 42) TO '{tmp_path}/x.csv'", params={"lake": {"root": filled.root}})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "exactly one statement" in out.stderr and not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------------------------ one output contract (issue 22)
def test_tables_and_history_share_the_output_contract(run_cli, filled, tmp_path):
    params = {"lake": {"root": filled.root}}
    out = run_cli("tables", "--format", "json", params=params)
    rows = {r["table"]: r for r in json.loads(out.stdout)}
    assert rows["raw_images"]["rows"] == 10 and rows["labels"]["rows"] is None
    out = run_cli("history", "raw_images", "--format", "jsonl", params=params)
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["version"] for e in entries][:2] == [2, 1] and json.loads(entries[0]["metrics"])  # exact, not cut
    out = run_cli("history", "raw_images", params=params)
    assert "…" in out.stdout  # long cells are visibly cut in table format
    target = tmp_path / "t.csv"
    out = run_cli("tables", "--format", "csv", "-o", str(target), params=params)
    assert out.stdout == "" and target.read_text().splitlines()[0].startswith('"table","layer","rows"')


# ------------------------------------------------------------------------------------ one way to name a version
def test_a_git_ref_names_the_table_versions_its_manifest_recorded(run_cli, filled, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "data/manifests").mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    import yaml

    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"export": {"cmd": "x", "outs": [
        {"path": "data/dataset", "md5": "0" * 32 + ".dir"}]}}}))
    (repo / "data/manifests/export.json").write_text(json.dumps({"table_versions": {"raw_images": 1}}))
    git("add", "-A")
    git("commit", "-qm", "v1")
    git("tag", "v1")
    params = {"lake": {"root": filled.root}}
    count = "select count(*) as n from raw_images"
    for pin in ("raw_images=v1", "v1", "raw_images=@1", "raw_images=1"):
        out = run_cli("sql", count, "--at", pin, "--format", "json", params=params, cwd=repo)
        assert json.loads(out.stdout) == [{"n": 4}], (pin, out.stderr)
    out = run_cli("sql", count, "--at", "labels=v1", params=params, cwd=repo)
    assert out.returncode == 2 and "recorded no version of 'labels'" in out.stderr
    out = run_cli("sql", count, "--at", "raw_images=v9", params=params, cwd=repo)
    assert out.returncode == 2 and "unknown version 'v9'" in out.stderr
