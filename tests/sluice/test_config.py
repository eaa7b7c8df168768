import pytest

from sluice.config import load_params_file, parse_params
from sluice.errors import ConfigError


def test_repo_params_file_is_valid():
    params = load_params_file("params.yaml")
    assert params.lake.root == "lake"
    assert {s.kind for s in params.ingest.sources} == {"image_folder", "cifar", "parquet"}


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key 'ingset'") as err:
        parse_params({"ingset": {}}, "p.yaml")
    assert "p.yaml" in str(err.value) and "ingest" in str(err.value)  # lists what is allowed


def test_unknown_nested_key_is_named_with_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'ingest.batch_rowz'.*allowed keys in ingest: batch_bytes, batch_rows, max_file_bytes, sources"):
        parse_params({"ingest": {"batch_rowz": 5}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"ingest.batch_rows: .*got 'many'"):
        parse_params({"ingest": {"batch_rows": "many"}})


def test_unknown_key_inside_a_source_is_named():
    with pytest.raises(ConfigError, match=r"ingest.sources.0.image_col"):
        parse_params({"ingest": {"sources": [{"name": "x", "kind": "parquet", "path": "p", "image_col": "img"}]}})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lake: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*not valid YAML"):
        load_params_file(bad)


def test_environment_overrides_deployment_settings(monkeypatch):
    monkeypatch.setenv("SLUICE_LAKE_ROOT", "s3://bucket/lake")
    monkeypatch.setenv("SLUICE_STORAGE_OPTIONS", '{"AWS_REGION": "eu-west-1"}')
    monkeypatch.setenv("SLUICE_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    params = parse_params({})
    assert params.lake.root == "s3://bucket/lake"
    assert params.lake.storage_options == {"AWS_REGION": "eu-west-1"}
    assert params.compute.scheduler_address == "tcp://127.0.0.1:8786"
    monkeypatch.setenv("SLUICE_STORAGE_OPTIONS", "not json")
    with pytest.raises(ConfigError, match="SLUICE_STORAGE_OPTIONS"):
        parse_params({})


def test_cli_reports_config_error_in_one_line_with_exit_2(run_cli):
    result = run_cli("tables", params={"lake": {"root": "lake", "retries": 3}})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'lake.retries'" in lines[0] and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------ strict params (issue 15.8)
def test_duplicate_keys_are_named_with_their_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("ingest:\n  batch_rows: 10\nlake:\n  root: lake\ningest:\n  batch_rows: 20\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 5: duplicate key 'ingest' \(first on line 1\)"):
        load_params_file(path)
    path.write_text("lake:\n  root: a\n  root: b\n")
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'lake.root'"):
        load_params_file(path)


@pytest.mark.parametrize("raw, key", [
    ({"ingest": {"batch_rows": True}}, "ingest.batch_rows"),
    ({"seed": False}, "seed"),
    ({"train": {"lr": True}}, "train.lr"),
    ({"clean": {"background": [True, 0, 0]}}, "clean.background"),
    ({"ingest": {"sources": [{"name": "x", "kind": "parquet", "path": "p"}], "max_file_bytes": True}}, "ingest.max_file_bytes"),
])
def test_booleans_are_not_numbers(raw, key):
    with pytest.raises(ConfigError, match=rf"{key}: expected a number, got a boolean"):
        parse_params(raw)


def test_lake_root_must_be_a_folder_or_uri(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"lake.root: empty"):
        parse_params({"lake": {"root": ""}})
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=rf"lake.root: {afile} exists and is not a folder"):
        parse_params({"lake": {"root": str(afile)}})
    monkeypatch.setenv("SLUICE_LAKE_ROOT", str(afile))
    with pytest.raises(ConfigError, match=r"SLUICE_LAKE_ROOT: .* is not a folder"):
        parse_params({})
    monkeypatch.delenv("SLUICE_LAKE_ROOT")
    assert parse_params({"lake": {"root": "s3://bucket/lake"}}).lake.root == "s3://bucket/lake"
    assert parse_params({"lake": {"root": str(tmp_path / "new")}}).lake.root == str(tmp_path / "new")


def test_split_fractions_leave_room_for_train():
    with pytest.raises(ConfigError, match=r"dataset.val_fraction \+ dataset.test_fraction must be < 1 \(got 0.6 \+ 0.6"):
        parse_params({"dataset": {"val_fraction": 0.6, "test_fraction": 0.6}})
    assert parse_params({"dataset": {"val_fraction": 0.2, "test_fraction": 0.2}}).dataset.val_fraction == 0.2


def test_empty_params_file_is_one_clear_error(tmp_path, run_cli):
    path = tmp_path / "params.yaml"
    for text in ("", "# only a comment\n", "null\n"):
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"params.yaml: the file is empty"):
            load_params_file(path)
    result = run_cli("tables")
    assert result.returncode == 2 and "the file is empty" in result.stderr and len(result.stderr.splitlines()) == 1


def test_paths_section_is_the_one_place_for_the_snapshot_and_manifests():
    from sluice.config import parse_params

    p = parse_params({"paths": {"dataset": "out/snap", "manifests": "out/m"}})
    assert p.train.snapshot == p.export.out_dir == p.compress.snapshot == p.quality.snapshot_dir == "out/snap"
    assert p.quality.manifests_dir == "out/m"
    assert parse_params({"paths": {"dataset": "a"}, "train": {"snapshot": "b"}}).train.snapshot == "b"  # override
    assert parse_params({}).train.snapshot == "data/dataset"
