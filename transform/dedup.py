"""Stage ``dedup``: exact and near-duplicate groups of silver ``images``, into ``image_groups``.

- Exact duplicates share ``pixel_hash`` (the same normalized pixels from different bytes; the same
  bytes are already one image since ``image_id`` is the hash of the bytes).
- Near-duplicates survive real edits (shifts, crops, greyscale, colour/contrast, re-encodes): window
  hashes of equalised grey thumbnails within ``dedup.near_threshold`` bits, found with multi-index
  hashing (never all pairs), then verified by the aligned correlation reaching
  ``dedup.min_correlation`` (see :mod:`transform.dedup_match`).

Groups are the connected components of those pairs. The canonical member is the copy kept for training
(ranked in :mod:`transform.dedup_groups`: not framed, colour, enough pixels, lossless, landed first, ...);
``image_groups.dup_group`` is its image_id for every member, ``is_canonical`` marks it, and each image records its strongest
match (kind, score, partner). ``image_groups`` is narrow and replaced whole on each run, so
regrouping never rewrites pixels; ``images`` stays append-only. Rerunning gives the same groups.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import polars as pl
import pyarrow as pa

from sluice import thumbnails
from sluice.compute import total_threads
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.progress import Meter
from sluice.runs import new_run_id, reconcile
from sluice.stage import stage_logger
from sluice.thumbnails import equalise
from transform.dedup_codes import WindowCodes
from transform.dedup_groups import assign_groups, best_matches, landing_order, match_kinds
from transform.dedup_match import MIN_DETAIL, probe_windows, unframe
from transform.hamming import near_pairs_touching

STAGE = "dedup"
# pairs with a nearly detail-free image (an upscaled 8x8 scan: high-frequency share below MIN_DETAIL, transform.dedup_match):
# different digits of one class correlate up to 0.993 aligned and equalised (0.996 plain), copies >= 0.9995
# on plain grey, so such pairs get the strict plain check only (and are found by it: transform.dedup_plain)
PHASH_BITS = 6
TINY_MIN_CORRELATION = 0.998
# from this many images to search on (every image in a full pass, the new ones in an incremental run; or
# whenever compute.scheduler_address is set) the candidate search (partitioned by hash chunk), and thumbnails
# not stored by clean (one task per batch of images), run on Dask; below it a LocalCluster costs more than it
# saves (CIFAR-10's project with 600 new images: 7.2-8.6 s in one process, 11.0-11.6 s on 2 workers)
DASK_MIN_IMAGES = 20_000
TASK_BYTES = 8 << 20  # pixels a thumbnail task carries at most


def sketch_batch(ids: list[str], pixels: list[bytes], shape: tuple[int, ...] | None) -> tuple:
    """One batch of silver rows without a stored sketch (cleaned before ``images.thumb`` existed): their
    ids and the sketch computed from the pixels (``shape``: the recorded geometry, else square). A Dask
    task when dedup runs on a cluster."""
    flat = np.frombuffer(b"".join(pixels), np.uint8)
    if shape is None:
        side = round((flat.size / len(ids) / 3) ** 0.5)
        shape = (side, side, 3)
    return (ids, *thumbnails.sketch(flat.reshape(len(ids), *shape)))


def _stored_sketches(batch) -> tuple[tuple, list[str]]:
    """A batch of (image_id, thumb, greyscale, mean_rgb) rows -> the part whose sketch is stored, and the
    ids of rows without one."""
    ids = np.asarray(batch.column("image_id").to_pylist(), dtype=object)
    stored = batch.column("thumb").is_valid().to_numpy(zero_copy_only=False)
    rows = batch.filter(pa.array(stored))
    plain = np.frombuffer(b"".join(rows.column("thumb").to_pylist()), np.uint8).reshape(-1, thumbnails.GRID, thumbnails.GRID)
    colour = rows.column("mean_rgb").flatten().to_numpy().reshape(-1, 3)
    grey = rows.column("greyscale").to_numpy(zero_copy_only=False).astype(bool)
    return (list(ids[stored]), plain, grey, colour), list(ids[~stored])


def _sketches(lake: Lake, ids: np.ndarray, batch_rows: int = 8192, client=None, on_progress=None
              ) -> tuple[np.ndarray, ...]:
    """Every silver image's equalised and plain thumbnails (a frame cut off), greyscale flag, mean colour and
    whether a frame was cut off, sorted like ``ids``. Read from ``images.thumb``/``greyscale``/``mean_rgb`` (1 KB an image, computed at clean time);
    rows cleaned before those columns existed are computed from their pixels (``sketch_batch``: with
    ``client`` one task per batch, at most two per worker thread in flight, so memory stays bounded).
    ``on_progress(n)`` is called as each batch's n images are done. Each batch goes straight to its rows
    of the result (no list of parts concatenated and reordered: that held the thumbnails three times,
    3 GB at 1M images)."""
    row_of = dict(zip(ids.tolist(), range(len(ids))))
    out: list[np.ndarray] = []
    filled = np.zeros(len(ids), bool)
    done = on_progress or (lambda n: None)

    def collect(part: tuple) -> None:
        rows = np.fromiter((row_of[i] for i in part[0]), np.int64, len(part[0]))
        plain = unframe(part[1])  # a padded, letterboxed or framed copy is compared as the image it holds
        framed = (plain != part[1]).any(axis=(1, 2))
        if not out:
            out.extend(np.zeros((len(ids), *column.shape[1:]), column.dtype)
                       for column in (part[1], *part[1:4], framed))
        for target, column in zip(out, (equalise(plain), plain, *part[2:4], framed)):
            target[rows] = column
        filled[rows] = True
        done(len(rows))
    missing: set[str] | None = None  # None: no row has a stored sketch (an older table)
    if "thumb" in lake.dataset("images").schema.names:
        missing = set()
        for batch in lake.batches("images", ["image_id", "thumb", "greyscale", "mean_rgb"], batch_rows):
            part, without = _stored_sketches(batch)
            collect(part)
            missing.update(without)
    if missing is None or missing:
        _from_pixels(lake, missing, batch_rows, client, collect)
    if not filled.all():
        raise RuntimeError(f"dedup: no sketch read for {int((~filled).sum())} images of the images table")
    return tuple(out)


def _from_pixels(lake: Lake, only: set[str] | None, batch_rows: int, client, collect) -> None:
    """``sketch_batch`` over the images table's rows (those in ``only`` when given)."""
    from sluice.imaging import read_geometry
    from sluice.membership import Members

    geometry = read_geometry(lake, "images")
    shape = geometry.shape if geometry is not None else None
    in_flight: deque = deque()
    window = 2 * total_threads(client) if client is not None else 0
    wanted = Members(only) if only is not None else None
    for batch in lake.batches("images", ["image_id", "pixels"], batch_rows):
        if wanted is not None:
            batch = batch.filter(wanted.mask(batch.column("image_id")))
        if batch.num_rows == 0:
            continue
        if client is None:
            collect(sketch_batch(batch.column("image_id").to_pylist(), batch.column("pixels").to_pylist(), shape))
            continue
        # a task carries its pixels in its graph (scattering them first measured 1.8x slower), so tasks
        # stay under distributed's large-graph warning (10 MB)
        pieces = -(-batch.column("pixels").nbytes // TASK_BYTES)
        for piece in range(pieces):
            part = batch.slice(piece * -(-batch.num_rows // pieces), -(-batch.num_rows // pieces))
            in_flight.append(client.submit(sketch_batch, part.column("image_id").to_pylist(),
                                           part.column("pixels").to_pylist(), shape, pure=False))
            while len(in_flight) > window:
                collect(in_flight.popleft().result())
    for future in in_flight:
        collect(future.result())


def required_score(geometry: np.ndarray, min_correlation: float, moved_margin: float) -> np.ndarray:
    """The score a verified pair of this geometry needs (see :func:`near_edges`)."""
    from transform.dedup_match import MIRRORED, STRETCHED, ZOOMED

    moved = (geometry & (MIRRORED | STRETCHED | 3)) > 0  # OVERLAID adds nothing: its score already counts OVERLAY_MARGIN less
    margins = moved.astype(np.int8) + ((geometry & MIRRORED) > 0) + ((geometry & (ZOOMED | STRETCHED)) > 0)
    return min_correlation + moved_margin * margins


def near_edges(thumbs: np.ndarray, plain: np.ndarray, phash: np.ndarray, pixel_hash: np.ndarray, threshold: int,
               min_correlation: float, moved_margin: float = 0.05, max_per_image: int | None = None,
               stats: dict | None = None, client=None, log=None, new: np.ndarray | None = None,
               min_detail_correlation: float = 0.5, mirrored: bool = False, codes=None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Accepted near pairs (i < j, not already exact) with score and geometry, and the counts of the
    candidates checked (``candidates``: pairs not already exact) and of those the pixels ``rejected``.
    With ``mirrored``, copies flipped left to right are searched for too (transform/dedup_match.py).

    A pair aligned by a shift or a crop had more freedom to fit, so it needs ``moved_margin`` more; a
    mirrored one twice that (it also had the other orientation: on CIFAR-10 a tenth of the mirrored pairs under
    0.90 joined two classes, none above) and more than its images' own mirror symmetry (a ship on a horizon meets
    its own mirror image: dedup_match.mirror_of_itself), and one aligned at a ZOOM_SIZE window (a 20-30% crop) or
    one of another aspect (STRETCHED) one more; and its band-pass detail must correlate ``min_detail_correlation``.

    Pairs with a nearly detail-free image (below MIN_DETAIL) are judged by the plain correlation
    alone (TINY_MIN_CORRELATION), and found by it too, exactly (:mod:`transform.dedup_plain`). The
    other pairs' candidates come from two signals among the images with detail: window hashes of the
    equalised thumbnails (shift/crop tolerant) and the stored whole-image perceptual hashes within
    PHASH_BITS. ``max_per_image`` and ``stats``: see :func:`transform.dedup_search.candidates`. The
    candidate search and the aligned check run on ``client``'s Dask workers when one is given; ``log``
    gets their progress. The pairs are judged a bucket at a time as the check yields them, and only the
    accepted ones are kept. With ``new`` (row numbers), only pairs with at least one new image are
    searched and returned. ``codes`` (:class:`transform.dedup_codes.WindowCodes`): the window codes known
    already; it is laid out here for the images with detail and on return holds all of theirs (to be stored).
    """
    from transform.dedup_codes import fill
    from transform.dedup_match import MIRRORED, mirror_of_itself, probe_windows, spectrum
    from transform.dedup_plain import DIMS, plain_pairs
    from transform.dedup_check import match_buckets

    share, low = spectrum(plain, DIMS)
    smooth = share < MIN_DETAIL  # upscaled scans, smooth scenes: too little detail for the tolerant check
    rough = np.flatnonzero(~smooth)
    pi, pj, _ = near_pairs_touching(phash, new, min(threshold, PHASH_BITS))  # new is None: every pair
    keep = ~smooth[pi] & ~smooth[pj]
    exact = np.unique(pixel_hash, return_inverse=True)[1].ravel()  # one integer per distinct pixel hash
    stats = {} if stats is None else stats
    kept, counts = [], {"candidates": 0, "rejected": 0}
    codes = codes.bind(rough) if codes is not None else None
    for ni, nj, score, geometry in match_buckets(thumbs, threshold, extra=(pi[keep], pj[keep]), plain=plain,
                                                 max_per_image=max_per_image, stats=stats, client=client, log=log,
                                                 new=None if new is None else new[~smooth[new]],
                                                 floor=min_correlation, among=rough,
                                                 min_band=min_detail_correlation, mirrored=mirrored, codes=codes,
                                                 required=lambda g: required_score(g, min_correlation, moved_margin)):
        cand = exact[ni] != exact[nj]  # pairs already exact need no pixel check
        ni, nj, score, geometry = ni[cand], nj[cand], score[cand], geometry[cand]
        ok = score >= required_score(geometry, min_correlation, moved_margin)
        ok &= ~mirror_of_itself(plain, ni, nj, score, geometry, ok)
        counts["candidates"] += len(ni)
        counts["rejected"] += int((~ok).sum())
        kept.append((ni[ok], nj[ok], score[ok], geometry[ok]))
    if codes is not None:  # a full pass hashes the indexed windows block by block: kept for the next run
        fill(codes.probes, codes.have_probes, thumbs, probe_windows(mirrored), rough, client)
    counts["candidates"] += stats["below_floor"]  # verified below min_correlation: counted, never kept
    counts["rejected"] += stats["below_floor"]
    plain_found = 0
    for flip in (False, True) if mirrored else (False,):
        meter = Meter(log, "detail-free search" + " (mirrored)" * flip, len(plain) if new is None else len(new),
                      "img") if log else None
        ti, tj, tscore = plain_pairs(plain, share, low, exact, MIN_DETAIL, max(min_correlation, TINY_MIN_CORRELATION),
                                     max_per_image, new, stats, on_progress=meter and meter.update, mirrored=flip)
        if meter:
            meter.close()
        kept.append((ti, tj, tscore, np.full(len(ti), MIRRORED * flip, np.int8)))
        plain_found += len(ti)
    stats["detail_free_images"] = int(smooth.sum())
    counts["candidates"] += stats["plain_candidates"]
    counts["rejected"] += stats["plain_candidates"] - plain_found
    i, j, score, geometry = (np.concatenate([part[c] for part in kept]) for c in range(4))
    order = np.lexsort((-score, j, i))  # a detail-free pair met as it is and mirrored keeps its higher score
    i, j, score, geometry = i[order], j[order], score[order], geometry[order]
    first = np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])] if len(i) else np.zeros(0, bool)
    return i[first], j[first], score[first], geometry[first], counts


def find_groups(lake: Lake, threshold: int, min_correlation: float, moved_margin: float = 0.05,
                max_per_image: int | None = None, compute=None, cfg=None, min_detail_correlation: float = 0.5,
                mirrored: bool = False, output_pixels: int | None = None) -> tuple[pl.DataFrame, dict, WindowCodes]:
    """Duplicate groups of every image in silver (with each image's strongest match and its
    ``match_basis``), counts, and the images' window codes (in the groups' row order). With ``cfg`` (the dedup params) the stored ``image_groups`` is built on
    when it still holds (:mod:`transform.dedup_state`): only pairs with a new image are searched."""
    from transform import dedup_state

    meta = pl.from_arrow(lake.read("images", columns=["image_id", "width", "height", "format", "pixel_hash", "phash"]))
    meta = meta.sort("image_id").with_row_index("row")
    exact = (meta.group_by("pixel_hash").agg(pl.col("row").min().alias("first"), pl.col("row"))
             .explode("row").filter(pl.col("row") != pl.col("first")))
    ids = meta["image_id"].to_numpy().astype(object)
    search: dict = {}
    log = stage_logger(STAGE)
    print_ = dedup_state.fingerprint(cfg) if cfg is not None else ""
    held = lake.dataset("image_groups").schema.names if cfg is not None and lake.exists("image_groups") else []
    stored = pl.from_arrow(lake.read("image_groups", [c for c in held if not c.endswith("_codes")])) if held else None
    new, mode = dedup_state.plan(meta, stored, print_, cfg is not None and cfg.incremental)
    # the stored codes hold when the stored rows do (same pixels, settings and matching: an incremental run)
    codes = WindowCodes(meta["image_id"], len(probe_windows(mirrored)),
                        pl.from_arrow(lake.read("image_groups", ["image_id", "window_codes", "probe_codes"]))
                        if new is not None and "window_codes" in held else None)

    def edges(client=None):
        if meta.height:
            meter = Meter(log, "thumbnails", meta.height, "img")
            thumbs, plain, grey, colour, framed = _sketches(lake, ids, client=client, on_progress=meter.update)
            meter.close()
        else:
            thumbs, plain = (np.zeros((0, 32, 32), np.uint8),) * 2
            grey, colour, framed = np.zeros(0, bool), np.zeros((0, 3)), np.zeros(0, bool)
        return (*near_edges(thumbs, plain, meta["phash"].to_numpy(), meta["pixel_hash"].to_numpy(), threshold,
                            min_correlation, moved_margin, max_per_image, search, client=client, log=log, new=new,
                            min_detail_correlation=min_detail_correlation, mirrored=mirrored, codes=codes),
                grey, colour, framed.astype(bool))

    log.info("%s", mode)
    searched = meta.height if new is None else len(new)
    if compute is not None and (compute.scheduler_address or searched >= DASK_MIN_IMAGES):
        from sluice.compute import dask_client

        with dask_client(compute, stage=STAGE) as client:
            ni, nj, score, geometry, near, grey, colour, framed = edges(client)
    else:
        ni, nj, score, geometry, near, grey, colour, framed = edges()
    ei, ej = exact["first"].to_numpy().astype(np.int64), exact["row"].to_numpy().astype(np.int64)
    si, sj = dedup_state.stored_edges(meta, stored) if new is not None else (np.zeros(0, np.int64),) * 2
    i, j = np.concatenate([ei, ni]), np.concatenate([ej, nj])
    kinds = np.concatenate([np.full(len(ei), "exact", dtype=object),
                            match_kinds(geometry, grey[ni], grey[nj], colour[ni], colour[nj], framed[ni], framed[nj])
                            if len(ni) else np.zeros(0, object)])
    scores = np.concatenate([np.ones(len(ei), np.float32), score])
    best = best_matches(ids, i, j, kinds, scores,
                        dedup_state.stored_matches(stored, meta["image_id"]) if new is not None else None)
    basis = meta.select("image_id", dedup_state.basis(meta, print_) if cfg is not None
                        else pl.lit(None, pl.String).alias("match_basis"))
    ranked = meta.with_columns(greyscale=pl.Series(grey.astype(bool)), framed=pl.Series(framed)).join(
        landing_order(pl.from_arrow(lake.read("raw_images", ["image_id", "fetched_at", "run_id"]))), on="image_id",
        how="left").sort("row")
    groups = (assign_groups(ranked, np.concatenate([i, si]), np.concatenate([j, sj]), output_pixels)
              .join(best, on="image_id", how="left").join(basis, on="image_id", how="left").sort("image_id"))
    sizes = groups.group_by("dup_group").len().filter(pl.col("len") > 1)
    counts = {"mode": mode.split(" (")[0], "why": mode, "new_images": meta.height if new is None else len(new),
              "images": meta.height, "exact_pairs": exact.height, "near_candidates": near["candidates"],
              "near_pairs": len(ni), "near_rejected_by_pixels": near["rejected"],
              "groups_with_duplicates": sizes.height, "images_in_groups": int(sizes["len"].sum() or 0),
              "largest_group": int(sizes["len"].max() or 1) if sizes.height else 1,
              "near_kinds": {str(k): int(v) for k, v in zip(*np.unique(kinds[len(ei):].astype(str), return_counts=True))},
              "search": search}
    return groups, counts, codes


# ---------------------------------------------------------------------------- the stage
def write_groups(lake: Lake, groups: pl.DataFrame, run_id: str, codes: WindowCodes | None = None) -> dict:
    """Replace the narrow ``image_groups`` table (with each image's window ``codes``, rows in ``groups``' order,
    for the next run: transform/dedup_codes.py); ``images`` (the pixels) is never rewritten."""
    table = groups.select("image_id", "dup_group", "is_canonical", "match_kind", "match_score", "match_with",
                          "match_basis", run_id=pl.lit(run_id)).to_arrow()
    if codes is not None:  # straight from the code arrays to Arrow: 660 bytes an image, never copied twice
        table = table.append_column("window_codes", codes.binary("windows")).append_column("probe_codes",
                                                                                         codes.binary("probes"))
    return {"updated": lake.overwrite("image_groups", table, run_id=run_id)}


def run(params) -> dict:
    cfg = params.dedup
    lake = Lake.from_params(params)
    if not lake.exists("images"):
        raise InputError(f"table 'images' does not exist yet in the lake at {lake.root} (run the clean stage: python -m transform.clean)")
    run_id = new_run_id(STAGE)
    started = time.perf_counter()
    groups, counts, codes = find_groups(lake, cfg.near_threshold, cfg.min_correlation, cfg.moved_margin,
                                 cfg.max_candidates_per_image, params.compute, cfg=cfg,
                                 min_detail_correlation=cfg.min_detail_correlation, mirrored=cfg.mirrored,
                                 output_pixels=params.clean.shape[0] * params.clean.shape[1])
    written = write_groups(lake, groups, run_id, codes)
    canonical = int(groups["is_canonical"].sum())
    recon = reconcile(STAGE, counts["images"], canonical=canonical, merged_duplicates=groups.height - canonical)
    seconds = time.perf_counter() - started
    print(f"[{STAGE}] {counts['images']} images: {counts['groups_with_duplicates']} duplicate groups "
          f"({counts['exact_pairs']} exact, {counts['near_pairs']} near pairs"
          f"{' with a new image' if counts['mode'] == 'incremental' else ''}; {counts['near_rejected_by_pixels']} "
          f"candidates rejected on pixels) in {seconds:.1f}s; {counts['why']}")
    if counts["search"].get("capped_images"):
        print(f"[{STAGE}] warning: {counts['search']['capped_images']} images met more than "
              f"dedup.max_candidates_per_image={cfg.max_candidates_per_image} candidates (near-identical hashes); "
              f"their {counts['search']['capped_pairs_dropped']} farthest candidate pairs were not verified")
    return {"run_id": run_id, "reconcile": recon, "counts": counts, "updated": written["updated"],
            "seconds": round(seconds, 3), "versions": {"images": lake.version("images"),
                                                        "image_groups": lake.version("image_groups")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
