"""Manifests carry their lake's identity; stages refuse to build on another lake's manifests."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sluice.errors import InputError
from sluice.lake import Lake
from sluice.runs import LAKE_ID_FILE, check_upstream, lake_identity, read_manifest, write_manifest


def test_manifest_records_a_stable_lake_id(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert lake_identity(lake)["id"] is None  # nothing written yet, nothing created by reading
    path = write_manifest("clean", {"rows": 1}, tmp_path / "m", lake)
    first = json.loads(path.read_text())["lake"]
    assert first["id"] and first["root"] == lake.root and (tmp_path / "lake" / LAKE_ID_FILE).is_file()
    write_manifest("dedup", {}, tmp_path / "m", lake)
    assert json.loads((tmp_path / "m" / "dedup.json").read_text())["lake"] == first
    other = Lake(str(tmp_path / "other"))
    write_manifest("clean", {}, tmp_path / "n", other)
    assert lake_identity(other)["id"] != first["id"]
    assert Lake("s3://bucket/lake") and lake_identity(Lake("s3://bucket/lake"))["id"] == "s3://bucket/lake"


def test_a_manifest_from_another_lake_is_refused(tmp_path):
    demo, mine = Lake(str(tmp_path / "demo")), Lake(str(tmp_path / "mine"))
    write_manifest("dataset", {"normalize": {"mean": [0.266] * 3}}, tmp_path / "m", demo)
    assert read_manifest("dataset", demo, tmp_path / "m")["normalize"]
    with pytest.raises(InputError, match="written for the lake at .*demo.* not the lake at .*mine"):
        read_manifest("dataset", mine, tmp_path / "m")
    with pytest.raises(InputError, match="dataset.json: written for the lake"):
        check_upstream("export", mine, tmp_path / "m")
    with pytest.raises(InputError):  # a stage whose upstream is foreign writes no manifest either
        write_manifest("export", {}, tmp_path / "m", mine)
    assert not (tmp_path / "m" / "export.json").exists()
    check_upstream("ingest_public", mine, tmp_path / "m")  # no upstream manifest: nothing to check
    (tmp_path / "m" / "legacy.json").write_text("{}")
    assert read_manifest("legacy", mine, tmp_path / "m") == {}  # written before manifests had a lake id


def test_stats_from_another_dataset_version_are_refused(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    row = {"image_id": "a", "split": "train", "class_index": 0, "label": "x", "weight": 1.0, "dup_group": "a", "run_id": "r"}
    from sluice.catalog import spec

    schema = spec("dataset").schema
    lake.append("dataset", pa.table({f.name: pa.array([row.get(f.name)], f.type) for f in schema}))
    version = lake.version("dataset")
    body = {"normalize": {"mean": [0.5] * 3}, "versions": {"dataset": version}}
    write_manifest("dataset", body, tmp_path / "m", lake)
    check_upstream("export", lake, tmp_path / "m")
    write_manifest("dataset", {**body, "versions": {"dataset": version - 1}}, tmp_path / "m", lake)
    with pytest.raises(InputError, match=f"computed from dataset version {version - 1}.*at version {version}"):
        check_upstream("export", lake, tmp_path / "m")


def test_export_stage_refuses_the_demo_manifest_with_one_line(run_cli, tmp_path):
    """The issue's case: stages run against another lake from the demo's folder must not mix them."""
    demo = Lake(str(tmp_path / "demo-lake"))
    write_manifest("dataset", {"normalize": {"mean": [0.266] * 3, "std": [0.285] * 3}, "versions": {"dataset": 0}},
                   tmp_path / "manifests", demo)
    params = {"lake": {"root": str(tmp_path / "photos-lake")},
              "paths": {"manifests": str(tmp_path / "manifests"), "dataset": str(tmp_path / "snap")}}
    res = run_cli(module="transform.export", params=params)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset.json: written for the lake at" in lines[0] and "demo-lake" in lines[0]
    assert not (tmp_path / "snap").exists()
