"""Fixtures for the transform stages: a demo lake, a shared LocalCluster, a stand-in labels table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from sluice.config import parse_params
from sluice.lake import Lake

REPO = Path(__file__).resolve().parents[2]


def given_labels(lake: Lake, run_id: str = "test-labels") -> pa.Table:
    """``labels`` from the sources' own labels (what the labels stage does with no crowd votes).

    An image whose raw rows disagree gets status ``conflict``, like the real stage reports it.
    """
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_label"]))
    per = raw.group_by("image_id").agg(pl.col("source_label").drop_nulls().unique().sort().alias("labels"))
    n = pl.col("labels").list.len()
    table = per.select(
        "image_id", item=pl.col("image_id"),
        label=pl.when(n == 1).then(pl.col("labels").list.first()),
        label_source=pl.lit("given"), confidence=pl.when(n == 1).then(1.0),
        votes=pl.lit(0, pl.Int32), agreement=pl.lit(None, pl.Float64),
        status=pl.when(n == 1).then(pl.lit("resolved")).when(n == 0).then(pl.lit("unresolved")).otherwise(pl.lit("conflict")),
        reason=pl.lit(None, pl.String), run_id=pl.lit(run_id),
    ).sort("image_id").to_arrow()
    lake.overwrite("labels", table)
    return table


@pytest.fixture(scope="session")
def dask_cluster():
    """One two-worker LocalCluster for the whole session (starting one costs seconds)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="1GiB")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The built-in demo, built once per session (the repo's data/demo is never touched)."""
    from demo.generate import build_demo
    from sluice.config import DemoParams

    out = tmp_path_factory.mktemp("demo") / "demo"
    build_demo(DemoParams(), str(out))
    return out


def demo_params(demo: Path, lake_root: Path, **sections):
    raw = {"lake": {"root": str(lake_root)}, "compute": {"n_workers": 2},
           "ingest": {"sources": [
               {"name": "demo-folder", "kind": "image_folder", "path": str(demo / "folder")},
               {"name": "demo-cifar", "kind": "cifar", "path": str(demo / "cifar")},
               {"name": "demo-parquet", "kind": "parquet", "path": str(demo / "parquet"), "split_column": "split"}]}}
    raw.update(sections)
    return parse_params(raw, "test-params.yaml")


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory, demo_dir, dask_cluster):
    """The demo ingested, cleaned and deduplicated once; tests copy it before changing anything."""
    from ingest.public import run as ingest
    from transform.clean import run as clean
    from transform.dedup import run as dedup

    root = tmp_path_factory.mktemp("demo_lake") / "lake"
    params = demo_params(demo_dir, root)
    ingest(params)
    clean(params, dask_cluster)
    dedup(params)
    given_labels(Lake(str(root)))
    return root


@pytest.fixture
def demo_copy(tmp_path, demo_lake):
    """A private copy of the demo lake (Delta tables are plain folders)."""
    root = tmp_path / "lake"
    shutil.copytree(demo_lake, root)
    return root


@pytest.fixture(scope="session")
def demo_truth(demo_dir) -> dict:
    return json.loads((demo_dir / "ground_truth.json").read_text())


@pytest.fixture
def write_given_labels():
    return given_labels


@pytest.fixture
def demo_params_for():
    return demo_params
