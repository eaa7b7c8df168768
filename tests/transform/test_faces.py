"""Face anonymisation at clean time: the real OpenCV detector on real photos that ship with scikit-image,
blur in the silver pixels, drop to quarantine with counts reconciled, keep costs nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from sluice.config import parse_params
from sluice.errors import ConfigError
from sluice.lake import Lake
from transform.clean import clean_batch, run
from transform.faces import merge_overlaps

REPO = Path(__file__).resolve().parents[2]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def params(tmp_path, faces: str = "blur", size: int = 64, **privacy):
    return parse_params({"lake": {"root": str(tmp_path / "lake")}, "clean": {"size": size, "outlier_z": 0},
                         "privacy": {"faces": faces, **privacy}}, "test-params.yaml")


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Real photos bundled in the scikit-image wheel: two with a face, three without."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) ships the face photos")
    return {"astronaut.png": png(data.astronaut()), "camera.png": png(data.camera()),
            "coffee.png": png(data.coffee()), "chelsea.png": png(data.chelsea()), "rocket.png": png(data.rocket())}


def batch(items: dict[str, bytes], p) -> tuple[dict[str, np.ndarray], dict[str, int | None], list]:
    table, rejects = clean_batch(list(items), list(items.values()), p.clean, p.privacy)
    h, w = p.clean.shape
    rows = table.to_pylist()
    pixels = {r["image_id"]: np.frombuffer(r["pixels"], np.uint8).reshape(h, w, 3) for r in rows}
    return pixels, {r["image_id"]: r["faces_blurred"] for r in rows}, rejects


# ---------------------------------------------------------------------------- one batch
def test_the_astronauts_face_is_found_and_blurred_in_the_silver_pixels(tmp_path, photos):
    kept, none, _ = batch(photos, params(tmp_path, "keep"))
    blurred, faces, rejects = batch(photos, params(tmp_path, "blur"))
    assert rejects == [] and none == dict.fromkeys(photos)  # keep: the column is null, nothing looked at
    assert faces == {"astronaut.png": 1, "camera.png": 1, "coffee.png": 0, "chelsea.png": 0, "rocket.png": 0}
    before, after = kept["astronaut.png"].astype(int), blurred["astronaut.png"].astype(int)
    changed = np.abs(after - before).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    # only the face box changed: Eileen Collins' face is at about x 170-260, y 20-130 of the 512x512 photo
    assert 12 <= xs.min() and xs.max() <= 40 and ys.max() <= 22, (xs.min(), xs.max(), ys.min(), ys.max())
    face = (slice(6, 14), slice(24, 30))  # inside the face in the 64x64 pixels (eyes, nose, mouth)
    assert np.abs(after[face] - before[face]).mean() > 8
    grad = lambda a: np.abs(np.diff(a[ys.min():ys.max() + 1, xs.min():xs.max() + 1], axis=1)).mean()  # noqa: E731
    assert grad(after) < 0.3 * grad(before)  # the detail is gone, not just shifted
    for name in ("coffee.png", "chelsea.png", "rocket.png"):
        assert np.array_equal(blurred[name], kept[name]), name


def test_drop_rejects_images_with_a_face_and_keeps_the_rest(tmp_path, photos):
    _, faces, rejects = batch(photos, params(tmp_path, "drop", size=64))
    assert set(faces) == {"coffee.png", "chelsea.png", "rocket.png"} and set(faces.values()) == {0}
    assert {(i, r) for i, r, _ in rejects} == {("astronaut.png", "privacy:face"), ("camera.png", "privacy:face")}
    assert all("found by haar (privacy.faces: drop)" in d for _, _, d in rejects)


def test_faces_smaller_than_face_min_px_in_silver_are_not_looked_for(tmp_path, photos):
    camera = {"camera.png": photos["camera.png"]}  # the cameraman's face is ~40 of 512 px: ~2.5 px of 32x32 silver
    assert batch(camera, params(tmp_path, "blur", size=32))[1] == {"camera.png": 0}
    assert batch(camera, params(tmp_path, "blur", size=32, face_min_px=2))[1] == {"camera.png": 1}


def test_faces_are_mapped_through_every_resize_policy(tmp_path, photos):
    wide = png(np.asarray(Image.open(io.BytesIO(photos["astronaut.png"])).crop((0, 0, 512, 300))))
    for resize in ("squash", "center_crop", "pad"):
        p = parse_params({"clean": {"size": [24, 40], "resize": resize},
                          "privacy": {"faces": "blur"}}, "t.yaml")
        _, faces, _ = batch({"wide": wide}, p)
        assert faces == {"wide": 1}, resize


def test_a_detector_of_your_own_by_module_and_function(tmp_path, monkeypatch):
    (tmp_path / "my_faces.py").write_text(
        "def corner(privacy):\n"
        "    return lambda rgb: [(0, 0, rgb.shape[1] // 2, rgb.shape[0] // 2)]  # the top-left quarter is a 'face'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    p = params(tmp_path, "blur", size=32, face_detector="my_faces:corner", face_margin=0)
    pixels, faces, _ = batch({"n": png(noise)}, p)
    kept, _, _ = batch({"n": png(noise)}, params(tmp_path, "keep", size=32))
    changed = np.abs(pixels["n"].astype(int) - kept["n"].astype(int)).sum(axis=2) > 0
    assert faces == {"n": 1} and changed[:16, :16].mean() > 0.9 and not changed[16:, :].any() and not changed[:, 16:].any()
    with pytest.raises(ConfigError, match="cannot be loaded"):
        batch({"n": png(noise)}, params(tmp_path, "blur", face_detector="no_such_module:detect"))


def test_keep_imports_and_loads_no_detector():
    code = ("import sys, io, numpy as np; from PIL import Image; from sluice.config import parse_params; "
            "from transform.clean import clean_batch; b = io.BytesIO(); "
            "Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(b, 'PNG'); "
            "p = parse_params({}, 'p.yaml'); t, _ = clean_batch(['a'], [b.getvalue()], p.clean, p.privacy); "
            "print(t.column('faces_blurred').null_count, 'cv2' in sys.modules, 'transform.faces' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False", "False"]


def test_params_refuse_unknown_modes_and_keys():
    assert parse_params({}, "p.yaml").privacy.faces == "keep"
    for bad in ({"faces": "smudge"}, {"face_detector": "yolo"}, {"face_blur": 3},
                {"face_min_px": 0}, {"face_detect_max_side": 10}):
        with pytest.raises(ConfigError):
            parse_params({"privacy": bad}, "p.yaml")


def test_overlapping_boxes_of_one_face_merge():
    merged = merge_overlaps([(10, 10, 50, 50), (12, 8, 48, 52), (100, 100, 120, 120)])
    assert sorted(merged) == [(10, 8, 50, 52), (100, 100, 120, 120)]


# ---------------------------------------------------------------------------- the stage on Delta
def _land(lake: Lake, items: dict[str, bytes]) -> None:
    import pyarrow as pa
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    lake.merge_insert("raw_images", pa.table({
        "image_id": [hashlib.sha256(b).hexdigest() for b in items.values()],
        "content": pa.array(list(items.values()), pa.binary()), "source": ["t"] * len(items),
        "source_uri": list(items), "source_label": ["x"] * len(items), "split_hint": [None] * len(items),
        "fetched_at": pa.array([now] * len(items), pa.timestamp("us", tz="UTC")), "run_id": ["r0"] * len(items)}))


def test_drop_quarantines_faces_reconciles_and_the_report_counts_them(tmp_path, photos, dask_cluster):
    from sluice.privacy_report import report

    p = params(tmp_path, "drop", size=64)
    lake = Lake.from_params(p)
    _land(lake, photos)
    summary = run(p, dask_cluster)
    assert summary["reconcile"] == {"rows_in": 5, "images": 3, "quarantined": 2, "merged_same_bytes": 0}
    assert summary["faces"] == {"mode": "drop", "images_blurred": 0, "faces_blurred": 0, "images_dropped": 2}
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("check") == "privacy:face")
    assert sorted(q["details"].str.extract(r"\[(.*)\]$").to_list()) == ["astronaut.png", "camera.png"]
    ids = {hashlib.sha256(photos[n]).hexdigest() for n in ("astronaut.png", "camera.png")}
    assert set(q["row_key"]) == ids and not ids & set(lake.read("images", ["image_id"]).column(0).to_pylist())
    rows = {r["item"]: r for r in report(lake, p) if r["section"] == "faces"}
    assert rows["images dropped for faces"]["count"] == 2 and rows["images checked for faces"]["count"] == 3


def test_blur_marks_images_and_the_dataset_page_shows_how_many(tmp_path, photos, dask_cluster):
    from quality.page import _privacy
    from sluice.privacy_report import report

    p = params(tmp_path, "blur", size=64)
    lake = Lake.from_params(p)
    _land(lake, photos)
    summary = run(p, dask_cluster)
    assert summary["reconcile"]["images"] == 5 and summary["faces"]["images_blurred"] == 2
    marks = dict(zip(*lake.read("images", ["image_id", "faces_blurred"]).to_pydict().values()))
    assert marks[hashlib.sha256(photos["astronaut.png"]).hexdigest()] == 1
    assert sorted(marks.values()) == [0, 0, 0, 1, 1]
    rows = report(lake, p)
    faces = {r["item"]: r for r in rows if r["section"] == "faces"}
    assert faces["images with faces blurred"]["count"] == 2 and faces["images with faces blurred"]["share"] == 0.4
    page = _privacy(rows)
    assert "images with faces blurred</td><td>2</td><td>40.0%" in page
    # back to keep: the column is null again and the report says no detector ran
    run(params(tmp_path, "keep", size=64), dask_cluster)
    assert lake.read("images", ["faces_blurred"]).column(0).null_count == 5
    faces = {r["item"]: r for r in report(lake, params(tmp_path, "keep")) if r["section"] == "faces"}
    assert faces["images checked for faces"]["count"] == 0 and faces["images with faces blurred"]["count"] == 0
    assert json.dumps(faces)  # plain values, as `sluice privacy report --format json` prints them


def test_a_detector_that_cannot_load_stops_the_stage_before_any_write(tmp_path, photos, dask_cluster):
    p = params(tmp_path, "blur", face_detector="no_such_module:detect")
    lake = Lake.from_params(p)
    _land(lake, {"coffee.png": photos["coffee.png"]})
    with pytest.raises(ConfigError, match="no_such_module:detect"):
        run(p, dask_cluster)
    assert not lake.exists("images")
