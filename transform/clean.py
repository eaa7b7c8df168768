"""Stage ``clean``: bronze ``raw_images`` -> silver ``images`` + ``quarantine``.

Per-image work (decode, verify, EXIF orientation, convert to RGB, resize, pixel hash, perceptual hash,
statistics) runs as Dask tasks over batches of image bytes; the driver streams ``raw_images`` from
Delta, keeps a bounded number of batches in flight and appends the results in large commits.

One silver row per distinct ``image_id`` (the same bytes landed from two places are one image; the
extra raw rows are reported as ``merged``). Rejected images go to ``quarantine`` with
``source_table='raw_images'``, ``row_key=image_id``, ``stage='clean'`` and a reason code:

- ``zero_byte``            empty content
- ``not_an_image``         Pillow cannot identify the bytes as any image format
- ``truncated``            the file ends before its pixel data does
- ``undecodable``          identified but fails to decode or convert for another reason
- ``decompression_bomb``   more than ``clean.max_pixels`` pixels (Pillow's warning raised as an error)
- ``too_small``            shorter side below ``clean.min_side``
- ``animated``             more than one frame (``clean.animated: quarantine``)
- ``near_constant``        std of the normalized pixels below ``clean.min_std`` (blank images)
- ``outlier``              extreme aspect ratio, or mean/std more than ``clean.outlier_z`` robust
                           z-scores (median/MAD over this run's images) from the rest
- ``privacy:face``         a face was found and ``privacy.faces`` is ``drop`` (transform/faces.py)

With ``privacy.faces: blur`` the faces found are blurred in the silver pixels and ``images.faces_blurred``
counts them (0: looked, none found); with ``keep`` (the default) no detector runs and it stays null.

A rerun replaces the stage's previous quarantine rows, so fixed data is re-admitted. No EXIF (nor any
other metadata) leaves this layer: silver holds decoded pixels only.

Decoding, RGB conversion and resizing are :mod:`sluice.imaging` (shared with ``sluice predict``). The
output geometry (``clean.size`` as N or [H, W], ``clean.resize``: squash | center_crop | pad,
``clean.background``) is recorded on the ``images`` table and in the manifest; downstream stages read
it from there.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import polars as pl
import pyarrow as pa
from PIL import Image

from sluice import imaging, thumbnails
from sluice.catalog import TABLES
from sluice.config import CleanParams
from sluice.errors import InputError
from sluice.imaging import Decoded, Geometry, Limits, Reject
from sluice.lake import Lake
from sluice.runs import new_run_id, reconcile
from sluice.stage import Quarantine, stage_logger

STAGE = "clean"
IMAGE_COLUMNS = [f.name for f in TABLES["images"].schema]
READ_ROWS = 64  # raw rows read at a time (an Arrow batch of 256 large photos is itself a GB)
HASH_SIZE = 32  # perceptual hash input: 32x32 grey, 8x8 low DCT frequencies, like imagehash.phash
_DCT8 = np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(HASH_SIZE) + 1) / (2 * HASH_SIZE)).astype(np.float64)
_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2 luma, as Pillow's convert("L")

# ---------------------------------------------------------------------------- one image
def geometry_of(cfg: CleanParams) -> Geometry:
    """The output geometry ``clean.size`` / ``clean.resize`` / ``clean.background`` ask for (the only
    reader of ``clean.size``: everyone else reads the geometry the stage recorded in the lake)."""
    height, width = cfg.shape
    return Geometry(height, width, cfg.resize, tuple(cfg.background))


def limits_of(cfg: CleanParams) -> Limits:
    return Limits(cfg.max_pixels, cfg.min_side, cfg.animated)


def decode(content: bytes, cfg: CleanParams) -> Decoded:
    """Decode and normalize one image as the stage does, or raise :class:`Reject` with the reason code."""
    return imaging.decode(content, geometry_of(cfg), limits_of(cfg))


def phash_batch(pixels: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hashes of (n, s, s, 3) uint8 images, as int64 bit patterns.

    Same construction as ``imagehash.phash`` (32x32 grey, 2-D DCT, 8x8 lowest frequencies against
    their median), batched as two matrix products instead of one FFT per image.
    """
    n = len(pixels)
    if n == 0:
        return np.zeros(0, np.int64)
    grey = pixels.astype(np.float32) @ _GREY
    if grey.shape[1:] != (HASH_SIZE, HASH_SIZE):
        grey = np.stack([np.asarray(Image.fromarray(g, "F").resize((HASH_SIZE, HASH_SIZE), Image.Resampling.BOX))
                         for g in grey])
    low = _DCT8 @ grey.astype(np.float64) @ _DCT8.T  # (n, 8, 8)
    flat = low.reshape(n, 64)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64).view(np.int64)


# ---------------------------------------------------------------------------- one batch (a Dask task)
def clean_batch(image_ids: list[str], contents: list[bytes], cfg: CleanParams,
                privacy=None) -> tuple[pa.Table, list[tuple[str, str, str]]]:
    """Clean one batch: the silver rows (without run_id/dup columns) and ``(image_id, reason, details)`` rejects.

    ``privacy`` (the params section) with ``faces`` other than ``keep`` runs the face detector."""
    geometry, limits = geometry_of(cfg), limits_of(cfg)
    look = privacy is not None and privacy.faces != "keep"
    if look:
        from transform.faces import anonymise, source_side
    good: list[tuple[str, Decoded]] = []
    faces: list[int | None] = []
    rejects: list[tuple[str, str, str]] = []
    for image_id, content in zip(image_ids, contents):
        try:
            decoded = imaging.decode(content, geometry, limits, source_side(geometry, privacy) if look else 0)
            if look:
                pixels, found = anonymise(decoded, geometry, privacy)
                decoded = replace(decoded, pixels=pixels, source=None)
            good.append((image_id, decoded))
            faces.append(found if look else None)
        except Reject as rej:
            rejects.append((image_id, rej.reason, rej.details))
    pixels = np.stack([d.pixels for _, d in good]) if good else np.zeros((0, *geometry.shape), np.uint8)
    flat = pixels.reshape(len(good), int(np.prod(geometry.shape))).astype(np.float32)  # -1 fails on a batch of none
    std = flat.std(axis=1) if len(good) else np.zeros(0, np.float32)
    blank = std < cfg.min_std
    for (image_id, _), s in zip(good, std):
        if s < cfg.min_std:
            rejects.append((image_id, "near_constant", f"pixel std {s:.3f} < clean.min_std {cfg.min_std}"))
    keep = ~blank
    kept = [g for g, k in zip(good, keep) if k]
    faces = [f for f, k in zip(faces, keep) if k]
    pixels, flat, std = pixels[keep], flat[keep], std[keep]
    thumb, greyscale, mean_rgb = thumbnails.sketch(pixels)
    table = pa.table({
        "image_id": pa.array([i for i, _ in kept], pa.string()),
        "width": pa.array([d.width for _, d in kept], pa.int32()),
        "height": pa.array([d.height for _, d in kept], pa.int32()),
        "mode": pa.array([d.mode for _, d in kept], pa.string()),
        "format": pa.array([d.format for _, d in kept], pa.string()),
        "pixels": pa.array([p.tobytes() for p in pixels], pa.binary()),
        "pixel_hash": pa.array([hashlib.sha256(p.tobytes()).hexdigest() for p in pixels], pa.string()),
        "phash": pa.array(phash_batch(pixels), pa.int64()),
        "mean": pa.array(flat.mean(axis=1) if len(kept) else [], pa.float32()),
        "std": pa.array(std, pa.float32()),
        "faces_blurred": pa.array(faces, pa.int16()),
        "thumb": pa.array([t.tobytes() for t in thumb], pa.binary()),
        "greyscale": pa.array(greyscale, pa.bool_()),
        "mean_rgb": pa.array(mean_rgb.tolist(), TABLES["images"].schema.field("mean_rgb").type),
    })
    return table, rejects


# ---------------------------------------------------------------------------- table logic (Polars)
def find_outliers(stats: pl.DataFrame, cfg: CleanParams) -> pl.DataFrame:
    """Rows of ``stats`` (image_id, width, height, mean, std) that are statistical outliers, with details.

    Robust z-score: 0.6745 * (x - median) / MAD, so a handful of extreme images cannot hide themselves
    by inflating the spread (the MAD is floored at one grey level so a near-uniform collection does not
    turn every small difference into an outlier); ``outlier_z = 0`` switches the check off. Where more than
    ``clean.outlier_max_share`` of the images lie beyond it on a statistic, they are a population of the data
    (X-rays of one finding brighter than the rest, scans of one machine), not broken images: none is
    quarantined for that statistic, and the log says so.
    """
    aspect = pl.max_horizontal("width", "height") / pl.min_horizontal("width", "height")
    checks = [pl.when(aspect > cfg.max_aspect).then(pl.format("aspect ratio {} > clean.max_aspect " + str(cfg.max_aspect),
                                                                aspect.round(2)))]
    if cfg.outlier_z > 0 and stats.height >= 10:
        for col in ("mean", "std"):
            med = pl.col(col).median()
            mad = (pl.col(col) - med).abs().median()
            z = 0.6745 * (pl.col(col) - med) / pl.max_horizontal(mad, pl.lit(1.0))  # MAD floored at one grey level
            beyond = stats.select((z.abs() > cfg.outlier_z).sum()).item()
            if beyond > cfg.outlier_max_share * stats.height:
                stage_logger("clean").warning(
                    f"{beyond} of {stats.height} images ({beyond / stats.height:.1%}) lie beyond clean.outlier_z "
                    f"{cfg.outlier_z} on {col}: more than clean.outlier_max_share {cfg.outlier_max_share:.0%}, so a "
                    f"population of the data, not broken images; none quarantined for it")
                continue
            checks.append(pl.when(z.abs() > cfg.outlier_z).then(
                pl.format(f"{col} {{}} is {{}} robust z from the median (clean.outlier_z {cfg.outlier_z})",
                          pl.col(col).round(2), z.round(1))))
    return (stats.with_columns(details=pl.concat_str(checks, separator="; ", ignore_nulls=True))
            .filter(pl.col("details").is_not_null() & (pl.col("details") != ""))
            .select("image_id", "details").sort("image_id"))


# ---------------------------------------------------------------------------- the stage
def _raw_batches(lake: Lake, batch_rows: int, counts: Counter, batch_bytes: int | None = None):
    """Distinct (image_ids, contents, uris) batches from ``raw_images``, each at most ``batch_rows`` images
    and cut once their bytes reach ``batch_bytes`` (256 phone photos of 5 MB would be 1.3 GB a task, a
    few tasks in flight); repeated bytes are counted, not resent."""
    seen: set[str] = set()
    ids, contents, uris, held = [], [], [], 0
    for batch in lake.batches("raw_images", ["image_id", "content", "source_uri"], min(batch_rows, READ_ROWS)):
        cols = batch.to_pydict()
        for image_id, content, uri in zip(cols["image_id"], cols["content"], cols["source_uri"]):
            counts["raw_rows"] += 1
            if image_id in seen:
                counts["merged_same_bytes"] += 1
                continue
            seen.add(image_id)
            ids.append(image_id)
            contents.append(content)
            uris.append(uri)
            held += len(content)
            if len(ids) >= batch_rows or (batch_bytes is not None and held >= batch_bytes):
                yield ids, contents, uris
                ids, contents, uris, held = [], [], [], 0
    if ids:
        yield ids, contents, uris


def outlier_inputs(table: pa.Table) -> pl.DataFrame:
    """The columns of a cleaned batch that the outlier check reads, copied. A Dask task's result arrives
    as one buffer of which every column is a view, so a zero-copy view of these five columns kept each
    batch's pixels too: the driver grew ~5 KB an image (5.6 GB at 1M images) instead of ~100 bytes."""
    columns = table.select(["image_id", "width", "height", "mean", "std"])
    return pl.from_arrow(columns.take(np.arange(columns.num_rows)))


def run(params, client=None) -> dict:
    """Clean every distinct raw image into silver ``images``; return the stage summary."""
    cfg = params.clean
    lake = Lake.from_params(params)
    if not lake.exists("raw_images"):
        raise InputError(f"table 'raw_images' does not exist yet in the lake at {lake.root} (run an ingest stage first, "
                         "e.g. python -m ingest.public)")
    if client is None:
        from sluice.compute import dask_client

        with dask_client(params.compute, stage=STAGE) as client:
            return run(params, client)
    from distributed import as_completed

    from sluice.compute import total_threads
    from sluice.progress import Meter

    if params.privacy.faces != "keep":
        from transform.faces import check

        check(params.privacy)
    run_id = new_run_id(STAGE)
    log = stage_logger(STAGE)
    geometry = geometry_of(cfg)
    raw_version = lake.version("raw_images")
    started = time.perf_counter()
    counts: Counter = Counter()
    quarantine = Quarantine(STAGE, "raw_images", run_id)
    uri_of: dict[str, str] = {}
    stats: list[pl.DataFrame] = []
    pending: list[pa.Table] = []
    written = 0
    window = 2 * total_threads(client)
    # raw rows read and sent (at most `window` batches ahead of the decoding): a bar on a terminal, lines otherwise
    meter = Meter(log, "decode", lake.count("raw_images"), "raw rows")
    # Empty the table and record the new geometry before any row of it lands, so that every state a
    # reader can see (even after a crash mid-run) has rows of the geometry the table declares.
    lake.overwrite("images", TABLES["images"].schema.empty_table(), run_id=run_id)
    imaging.record_geometry(lake, "images", geometry)

    def flush(final: bool = False) -> None:
        nonlocal written
        if not pending or (not final and sum(t.num_rows for t in pending) < cfg.write_rows):
            return
        table = _silver(pa.concat_tables(pending), run_id)
        pending.clear()
        written += lake.append("images", table, run_id=run_id)

    def collect(future) -> None:
        table, bad = future.result()
        for image_id, reason, details in bad:
            quarantine.add(image_id, reason, details=f"{details} [{uri_of[image_id]}]")
        stats.append(outlier_inputs(table))
        pending.append(table)
        meter.update(counts["raw_rows"] - meter.done)
        flush()

    in_flight = as_completed()
    for ids, contents, uris in _raw_batches(lake, cfg.batch_images, counts, cfg.batch_bytes):
        uri_of.update(zip(ids, uris))
        in_flight.add(client.submit(clean_batch, ids, contents, cfg, params.privacy, pure=False, retries=cfg.task_retries))
        while in_flight.count() >= window:
            collect(next(in_flight))
    for future in in_flight:
        collect(future)
    flush(final=True)
    meter.update(counts["raw_rows"] - meter.done)
    meter.close()

    outliers = find_outliers(pl.concat(stats) if stats else pl.DataFrame(schema={"image_id": pl.String, "width": pl.Int32,
                             "height": pl.Int32, "mean": pl.Float32, "std": pl.Float32}), cfg)
    if outliers.height:
        for start in range(0, outliers.height, 500):
            ids = outliers["image_id"][start:start + 500].to_list()
            quoted = ", ".join(f"'{i}'" for i in ids)
            lake.overwrite("images", TABLES["images"].schema.empty_table(), predicate=f"image_id IN ({quoted})", run_id=run_id)
        for image_id, details in outliers.iter_rows():
            quarantine.add(image_id, "outlier", details=f"{details} [{uri_of[image_id]}]")
    reasons = dict(sorted(quarantine.counts().items()))
    quarantined = len(quarantine)
    quarantine.rows.sort(key=lambda r: (r[1], r[2]))  # deterministic row order: by image_id, then check
    quarantine.write(lake, replace=True)

    images_out = written - outliers.height
    recon = reconcile(STAGE, counts["raw_rows"], images=images_out, quarantined=quarantined,
                      merged_same_bytes=counts["merged_same_bytes"])
    seconds = time.perf_counter() - started
    distinct = counts["raw_rows"] - counts["merged_same_bytes"]
    log.info("%d distinct images in %.1fs (%.0f img/s): %d to images at %dx%d (%s), %d quarantined (%s)",
             distinct, seconds, distinct / max(seconds, 1e-9), images_out, geometry.height, geometry.width,
             geometry.resize, quarantined, ", ".join(f"{k} {v}" for k, v in reasons.items()) or "none")
    faces = faces_summary(lake, params.privacy.faces, reasons)
    if params.privacy.faces != "keep":
        log.info("faces (privacy.faces: %s): %d image(s) blurred (%d faces), %d dropped", faces["mode"],
                 faces["images_blurred"], faces["faces_blurred"], faces["images_dropped"])
    return {"run_id": run_id, "reconcile": recon, "quarantine_reasons": reasons, "geometry": geometry.to_dict(),
            "faces": faces,
            "seconds": round(seconds, 3), "workers": len(client.nthreads()),
            "versions": {"raw_images": raw_version, "images": lake.version("images"), "quarantine": lake.version("quarantine")},
            "rows": {t: lake.count(t) for t in ("raw_images", "images", "quarantine")}}


def faces_summary(lake: Lake, mode: str, reasons: dict[str, int]) -> dict:
    """What face anonymisation did in this run, from the silver rows (outliers already removed)."""
    found = [n for n in lake.read("images", ["faces_blurred"]).column(0).to_pylist() if n]
    return {"mode": mode, "images_blurred": len(found), "faces_blurred": sum(found),
            "images_dropped": reasons.get("privacy:face", 0)}


def _silver(table: pa.Table, run_id: str) -> pa.Table:
    """The batch results as full ``images`` rows: dedup columns left null, run_id stamped."""
    n = table.num_rows
    return table.append_column("dup_group", pa.nulls(n, pa.string())).append_column(
        "is_canonical", pa.nulls(n, pa.bool_())).append_column("run_id", pa.array([run_id] * n, pa.string())
    ).select(IMAGE_COLUMNS)


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
