"""kill -9 during ingest, clean and export at random points; the rerun gives exactly an unkilled run's output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from PIL import Image

from sluice.lake import Lake
from tests.faults.conftest import RUNS, files, kill9_when, run, start, timed

pytestmark = pytest.mark.slow
N_IMAGES = 240


def _images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = folder / ("cat" if i % 2 else "dog")
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(cls / f"{i:04d}.png")


def _params(path: Path, root: Path, images: Path, **sections) -> Path:
    raw = {"lake": {"root": str(root)}, "compute": {"n_workers": 1},
           "ingest": {"batch_rows": 12, "sources": [{"name": "pics", "kind": "image_folder", "path": str(images)}]},
           **sections}
    path.write_text(yaml.safe_dump(raw))
    return path


def _landed(root: Path) -> int:
    lake = Lake(str(root))
    return lake.count("raw_images") if lake.exists("raw_images") else 0


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """The image folder ingested once (for clean); also the unkilled ingest's duration."""
    tmp = tmp_path_factory.mktemp("landed")
    _images(tmp / "imgs", N_IMAGES)
    params = _params(tmp / "params.yaml", tmp / "lake", tmp / "imgs")
    result, seconds = timed(["-m", "sluice.cli", "ingest"], tmp, params)
    assert result.returncode == 0, result.stderr
    return {"dir": tmp, "lake": tmp / "lake", "images": tmp / "imgs", "seconds": seconds}


def test_kill9_during_ingest(tmp_path, landed, faults, rng):
    assert _landed(landed["lake"]) == N_IMAGES
    for i in range(RUNS):
        root = tmp_path / f"lake{i}"
        params = _params(tmp_path / f"p{i}.yaml", root, landed["images"])
        log = root / "raw_images/_delta_log"
        after = rng.randint(1, N_IMAGES // 12 - 2)  # killed after a random commit of 20 (+ its next write)
        killed = kill9_when(start(["-m", "sluice.cli", "ingest"], tmp_path, params),
                            lambda: files(log, "*.json") >= after)
        before = _landed(root)
        rerun = run(["-m", "sluice.cli", "ingest"], tmp_path, params)
        rows = Lake(str(root)).read("raw_images", columns=["image_id", "source_uri"])
        distinct = len(set(rows.column("source_uri").to_pylist()))
        faults.add(N_IMAGES, rows.num_rows, rerun.returncode == 0 and rows.num_rows == distinct == N_IMAGES,
                   f"killed at {before} rows" if killed else "ended before the kill")
    faults.check()


def _silver(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    lake = Lake(str(root))
    images = pl.from_arrow(lake.read("images")).drop("run_id").sort("image_id")
    quarantine = pl.from_arrow(lake.read("quarantine", columns=["row_key", "stage", "reason"])).sort("row_key") \
        if lake.exists("quarantine") else pl.DataFrame()
    return images, quarantine


def test_kill9_during_clean(tmp_path, landed, faults, rng):
    def prepared(name: str) -> tuple[Path, Path]:
        root = tmp_path / name / "lake"
        shutil.copytree(landed["lake"], root)
        return root, _params(tmp_path / f"{name}.yaml", root, landed["images"],
                             clean={"batch_images": 8, "write_rows": 16})

    root, params = prepared("reference")
    (tmp_path / "reference").mkdir(exist_ok=True)
    result, _ = timed(["-m", "transform.clean"], tmp_path / "reference", params)
    assert result.returncode == 0, result.stderr
    images, quarantine = _silver(root)
    for i in range(RUNS):
        root, params = prepared(f"killed{i}")
        log, after = root / "images/_delta_log", rng.randint(1, N_IMAGES // 16 - 2)
        killed = kill9_when(start(["-m", "transform.clean"], tmp_path / f"killed{i}", params),
                            lambda: files(log, "*.json") >= after)
        at = Lake(str(root)).count("images") if killed else None
        rerun = run(["-m", "transform.clean"], tmp_path / f"killed{i}", params)
        got, got_q = _silver(root) if rerun.returncode == 0 else (pl.DataFrame(), pl.DataFrame())
        faults.add(images.height, got.height, rerun.returncode == 0 and got.equals(images) and got_q.equals(quarantine),
                   f"killed at {at} rows" if killed else "ended before the kill")
    faults.check()


def _gold(root: Path) -> None:
    from demo.generate import digit_images
    from tests.transform.test_export import dataset_rows, image_rows, put_images

    images, labels = digit_images(0)
    lake = Lake(str(root))
    rows = image_rows(images)
    put_images(lake, rows)
    lake.overwrite("dataset", dataset_rows(rows.column("image_id").to_pylist(), labels))


def _snapshot(folder: Path) -> tuple[int, str, bool]:
    from sluice.snapshot import read_manifest, verify

    manifest = read_manifest(folder)
    return sum(s["rows"] for s in manifest["splits"].values()), manifest["content_hash"], verify(folder)[0]


def test_kill9_during_export(tmp_path, faults, rng):
    root = tmp_path / "lake"
    _gold(root)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"lake": {"root": str(root)}, "export": {"out_dir": "snap", "shard_rows": 64}}))
    (tmp_path / "reference").mkdir()
    result, _ = timed(["-m", "transform.export"], tmp_path / "reference", params)
    assert result.returncode == 0, result.stderr
    rows, content_hash, _ = _snapshot(tmp_path / "reference/snap")
    for i in range(RUNS):
        cwd = tmp_path / f"killed{i}"
        cwd.mkdir()
        after = rng.randint(1, 60)  # 29 train shards of 64 rows, 3 files each
        killed = kill9_when(start(["-m", "transform.export"], cwd, params), lambda: files(cwd / "snap") >= after)
        partial = sorted(p.name for p in (cwd / "snap").glob("*")) if (cwd / "snap").exists() else []
        rerun = run(["-m", "transform.export"], cwd, params)
        got, got_hash, verified = _snapshot(cwd / "snap") if rerun.returncode == 0 else (0, "", False)
        faults.add(rows, got, rerun.returncode == 0 and got_hash == content_hash and verified,
                   (f"killed with {len(partial)} file(s) written" if killed else "ended before the kill"))
    faults.check()
