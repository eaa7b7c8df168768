"""A small, clean lake (every table of the catalog), stage manifests and a snapshot, built once and
copied per test, so each test can inject one defect and run a gate on real Delta tables."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sluice.config import parse_params
from sluice.imaging import Geometry, record_geometry
from sluice.lake import Lake
from sluice.runs import utcnow
from sluice.snapshot import SplitArrays, channel_stats, write_snapshot

CLASSES = ["cat", "dog", "fox"]
PER_CLASS = 8  # 5 train, 1 val, 2 test
SIZE = 32


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def build_world(root: Path) -> None:
    """Write the clean fixture under ``root``: lake/, manifests/, dataset/ (snapshot)."""
    rng = np.random.default_rng(0)
    lake = Lake(str(root / "lake"))
    now = utcnow()
    raw, images, labels, dataset = [], [], [], []
    for c, cls in enumerate(CLASSES):
        for k in range(PER_CLASS):
            split = "train" if k < 5 else "val" if k == 5 else "test"
            pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            content = _png(pixels)
            image_id = _sha(content)
            raw.append({"image_id": image_id, "content": content, "source": "fx",
                        "source_uri": f"fx/{'test' if split == 'test' else 'train'}/{cls}/{k}.png",
                        "source_label": cls, "split_hint": "test" if split == "test" else "train",
                        "license": "CC0", "extra": None, "fetched_at": now, "run_id": "ingest-fx"})
            images.append({"image_id": image_id, "width": SIZE, "height": SIZE, "mode": "RGB", "format": "PNG",
                           "pixels": pixels.tobytes(), "pixel_hash": _sha(pixels.tobytes()),
                           "phash": int(rng.integers(-2**62, 2**62)), "mean": float(pixels.mean()),
                           "std": float(pixels.std()), "dup_group": image_id, "is_canonical": True, "run_id": "clean-fx"})
            labels.append({"image_id": image_id, "item": image_id, "label": cls, "label_source": "given", "confidence": 0.95,
                           "votes": 3, "agreement": 1.0, "status": "resolved", "reason": None, "run_id": "labels-fx"})
            dataset.append({"image_id": image_id, "split": split, "label": cls, "class_index": c, "weight": 1.0,
                            "dup_group": image_id, "run_id": "dataset-fx"})
    # one near-duplicate pair inside train: the second joins the first's group
    images[1]["dup_group"] = dataset[1]["dup_group"] = images[0]["image_id"]
    images[1]["is_canonical"] = False
    votes = [{"vote_id": f"v{i}", "item_ref": r["source_uri"], "item": r["source_uri"], "item_key": "source_uri",
              "image_id": r["image_id"], "worker_id": f"w{i % 3}",
              "label": r["source_label"], "task_id": None, "status": "approved", "submitted_at": now,
              "source_file": "votes.csv", "source_format": "csv", "run_id": "crowd-fx"} for i, r in enumerate(raw)]
    annotators = [{"worker_id": "w0", "votes": 8, "accuracy": 0.95, "confusion": None, "is_spammer": False,
                   "is_adversarial": False, "run_id": "labels-fx"},
                  {"worker_id": "w1", "votes": 8, "accuracy": 0.85, "confusion": None, "is_spammer": False,
                   "is_adversarial": False, "run_id": "labels-fx"},
                  {"worker_id": "w2", "votes": 8, "accuracy": 0.34, "confusion": None, "is_spammer": True,
                   "is_adversarial": False, "run_id": "labels-fx"}]
    crawl = [{"url": f"http://127.0.0.1:8000/item/{i}", "status": 200, "bytes": 1000 + i, "referer": None,
              "robots": "allowed", "outcome": "image" if i else "page", "error": None, "fetched_at": now,
              "run_id": "crawl-fx"} for i in range(4)]
    groups = [{"image_id": r["image_id"], "dup_group": r["dup_group"], "is_canonical": r["is_canonical"],
               "match_kind": None if r["is_canonical"] else "near", "match_score": None, "match_with": None,
               "run_id": "dedup-fx"} for r in images]
    for name, rows in (("raw_images", raw), ("images", images), ("image_groups", groups), ("labels", labels),
                       ("dataset", dataset),
                       ("crowd_votes", votes), ("annotators", annotators), ("crawl_log", crawl)):
        lake.append(name, pa.Table.from_pylist(rows))
    record_geometry(lake, "images", Geometry(SIZE, SIZE, "squash"))  # as the clean stage does
    lake.append("quarantine", pa.Table.from_pylist([{
        "source_table": "source:fx", "row_key": "fx/train/cat/bad.png", "stage": "ingest", "check": "empty_file",
        "reason": "empty_file", "details": "0 bytes", "run_id": "ingest-fx", "quarantined_at": now}]))

    manifests = root / "manifests"
    manifests.mkdir()
    n = len(raw)
    bodies = {
        "ingest_public": {"sources": {"fx": {"seen": n + 1, "inserted": n, "already_present": 0, "quarantined": 1}}},
        "clean": {"reconcile": {"rows_in": n, "images": n, "quarantined": 0, "merged_same_bytes": 0}},
        "dedup": {"reconcile": {"rows_in": n, "canonical": n - 1, "merged_duplicates": 1}},
        "dataset": {"reconcile": {"rows_in": n, "dataset": n, "quarantined": 0}},
    }
    for stage, body in bodies.items():
        (manifests / f"{stage}.json").write_text(json.dumps(body))

    pixels = {r["image_id"]: np.frombuffer(r["pixels"], np.uint8).reshape(SIZE, SIZE, 3) for r in images}
    splits = {}
    for split in ("train", "val", "test"):
        rows = sorted((r for r in dataset if r["split"] == split), key=lambda r: r["image_id"])
        splits[split] = SplitArrays(np.stack([pixels[r["image_id"]] for r in rows]),
                                    np.array([r["class_index"] for r in rows], np.int64),
                                    np.ones(len(rows), np.float32), [r["image_id"] for r in rows])
    mean, std = channel_stats(splits["train"].images)
    write_snapshot(root / "dataset", splits, CLASSES, {"mean": mean, "std": std})


@dataclass
class World:
    root: Path
    lake: Lake
    raw: dict

    @property
    def params(self):
        return parse_params(self.raw, "test-params.yaml")

    def set(self, **quality) -> None:
        self.raw["quality"].update(quality)

    def edit(self, table: str, fn) -> None:
        """Rewrite ``table`` with ``fn(list of row dicts) -> list of row dicts`` (a defect injection)."""
        rows = fn(self.lake.read(table).to_pylist())
        self.lake.overwrite(table, pa.Table.from_pylist(rows, schema=self.lake.read(table).schema))

    def run(self, layer: str, docs: bool = False, only: list[str] | None = None) -> dict:
        from quality.gate import run_layer

        return run_layer(layer, self.params, self.lake, docs=docs, only=only)


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quality_world")
    build_world(root)
    return root


@pytest.fixture
def world(clean_world, tmp_path, monkeypatch) -> World:
    root = tmp_path / "world"
    shutil.copytree(clean_world, root)
    monkeypatch.chdir(tmp_path)
    raw = {"lake": {"root": str(root / "lake")},
           "quality": {"classes": CLASSES, "reports_dir": str(root / "reports"),
                       "manifests_dir": str(root / "manifests"), "snapshot_dir": str(root / "dataset")}}
    return World(root, Lake(str(root / "lake")), raw)
