"""Export stage: the gold ``dataset`` table + silver ``images`` pixels -> a frozen training snapshot.

``python -m transform.export`` (DVC stage ``export``) writes ``data/dataset/`` in the
:mod:`sluice.snapshot` format and a copy of its manifest to ``data/manifests/export.json`` (kept in
git, so every tagged version names its content hash and the Delta versions it was built from without
needing DVC's cache).

Determinism: both tables are read at one pinned Delta version each, rows are sorted by ``image_id``
within each split, and the manifest holds no run id or clock time, so the same lake versions and
params give the same bytes and the same ``content_hash``. That is what lets
``sluice dataset rebuild`` rebuild an old snapshot by Delta time travel and compare hashes.

Membership is exactly the rows of ``dataset``; its ``weight`` column becomes the sample weight
(a weight of 0 is kept as 0). A row whose image has no usable pixels is quarantined, never dropped
silently.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sluice import class_order
from sluice.errors import InputError
from sluice.imaging import Geometry, read_geometry
from sluice.lake import Lake
from sluice.membership import Lookup
from sluice.runs import MANIFEST_DIR, new_run_id, reconcile
from sluice.snapshot import SPLITS, ShardedImages, SplitArrays, write_snapshot
from sluice.stage import Quarantine, stage_logger
from transform.export_pass import (ShardPlan, file_batches, fill, fill_on_dask,
                                   pixel_matrix)

STAGE = "export"
INPUT_TABLES = ("dataset", "images")
# Params sections whose values shaped the snapshot's rows (recorded in its manifest).
UPSTREAM_SECTIONS = ("seed", "demo", "ingest", "crawl", "labels", "clean", "dedup", "dataset", "export")


@dataclass
class Rejected:
    """Dataset rows that cannot be exported, with the check that rejected them."""

    image_ids: list[str]
    check: str
    details: list[str]


def pinned_versions(lake: Lake, versions: dict[str, int] | None = None) -> dict[str, int]:
    """The Delta version to read of every input table: the given ones, else each table's current one."""
    versions = dict(versions or {})
    for name in INPUT_TABLES:
        if versions.get(name) is None:
            current = lake.version(name)
            if current is None:
                writer = "transform.dataset" if name == "dataset" else "transform.clean"
                raise InputError(f"table '{name}' does not exist yet in the lake at {lake.root} "
                                 f"(run `python -m {writer}` or `dvc repro {name if name == 'dataset' else 'clean'}`)")
            versions[name] = current
    return {name: int(versions[name]) for name in INPUT_TABLES}


def class_list(members: pl.DataFrame, recorded: list[str] | None = None) -> list[str]:
    """Class names ordered by ``class_index``: the list ``recorded`` on the dataset table where every row's
    label sits at its index in it (a class may have no row), else the table's own, which must map each
    index to one label, 0..K-1."""
    pairs = members.select("class_index", "label").unique().sort("class_index", "label")
    by_index = pairs.group_by("class_index").agg(pl.col("label").unique().sort()).sort("class_index")
    for idx, labels in by_index.iter_rows():
        if len(labels) > 1:
            raise InputError(f"dataset: class_index {idx} is used for several labels ({', '.join(labels)})")
    if recorded and all(i < len(recorded) and recorded[i] == labels[0] for i, labels in by_index.iter_rows()):
        return list(recorded)
    by_label = pairs.group_by("label").agg(pl.col("class_index").unique()).filter(pl.col("class_index").list.len() > 1)
    if by_label.height:
        label, idxs = by_label.row(0)
        raise InputError(f"dataset: label '{label}' has several class_index values ({', '.join(map(str, sorted(idxs)))})")
    indices = by_index["class_index"].to_list()
    if indices != list(range(len(indices))):
        raise InputError(f"dataset: class_index values must be 0..K-1 without gaps, got {indices}")
    return [labels[0] for labels in by_index["label"].to_list()]


def read_members(lake: Lake, version: int) -> pl.DataFrame:
    table = lake.read("dataset", columns=["image_id", "split", "label", "class_index", "weight"], version=version)
    return pl.from_arrow(table)


def iter_pixels(lake: Lake, version: int | None, image_ids: list[str], batch_rows: int = 4096):
    """(image_id, pixels) Arrow batches of the given images only, filtered in memory batch by batch
    against a set built once (:class:`sluice.membership.Members`: linear in the rows read).

    Not a pushed-down ``isin`` filter: pyarrow simplifies one of up to 50 values against each file's
    statistics, which deltalake types ``string_view``, and fails with ArrowNotImplementedError
    ``(string, string_view)``; with 51 and more it does not try. Filtering here works for any count.
    """
    from sluice.membership import Members

    wanted = Members(image_ids)
    if len(wanted) == 0:
        return
    for batch in lake.batches("images", ["image_id", "pixels"], batch_rows, version):
        ids = batch.column("image_id").cast(pa.string())
        keep = wanted.mask(ids)
        if pc.any(keep).as_py():
            yield pa.table({"image_id": ids.filter(keep), "pixels": batch.column("pixels").filter(keep)})


def read_pixels(lake: Lake, version: int, image_ids: list[str]) -> pa.Table:
    """image_id + pixels of the given images only, in bounded memory (see :func:`iter_pixels`)."""
    parts = list(iter_pixels(lake, version, image_ids))
    if not parts:
        return pa.table({"image_id": pa.array([], pa.string()), "pixels": pa.array([], pa.binary())})
    return pa.concat_tables(parts)


def image_geometry(lake: Lake, images_version: int, fallback: Geometry | None = None) -> Geometry:
    """The geometry the clean stage recorded on ``images`` at that version (``fallback`` for tables
    written before geometry was recorded, e.g. an old snapshot's manifest when rebuilding it)."""
    geometry = read_geometry(lake, "images", images_version) or fallback
    if geometry is None:
        raise InputError(f"table 'images' (version {images_version}) records no image geometry (written by an "
                         "older clean stage): rerun it (`dvc repro clean` or `python -m transform.clean`)")
    return geometry


def _rejects(members: pl.DataFrame, index: pl.DataFrame, expected: int, shape: tuple[int, int, int]
             ) -> tuple[pl.DataFrame, list[Rejected]]:
    """Members joined with ``index`` (image_id, pix_row, nbytes of the pixels found) and the rows that
    cannot be exported: an unknown split, no pixels, pixels of another size."""
    joined = members.join(index, on="image_id", how="left")
    rejects = []
    bad_split = joined.filter(~pl.col("split").is_in(list(SPLITS)))
    if bad_split.height:
        rejects.append(Rejected(bad_split["image_id"].to_list(), "unknown_split",
                                [f"split '{s}' is not one of {', '.join(SPLITS)}" for s in bad_split["split"]]))
    ok = joined.filter(pl.col("split").is_in(list(SPLITS)))
    missing = ok.filter(pl.col("pix_row").is_null())
    if missing.height:
        rejects.append(Rejected(missing["image_id"].to_list(), "pixels_missing",
                                ["no row in silver images at the pinned version"] * missing.height))
    wrong = ok.filter(pl.col("pix_row").is_not_null() & (pl.col("nbytes") != expected))
    if wrong.height:
        rejects.append(Rejected(wrong["image_id"].to_list(), "pixels_shape",
                                [f"{n} pixel bytes, expected {expected} ({shape[0]}x{shape[1]}x3, the images table's geometry)"
                                 for n in wrong["nbytes"]]))
    return ok, rejects


def assemble(members: pl.DataFrame, pixels: pa.Table, shape: tuple[int, int, int], classes: list[str] | None = None
             ) -> tuple[dict[str, SplitArrays], list[str], list[Rejected]]:
    """Join members with their pixels; per split sorted by image_id. Returns splits, classes (``classes``:
    the recorded class list, :func:`class_list`), rejects."""
    classes = class_list(members, classes)
    index = pl.from_arrow(pixels.select(["image_id"])).with_columns(
        pix_row=pl.int_range(pl.len(), dtype=pl.Int64),
        nbytes=pl.Series(pc.binary_length(pixels.column("pixels")).to_numpy(zero_copy_only=False)).cast(pl.Int64),
    )
    expected = int(np.prod(shape))
    ok, rejects = _rejects(members, index, expected, shape)
    good = ok.filter(pl.col("pix_row").is_not_null() & (pl.col("nbytes") == expected))
    splits = {}
    column = pixels.column("pixels")
    for split in SPLITS:
        part = good.filter(pl.col("split") == split).sort("image_id")
        if part.height == 0 and split != "train":
            continue
        splits[split] = SplitArrays(
            images=pixel_matrix(column, part["pix_row"].to_numpy(), shape),
            labels=part["class_index"].to_numpy().astype(np.int64),
            weights=part["weight"].to_numpy().astype(np.float32),
            ids=part["image_id"].to_list(),
        )
    return splits, classes, rejects


def assemble_to_disk(lake: Lake, version: int, members: pl.DataFrame, shape: tuple[int, int, int], work: Path,
                     shard_rows: int = 8192, client=None, classes: list[str] | None = None
                     ) -> tuple[dict[str, SplitArrays], list[str], list[Rejected], Path | None]:
    """:func:`assemble` in bounded memory, the pixels written once (:mod:`transform.export_pass`: each
    batch straight to its rows of the snapshot's image shards, memory-mapped in ``work``; as Dask
    tasks when ``client`` is given), so a process holds the membership table and one batch, never
    every pixel. Same arrays, same rejects; the fourth value is the folder of finished image shards
    for :func:`sluice.snapshot.write_snapshot` (``None`` when a row was rejected: the kept rows are
    then copied to compact arrays, a block at a time, and written as usual)."""
    classes = class_list(members, classes)
    expected = int(np.prod(shape))
    valid = members.filter(pl.col("split").is_in(list(SPLITS)))
    index = pl.concat([
        valid.filter(pl.col("split") == split).sort("image_id").with_columns(pos=pl.int_range(pl.len(), dtype=pl.Int64))
        for split in SPLITS]).select("image_id", "split", "pos")
    plan, shards = ShardPlan.create(index, shape, work / "shards", shard_rows)
    lookup = Lookup(plan.ids)
    seen_df = None
    if client is not None:
        seen_df = fill_on_dask(client, lake, version, plan, lookup, shards, on_unshared=lambda why: stage_logger(
            STAGE).warning("the Dask workers cannot write the snapshot's shards (%s): they send the pixels here "
                           "to be written (a shared disk saves that traffic)", why))
    if seen_df is None:
        seen_df = fill(file_batches(lake, version), plan, lookup, shards)
    stand_in = seen_df.with_columns(pix_row=pl.lit(0, pl.Int64))
    _, rejects = _rejects(members, stand_in, expected, shape)
    rejected = {i for r in rejects for i in r.image_ids}
    compact = bool(rejected) and bool(index["image_id"].is_in(list(rejected)).any())  # a shard row left empty
    splits = {}
    for split in SPLITS:
        part = index.filter(pl.col("split") == split).join(members.select("image_id", "class_index", "weight"),
                                                           on="image_id").sort("image_id")
        keep = part.filter(~pl.col("image_id").is_in(list(rejected)))
        if keep.height == 0 and split != "train":
            continue
        images = ShardedImages(shards[split], shape)
        if compact:  # rare: copy the kept rows to one compact map, a block at a time
            images = np.lib.format.open_memmap(work / f"{split}.kept.npy", mode="w+", dtype=np.uint8,
                                               shape=(max(1, keep.height), *shape))
            pos = keep["pos"].to_numpy()
            for start in range(0, len(pos), 4096):
                images[start:start + 4096] = ShardedImages(shards[split], shape).take(pos[start:start + 4096])
            images = images[: keep.height]
        splits[split] = SplitArrays(images=images, labels=keep["class_index"].to_numpy().astype(np.int64),
                                    weights=keep["weight"].to_numpy().astype(np.float32), ids=keep["image_id"].to_list())
    return splits, classes, rejects, None if compact else plan.folder


def train_stats(splits: dict[str, SplitArrays], dataset_manifest: dict | None, dataset_version: int) -> dict:
    """Per-channel mean/std of train: the dataset stage's figures when they describe this very table
    version, else computed here from the exported train pixels."""
    normalize = (dataset_manifest or {}).get("normalize") or {}
    recorded = ((dataset_manifest or {}).get("versions") or {}).get("dataset")
    if recorded == dataset_version and len(normalize.get("mean") or []) == 3 and len(normalize.get("std") or []) == 3:
        return {"mean": list(normalize["mean"]), "std": list(normalize["std"]), "source": "dataset manifest"}
    mean, std = channel_stats(splits["train"].images)
    return {"mean": mean, "std": std, "source": "computed from the exported train split"}


def channel_stats(images: np.ndarray, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean/std on the 0..1 scale, exact, from integer sums (same figures as
    :func:`sluice.snapshot.channel_stats`, ~15x faster: contiguous integer reductions, no float copy)."""
    total = np.zeros(3, np.float64)
    total_sq = np.zeros(3, np.float64)
    for start in range(0, len(images), chunk):
        flat = np.asarray(images[start:start + chunk]).reshape(min(chunk, len(images) - start), -1)
        total += flat.sum(axis=0, dtype=np.uint64).reshape(-1, 3).sum(axis=0)
        total_sq += np.square(flat, dtype=np.uint32).sum(axis=0, dtype=np.uint64).reshape(-1, 3).sum(axis=0)
    count = images.size // 3
    if count == 0:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    mean = total / count / 255.0
    std = np.sqrt(np.maximum(total_sq / count / 255.0 ** 2 - mean ** 2, 1e-12))
    return mean.round(6).tolist(), std.round(6).tolist()


def load_dataset_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def params_record(params) -> dict:
    """The params sections that shaped the snapshot (no lake location, no credentials)."""
    dumped = params.model_dump(mode="json")
    return {k: dumped[k] for k in UPSTREAM_SECTIONS if k in dumped}


def export(lake: Lake, out_dir: Path | str, params, versions: dict[str, int] | None = None,
           dataset_manifest: dict | None = None, geometry: Geometry | None = None
           ) -> tuple[dict, list[Rejected], int]:
    """Build the snapshot from the pinned table versions. Returns (manifest, rejects, rows in).

    The image shape is the one recorded on the pinned ``images`` version (``geometry`` only stands in
    for a table that records none)."""
    pinned = pinned_versions(lake, versions)
    members = read_members(lake, pinned["dataset"])
    if members.height == 0:
        raise InputError(f"table 'dataset' (version {pinned['dataset']}) has no rows: nothing to export")
    geometry = image_geometry(lake, pinned["images"], geometry)
    Path(out_dir).absolute().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=Path(out_dir).absolute().parent) as work, \
            _client(params.compute) as client:
        splits, classes, rejects, staged = assemble_to_disk(lake, pinned["images"], members, geometry.shape, Path(work),
                                                            params.export.shard_rows, client,
                                                            class_order.recorded(lake, "dataset", pinned["dataset"]))
        return _finish(out_dir, params, pinned, geometry, members, splits, classes, rejects, dataset_manifest, staged)


@contextmanager
def _client(compute):
    """A Dask client for the pixel pass when ``compute.scheduler_address`` names a cluster, else None (one
    process: on one small machine a LocalCluster's pass was slower, docs/versioning.md)."""
    if compute is None or not compute.scheduler_address:
        yield None
        return
    from sluice.compute import dask_client

    with dask_client(compute, stage=STAGE) as client:
        yield client


def _finish(out_dir, params, pinned, geometry, members, splits, classes, rejects, dataset_manifest, staged=None):
    if len(splits["train"].labels) == 0:
        raise InputError("dataset: no exportable train rows (every train row was rejected; see quarantine)")
    stats = train_stats(splits, dataset_manifest, pinned["dataset"])
    counts = {s: len(a.labels) for s, a in splits.items()}
    extra = {
        "table_versions": pinned,
        "geometry": geometry.to_dict(),
        "params": params_record(params),
        "counts": {**counts, "total": sum(counts.values()), "rejected": sum(len(r.image_ids) for r in rejects)},
        "mean": stats["mean"], "std": stats["std"], "stats_scale": "0..1", "stats_source": stats["source"],
        "weighted": bool(any(np.any(a.weights != 1.0) for a in splits.values())),
    }
    manifest = write_snapshot(out_dir, splits, classes, extra, shard_rows=params.export.shard_rows, images_in=staged)
    return manifest, rejects, members.height


def record_rejects(lake: Lake, rejects: list[Rejected], run_id: str) -> None:
    """Replace this stage's quarantine rows (so rows fixed upstream are re-admitted on rerun)."""
    quarantine = Quarantine(STAGE, "dataset", run_id)
    for r in rejects:
        for image_id, details in zip(r.image_ids, r.details):
            quarantine.add(image_id, r.check, details=details)
    quarantine.write(lake, replace=True)


def run(params, manifest_dir: Path | str = MANIFEST_DIR) -> dict:
    lake = Lake.from_params(params)
    run_id = new_run_id(STAGE)
    out_dir = Path(params.export.out_dir)
    dataset_manifest = load_dataset_manifest(Path(manifest_dir) / "dataset.json")
    manifest, rejects, rows_in = export(lake, out_dir, params, dataset_manifest=dataset_manifest)
    record_rejects(lake, rejects, run_id)
    reconcile(STAGE, rows_in, exported=manifest["counts"]["total"], quarantined=manifest["counts"]["rejected"])
    log = stage_logger(STAGE)
    for r in rejects:
        log.warning("quarantined %d row(s): %s (e.g. %s: %s)", len(r.image_ids), r.check, r.image_ids[0], r.details[0])
    per_split = ", ".join(f"{s} {manifest['splits'][s]['rows']}" for s in manifest["splits"])
    log.info("%s: %s; %d classes; tables %s; content_hash %s", out_dir, per_split, len(manifest["classes"]),
             manifest["table_versions"], manifest["content_hash"][:16])
    return {**manifest, "snapshot_dir": str(out_dir)}


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
