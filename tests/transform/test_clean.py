"""Clean: every bad-input class normalized or quarantined with the right reason; the stage on Delta."""

from __future__ import annotations

import io
import json
import sys

import imagehash
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from PIL import Image

from sluice.config import CleanParams
from sluice.lake import Lake
from transform.clean import Reject, clean_batch, decode, find_outliers, outlier_inputs, phash_batch, run

CFG = CleanParams(resize="squash")  # reference images below are squashed
RNG = np.random.default_rng(7)
BASE = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def enc(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def reason(content: bytes, cfg: CleanParams = CFG) -> str:
    with pytest.raises(Reject) as err:
        decode(content, cfg)
    return err.value.reason


# ---------------------------------------------------------------------------- conversions
def test_cmyk_jpeg_is_converted_to_rgb():
    d = decode(enc(Image.fromarray(BASE).convert("CMYK"), "JPEG", quality=95), CFG)
    assert (d.mode, d.format, d.width, d.height) == ("CMYK", "JPEG", 60, 40)
    assert d.pixels.shape == (32, 32, 3) and d.pixels.dtype == np.uint8
    ref = np.asarray(Image.fromarray(BASE).resize((32, 32), Image.Resampling.BICUBIC), np.float32)
    assert np.abs(d.pixels.astype(np.float32) - ref).mean() < 12  # colours survive the round trip


def test_16bit_grey_is_rescaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    d = decode(enc(Image.fromarray(ramp)), CFG)
    assert d.mode.startswith("I;16")
    grey = d.pixels[..., 0].astype(int)
    assert (d.pixels[..., 0] == d.pixels[..., 1]).all() and (d.pixels[..., 1] == d.pixels[..., 2]).all()
    assert grey.min() <= 2 and grey.max() >= 253  # full range kept: clipping would leave almost all 255
    assert 100 < grey.mean() < 155


def test_float_tiff_in_unit_range_is_scaled_not_clipped():
    """A scientific TIFF of 32-bit floats in 0..1 (a microscope's, a normalised scan): clipping it to 0..255
    left every pixel 0 or 1, a near-constant image."""
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    d = decode(enc(Image.fromarray(ramp, "F"), "TIFF"), CFG)
    grey = d.pixels[..., 0].astype(int)
    assert d.mode == "F" and grey.min() <= 2 and grey.max() >= 253 and 100 < grey.mean() < 155
    wide = decode(enc(Image.fromarray(ramp * 200, "F"), "TIFF"), CFG)  # 0..200: already in byte range
    assert 180 <= wide.pixels.max() <= 200


def test_palette_with_transparency_is_composited_on_the_background():
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:, 16:] = (200, 30, 30)
    pal = Image.fromarray(arr).convert("P")
    pal.info["transparency"] = pal.getpixel((0, 0))  # the black half is transparent
    d = decode(enc(pal), CleanParams(background=(255, 255, 255)))
    assert d.mode == "P"
    assert (d.pixels[:, :12] == 255).all()  # transparent -> white background
    assert tuple(d.pixels[5, 28]) == pal.convert("RGB").getpixel((28, 5))  # the opaque half keeps its colour
    black = decode(enc(pal), CleanParams(background=(0, 0, 0)))
    assert (black.pixels[:, :12] == 0).all()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1", "P"])
def test_other_modes_become_rgb(mode):
    d = decode(enc(Image.fromarray(BASE).convert(mode)), CFG)
    assert d.mode == mode and d.pixels.shape == (32, 32, 3)


def test_animated_gif_policy():
    frames = [Image.fromarray(BASE), Image.fromarray(255 - BASE)]
    gif = enc(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert reason(gif) == "animated"
    first = decode(gif, CFG.model_copy(update={"animated": "first_frame"}))
    single = decode(enc(frames[0], "GIF"), CFG)
    assert np.array_equal(first.pixels, single.pixels)


def test_exif_rotation_is_applied_and_exif_dropped():
    tall = np.zeros((60, 40, 3), np.uint8)
    tall[:10] = 255  # white band at the top of the upright image
    # stored rotated: the camera wrote it sideways and says "rotate 90 CW to view" (orientation 6)
    stored = Image.fromarray(tall).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "SecretCam"
    d = decode(enc(stored, "JPEG", quality=95, exif=exif.tobytes()), CFG)
    assert (d.width, d.height) == (40, 60)  # upright size, as decoded after orientation
    assert d.pixels[:4].mean() > 200 and d.pixels[-8:].mean() < 30
    assert isinstance(d.pixels, np.ndarray)  # silver keeps decoded pixels only: no EXIF can ride along


# ---------------------------------------------------------------------------- rejections
def test_zero_byte():
    assert reason(b"") == "zero_byte"


def test_non_image_bytes():
    assert reason(b"<!doctype html><html><body>404</body></html>") == "not_an_image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(fmt):
    data = enc(Image.fromarray(BASE), fmt)
    assert reason(data[: len(data) // 2]) == "truncated"


def test_decompression_bomb_uses_the_pixel_limit_from_params():
    big = enc(Image.new("L", (300, 300)))
    assert reason(big, CleanParams(max_pixels=50_000)) == "decompression_bomb"  # > limit
    assert reason(big, CleanParams(max_pixels=10_000)) == "decompression_bomb"  # > 8x limit: Pillow's own check
    assert decode(big, CleanParams(max_pixels=100_000)).width == 300


def test_too_small():
    assert reason(enc(Image.fromarray(BASE[:5, :20]))) == "too_small"


def test_a_batch_with_no_image_that_decodes_is_all_quarantined():
    """Six junk .jpg files in one batch: every one quarantined with its reason (the empty batch's reshape crashed
    the stage with a traceback)."""
    table, rejects = clean_batch(["a", "b"], [b"not an image", b"\xff\xd8\xff\xe0 cut"], CFG)
    assert table.num_rows == 0 and sorted(i for i, _, _ in rejects) == ["a", "b"]


def test_blank_images_are_quarantined_in_the_batch():
    blank = enc(Image.new("RGB", (40, 40), (120, 120, 120)))
    good = enc(Image.fromarray(BASE))
    table, rejects = clean_batch(["a", "b"], [blank, good], CFG)
    assert table.column("image_id").to_pylist() == ["b"]
    assert [(i, r) for i, r, _ in rejects] == [("a", "near_constant")]


def test_batch_rows_have_hashes_and_stats():
    imgs = [BASE, 255 - BASE]
    table, rejects = clean_batch(["x", "y"], [enc(Image.fromarray(a)) for a in imgs], CFG)
    assert not rejects
    px = np.frombuffer(table.column("pixels")[0].as_py(), np.uint8).reshape(32, 32, 3)
    assert table.column("pixel_hash")[0].as_py() == __import__("hashlib").sha256(px.tobytes()).hexdigest()
    assert abs(table.column("mean")[0].as_py() - px.mean()) < 1e-3
    assert abs(table.column("std")[0].as_py() - px.std()) < 1e-3


def test_outlier_inputs_do_not_keep_the_batch_alive():
    """A task's result arrives as one buffer (Arrow IPC, as Dask ships it); the driver keeps the outlier
    check's columns of every batch, and must not keep the batch's pixels with them."""
    contents = [enc(Image.fromarray(np.roll(BASE, k, axis=1))) for k in range(8)]
    table, _ = clean_batch([f"img{k}" for k in range(8)], contents, CFG)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    frame = sink.getvalue().to_pybytes()
    baseline = sys.getrefcount(frame)
    received = pa.ipc.open_stream(pa.py_buffer(frame)).read_all()
    assert sys.getrefcount(frame) > baseline  # the received columns are views of the one buffer
    kept = outlier_inputs(received)
    del received
    assert sys.getrefcount(frame) == baseline  # what is kept is a copy
    assert kept.columns == ["image_id", "width", "height", "mean", "std"] and kept.height == table.num_rows


def test_phash_matches_imagehash_within_rounding():
    images = np.stack([np.asarray(Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
        (32, 32), Image.Resampling.BILINEAR)) for _ in range(40)])
    ours = phash_batch(images).view(np.uint64)
    theirs = np.array([int(str(imagehash.phash(Image.fromarray(a))), 16) for a in images], np.uint64)
    dist = np.bitwise_count(ours ^ theirs)
    assert dist.max() <= 4 and (dist == 0).mean() >= 0.8  # same construction; only grey rounding differs


def test_outliers_by_robust_z_and_aspect():
    rng = np.random.default_rng(0)
    stats = pl.DataFrame({"image_id": [f"i{k}" for k in range(50)], "width": [32] * 49 + [400],
                          "height": [32] * 50, "mean": rng.normal(100, 5, 50).astype(np.float32),
                          "std": rng.normal(40, 3, 50).astype(np.float32)})
    stats = stats.with_columns(pl.when(pl.col("image_id") == "i3").then(250.0).otherwise(pl.col("mean")).alias("mean"))
    out = find_outliers(stats, CFG)
    assert out["image_id"].to_list() == ["i3", "i49"]
    assert "robust z" in out["details"][0] and "aspect ratio" in out["details"][1]
    assert find_outliers(stats, CleanParams(outlier_z=0, max_aspect=100))["image_id"].to_list() == []


def test_a_population_beyond_the_z_is_not_quarantined_as_outliers(capfd):
    """A fifth of the images brighter than the rest (X-rays of one finding, on near-uniform exposures) is a part of
    the data, not 20% broken images: nothing goes for that statistic (the log says why); one extreme image still does."""
    rng = np.random.default_rng(0)
    mean = np.concatenate([rng.normal(100, 0.5, 80), rng.normal(115, 0.5, 20)]).astype(np.float32)
    std = rng.normal(40, 3, 100).astype(np.float32)
    std[7] = 250.0
    stats = pl.DataFrame({"image_id": [f"i{k:02d}" for k in range(100)], "width": [32] * 100, "height": [32] * 100,
                          "mean": mean, "std": std})
    out = find_outliers(stats, CFG)
    assert out["image_id"].to_list() == ["i07"] and "std" in out["details"][0]
    assert "20 of 100 images (20.0%) lie beyond clean.outlier_z 8.0 on mean" in capfd.readouterr().err
    assert find_outliers(stats, CFG.model_copy(update={"outlier_max_share": 0.25}))["image_id"].len() == 21


# ---------------------------------------------------------------------------- the stage on Delta
def _land(lake: Lake, items: dict[str, bytes], run_id: str = "r0"):
    import hashlib
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    lake.merge_insert("raw_images", pa.table({
        "image_id": [hashlib.sha256(b).hexdigest() for b in items.values()],
        "content": pa.array(list(items.values()), pa.binary()), "source": ["t"] * len(items),
        "source_uri": list(items), "source_label": ["x"] * len(items), "split_hint": [None] * len(items),
        "fetched_at": pa.array([now] * len(items), pa.timestamp("us", tz="UTC")), "run_id": [run_id] * len(items)}))


def test_large_files_cut_a_task_batch_before_its_image_count(lake):
    """256 phone photos a task would be over a GB each, a few in flight: a batch also ends at batch_bytes."""
    from collections import Counter

    from transform.clean import _raw_batches

    _land(lake, {f"f{k}.jpg": bytes([k]) * 300 for k in range(10)} | {"again.jpg": bytes([0]) * 300})
    counts: Counter = Counter()
    sizes = [len(ids) for ids, _, _ in _raw_batches(lake, 256, counts, batch_bytes=1000)]
    assert sizes == [4, 4, 2] and counts == {"raw_rows": 11, "merged_same_bytes": 1}  # 300-byte files, 1,000 bytes
    assert [len(ids) for ids, _, _ in _raw_batches(lake, 256, Counter())] == [10]


def smooth(seed: int) -> np.ndarray:
    """A photo-like image: coarse random structure, upscaled, with its own contrast and brightness."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    up = np.asarray(Image.fromarray(coarse).resize((40, 40), Image.Resampling.BILINEAR), np.float32)
    return np.clip(up * rng.uniform(0.5, 1.0) + rng.uniform(0, 60), 0, 255).astype(np.uint8)


def _bad_inputs() -> dict[str, bytes]:
    frames = [Image.fromarray(BASE), Image.fromarray(255 - BASE)]
    good = {f"good{k}.png": enc(Image.fromarray(smooth(k))) for k in range(12)}
    png = enc(Image.fromarray(BASE[::-1]))
    return {**good,
            "same_bytes_again.png": good["good0.png"],
            "cmyk.jpg": enc(Image.fromarray(smooth(99)).convert("CMYK"), "JPEG", quality=95),
            "anim.gif": enc(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            "zero.png": b"",
            "trunc.png": png[: len(png) // 2],
            "page.png": b"<html>not found</html>",
            "tiny.png": enc(Image.fromarray(BASE[:3, :3])),
            "blank.png": enc(Image.new("RGB", (40, 40), (9, 9, 9)))}


def test_stage_quarantines_reconciles_and_reruns_identically(tmp_path, make_params, dask_cluster):
    params = make_params({"clean": {"batch_images": 4, "write_rows": 5}})
    lake = Lake.from_params(params)
    _land(lake, _bad_inputs())
    first = run(params, dask_cluster)
    assert first["reconcile"] == {"rows_in": 20, "images": 13, "quarantined": 6, "merged_same_bytes": 1}
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("stage") == "clean")
    by_uri = dict(zip(q["details"].str.extract(r"\[(.*)\]$").to_list(), q["reason"].to_list()))
    assert by_uri == {"anim.gif": "animated", "zero.png": "zero_byte", "trunc.png": "truncated",
                      "page.png": "not_an_image", "tiny.png": "too_small", "blank.png": "near_constant"}
    assert set(q["source_table"]) == {"raw_images"}
    images = pl.from_arrow(lake.read("images")).drop("run_id").sort("image_id")
    assert images.height == 13 and images["image_id"].n_unique() == 13
    # rerun: same rows, quarantine rows replaced rather than added
    run(params, dask_cluster)
    assert pl.from_arrow(lake.read("images")).drop("run_id").sort("image_id").equals(images)
    assert lake.count("quarantine") == q.height


def test_rerun_readmits_fixed_data(make_params, dask_cluster):
    params = make_params({"clean": {"animated": "quarantine"}})
    lake = Lake.from_params(params)
    _land(lake, _bad_inputs())
    run(params, dask_cluster)
    assert "animated" in pl.from_arrow(lake.read("quarantine"))["reason"].to_list()
    fixed = make_params({"clean": {"animated": "first_frame"}})
    summary = run(fixed, dask_cluster)
    assert "animated" not in pl.from_arrow(lake.read("quarantine"))["reason"].to_list()
    assert summary["reconcile"]["images"] == 14


def test_demo_every_planted_bad_file_is_quarantined_with_its_reason(demo_lake, demo_truth):
    truth = demo_truth
    lake = Lake(str(demo_lake))
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source_uri"]))
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("stage") == "clean")
    reasons = dict(zip(q["row_key"], q["reason"]))
    expected = {**{u: "truncated" for u in truth["truncated"]}, **{u: "not_an_image" for u in truth["non_image"]},
                **{u: "decompression_bomb" for u in truth["decompression_bomb"]}}
    uri_to_id = dict(zip(raw["source_uri"], raw["image_id"]))
    assert {u: reasons.get(uri_to_id[u]) for u in expected} == expected
    assert q.height == len(expected)  # nothing else from the demo is rejected
    gps = [uri_to_id[u] for u in truth["gps_jpegs"]]
    images = pl.from_arrow(lake.read("images"))
    assert set(gps) <= set(images["image_id"])  # JPEGs with GPS are admitted, as pixels only
    assert images["pixels"].bin.size().unique().to_list() == [32 * 32 * 3]


def test_missing_raw_images_is_a_one_line_user_error(run_cli, tmp_path):
    result = run_cli(module="transform.clean", params={"lake": {"root": str(tmp_path / "empty")}})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sluice: error: table 'raw_images' does not exist yet in the lake at {tmp_path / 'empty'} "
        "(run an ingest stage first, e.g. python -m ingest.public)"]


@pytest.mark.slow  # the whole demo through a subprocess: the in-process demo test above covers the logic
def test_stage_main_writes_manifest(run_cli, tmp_path, demo_copy, dask_cluster, demo_truth):
    result = run_cli(module="transform.clean", params={"lake": {"root": str(demo_copy)}},
                     env={"SLUICE_DASK_SCHEDULER": dask_cluster.scheduler.address, "SLUICE_PROGRESS_EVERY": "0"})
    assert result.returncode == 0, result.stderr
    raw = Lake(str(demo_copy)).read("raw_images", columns=["image_id"]).column("image_id")
    assert f"[clean] decode: {len(raw):,}/{len(raw):,} raw rows (100%)" in result.stderr  # progress, not a terminal
    bad = len(demo_truth["truncated"]) + len(demo_truth["non_image"]) + len(demo_truth["decompression_bomb"])
    distinct = len(set(raw.to_pylist()))
    assert (f"reconcile: in {len(raw)} = images {distinct - bad} + quarantined {bad} + "
            f"merged_same_bytes {len(raw) - distinct}  OK") in result.stderr
    assert f"connected to {dask_cluster.scheduler.address} (2 workers)" in result.stderr
    manifest = json.loads((tmp_path / "data/manifests/clean.json").read_text())
    assert manifest["reconcile"]["images"] == distinct - bad and manifest["versions"]["images"] is not None


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("raw, shape", [({"size": 64}, (64, 64)), ({"size": [96, 160]}, (96, 160))])
def test_size_is_n_or_height_width(make_params, raw, shape):
    assert make_params({"clean": raw}).clean.shape == shape


@pytest.mark.parametrize("raw", [{"size": 0}, {"size": [96, -1]}, {"size": [1, 2, 3]}, {"resize": "stretch"},
                                 {"background": [999, -1, 3]}, {"background": [1, 2]}])
def test_bad_geometry_params_are_refused(make_params, raw):
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError):
        make_params({"clean": raw})


def test_stage_records_its_geometry_and_stores_pixels_at_that_shape(make_params, dask_cluster):
    from sluice.imaging import Geometry, read_geometry

    photos = {f"photo{k}.jpg": enc(Image.fromarray(np.kron(smooth(k), np.ones((3, 2 + k % 3, 1), np.uint8))), "JPEG")
              for k in range(6)}  # 120 x 80..160, landscape and portrait
    params = make_params({"clean": {"size": [24, 40], "resize": "pad", "background": [0, 0, 0], "outlier_z": 0}})
    lake = Lake.from_params(params)
    _land(lake, photos)
    summary = run(params, dask_cluster)
    geometry = Geometry(24, 40, "pad", (0, 0, 0))
    assert summary["geometry"] == geometry.to_dict() and read_geometry(lake) == geometry
    images = lake.read("images", columns=["pixels", "width", "height"])
    assert images.num_rows == 6 and {len(p) for p in images.column("pixels").to_pylist()} == {24 * 40 * 3}
    # a rerun at another size replaces rows and geometry together; the old version keeps the old geometry
    old = lake.version("images")
    run(make_params({"clean": {"size": 32, "outlier_z": 0}}), dask_cluster)
    assert read_geometry(lake) == Geometry(32, 32, "center_crop") and read_geometry(lake, version=old) == geometry
    assert {len(p) for p in lake.read("images", columns=["pixels"]).column("pixels").to_pylist()} == {32 * 32 * 3}


def test_clean_stores_dedups_sketch_and_dedup_groups_a_copy_at_a_non_square_geometry(make_params, dask_cluster):
    import hashlib

    from transform.dedup import run as dedup

    photos = {f"photo{k}.jpg": enc(Image.fromarray(np.kron(smooth(k), np.ones((3, 2 + k % 3, 1), np.uint8))), "JPEG")
              for k in range(6)}
    photos["copy.png"] = enc(Image.open(io.BytesIO(photos["photo1.jpg"])), "PNG")  # the same photo, re-encoded
    params = make_params({"clean": {"size": [24, 40], "resize": "pad", "background": [0, 0, 0], "outlier_z": 0}})
    lake = Lake.from_params(params)
    _land(lake, photos)
    run(params, dask_cluster)
    sketch = lake.read("images", columns=["thumb", "greyscale", "mean_rgb"]).to_pylist()
    assert len(sketch) == 7 and all(len(r["thumb"]) == 32 * 32 and len(r["mean_rgb"]) == 3 for r in sketch)
    dedup(params)  # thumbnails were square-only when dedup computed them from the pixels
    group = {r["image_id"]: r["dup_group"] for r in lake.read("image_groups", columns=["image_id", "dup_group"]).to_pylist()}
    ids = {name: hashlib.sha256(b).hexdigest() for name, b in photos.items()}
    assert group[ids["copy.png"]] == group[ids["photo1.jpg"]]
    assert len(set(group.values())) == 6  # the other five stand alone


def test_clean_batch_quarantines_every_truncation_of_every_format():
    """The common formats (multi-frame too) cut at five points: each image is a row or a quarantine reason.
    (tests/sluice/test_imaging.py fuzzes the decoder itself over every format Pillow writes.)"""
    from sluice.imaging import REJECT_REASONS

    frames = [Image.fromarray(BASE), Image.fromarray(255 - BASE), Image.fromarray(BASE[::-1])]
    many = dict(save_all=True, append_images=frames[1:])
    files = {f"{fmt}{'-multi' if kw else ''}": enc(frames[0], fmt, **kw)
             for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP", "ICO", "TGA", "PPM") for kw in ({}, many)
             if not kw or fmt in ("GIF", "TIFF", "WEBP", "PNG")}
    ids, contents = [], []
    for name, data in sorted(files.items()):
        for cut in (1, 8, len(data) // 3, len(data) // 2, len(data) - 1):
            ids.append(f"{name}:{cut}")
            contents.append(data[:cut])
    table, rejects = clean_batch(ids, contents, CleanParams(size=16, min_side=1, animated="first_frame"))
    assert table.num_rows + len(rejects) == len(ids)
    assert all(r in REJECT_REASONS for _, r, _ in rejects)
