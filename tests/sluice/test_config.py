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
    with pytest.raises(ConfigError, match=r"unknown key 'ingest.batch_rowz'.*allowed keys in ingest: batch_rows"):
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


def test_paths_section_is_the_one_place_for_the_snapshot_and_manifests():
    from sluice.config import parse_params

    p = parse_params({"paths": {"dataset": "out/snap", "manifests": "out/m"}})
    assert p.train.snapshot == p.export.out_dir == p.compress.snapshot == p.quality.snapshot_dir == "out/snap"
    assert p.quality.manifests_dir == "out/m"
    assert parse_params({"paths": {"dataset": "a"}, "train": {"snapshot": "b"}}).train.snapshot == "b"  # override
    assert parse_params({}).train.snapshot == "data/dataset"
