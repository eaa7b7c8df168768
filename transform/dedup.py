"""Stage ``dedup``: exact and near-duplicate groups in silver ``images``.

- Exact duplicates share ``pixel_hash`` (the same normalized pixels from different bytes; the same
  bytes are already one image since ``image_id`` is the hash of the bytes).
- Near-duplicates are pairs whose 64-bit perceptual hashes differ in at most ``dedup.near_threshold``
  bits, found with multi-index hashing (never all pairs), then confirmed on the pixels: the Pearson
  correlation of the two normalized grey images must reach ``dedup.min_correlation``. The check keeps
  distinct images whose coarse hashes happen to collide (the demo's 8x8 digit scans do) apart.

Groups are the connected components of those pairs. The canonical member is the one with the most
decoded pixels, then a lossless format, then the smallest ``image_id``; ``images.dup_group`` is its
image_id for every member and ``is_canonical`` marks it. Rerunning recomputes the same groups.
"""

from __future__ import annotations

import time
from itertools import combinations

import numpy as np
import polars as pl
import pyarrow.compute as pc

from sluice.errors import InputError
from sluice.lake import Lake
from sluice.runs import new_run_id, reconcile

STAGE = "dedup"
_PROBE_BLOCK = 8192
_TABLE_BITS = 20  # chunks up to this wide get a direct bucket table (8 MiB at 20 bits)
_PROBE_COST = 8.0
LOSSLESS = ("PNG", "BMP", "TIFF", "PPM", "GIF", "WEBP")


# ---------------------------------------------------------------------------- the index
def plan_chunks(n: int, threshold: int) -> tuple[int, int]:
    """Pick (chunks m, probe radius r) for multi-index hashing of ``n`` 64-bit codes.

    Split the code into m chunks; two codes within ``threshold`` bits agree within r = threshold // m
    bits on at least one chunk (pigeonhole: otherwise every chunk differs in r+1 or more). Cost per
    query ~ m * probes(r) * (probe cost + n / 2**chunk_bits) under uniform codes, where a probe (two
    binary searches) costs about as much as verifying 8 candidates, a table lookup a quarter of that;
    pick the cheapest m.
    """
    from math import comb

    best = None
    for m in range(2, 17):  # chunks of 32 down to 4 bits
        bits = 64 // m
        r = threshold // m
        probes = sum(comb(bits, k) for k in range(r + 1))
        probe_cost = _PROBE_COST / 4 if bits <= _TABLE_BITS else _PROBE_COST
        cost = m * probes * (probe_cost + n / 2.0 ** bits)
        if best is None or cost < best[0]:
            best = (cost, m, r)
    return best[1], best[2]


def _chunk_bounds(m: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, 64, m + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def near_pairs(codes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All index pairs (i < j) whose codes differ in <= ``threshold`` bits, with their distance.

    Exact (recall 1.0 against brute force by the pigeonhole argument in :func:`plan_chunks`); work
    grows with the number of candidates, not with n^2.
    """
    codes = np.ascontiguousarray(codes).view(np.uint64)
    n = len(codes)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n < 2:
        return empty
    m, r = plan_chunks(n, threshold)
    found_i, found_j = [], []
    for lo, hi in _chunk_bounds(m):
        width = hi - lo
        key = ((codes >> np.uint64(64 - hi)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        sorted_keys = key[order]
        if width <= _TABLE_BITS:  # direct bucket table: O(1) per probe instead of two binary searches
            bucket_count = np.bincount(key, minlength=1 << width)
            bucket_start = np.cumsum(bucket_count) - bucket_count
        flips = np.asarray([0] + [sum(1 << b for b in bits) for k in range(1, r + 1)
                                  for bits in combinations(range(width), k)], np.int64)
        for start in range(0, n, _PROBE_BLOCK):  # bounded memory: one block of queries at a time
            q = np.arange(start, min(start + _PROBE_BLOCK, n), dtype=np.int64)
            probe = (key[q, None] ^ flips[None, :]).ravel()
            if width <= _TABLE_BITS:
                first, count = bucket_start[probe], bucket_count[probe]
            else:
                first = np.searchsorted(sorted_keys, probe, "left")
                count = np.searchsorted(sorted_keys, probe, "right") - first
            total = int(count.sum())
            if total == 0:
                continue
            qi = np.repeat(np.repeat(q, len(flips)), count)
            offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
            qj = order[np.repeat(first, count) + offset]
            keep = qi < qj
            qi, qj = qi[keep], qj[keep]
            close = np.bitwise_count(codes[qi] ^ codes[qj]) <= threshold
            found_i.append(qi[close])
            found_j.append(qj[close])
    if not found_i:
        return empty
    pairs = np.unique(np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1), axis=0)
    i, j = pairs[:, 0], pairs[:, 1]
    return i, j, np.bitwise_count(codes[i] ^ codes[j]).astype(np.int64)


def brute_force_pairs(codes: np.ndarray, threshold: int, block: int = 2048,
                      query_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: every pair's Hamming distance, in row blocks (memory-bounded, still n^2 work).

    ``query_rows`` limits the queries to the first rows (each still compared with every code), so a
    benchmark can time a slice of the quadratic work and scale it up.
    """
    codes = np.ascontiguousarray(codes).view(np.uint64)
    stop = len(codes) if query_rows is None else min(query_rows, len(codes))
    out_i, out_j = [], []
    for start in range(0, stop, block):
        rows = codes[start:min(start + block, stop)]
        d = np.bitwise_count(rows[:, None] ^ codes[None, :])
        i, j = np.nonzero(d <= threshold)
        i += start
        keep = i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
    i, j = (np.concatenate(out_i), np.concatenate(out_j)) if out_i else (np.zeros(0, np.int64),) * 2
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64)


# ---------------------------------------------------------------------------- grouping
def grey_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of the grey versions of two (n, H*W*3) uint8 pixel blocks."""
    def standardize(x):
        g = x.reshape(len(x), -1, 3).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        g -= g.mean(axis=1, keepdims=True)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-6)

    return (standardize(a) * standardize(b)).sum(axis=1) if len(a) else np.zeros(0, np.float32)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label per node of an undirected graph given as edge lists."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def assign_groups(images: pl.DataFrame, i: np.ndarray, j: np.ndarray) -> pl.DataFrame:
    """``images`` (image_id, width, height, format, row) + duplicate edges -> dup_group, is_canonical."""
    comp = components(images.height, i, j)
    ranked = images.with_columns(
        comp=pl.Series(comp),
        area=pl.col("width").cast(pl.Int64) * pl.col("height").cast(pl.Int64),
        lossy=~pl.col("format").is_in(LOSSLESS).fill_null(False),
    ).sort(["comp", "area", "lossy", "image_id"], descending=[False, True, False, False])
    return (ranked.with_columns(dup_group=pl.col("image_id").first().over("comp"))
            .with_columns(is_canonical=pl.col("image_id") == pl.col("dup_group"))
            .select("image_id", "dup_group", "is_canonical").sort("image_id"))


def find_groups(lake: Lake, threshold: int, min_correlation: float) -> tuple[pl.DataFrame, dict]:
    """Duplicate groups of every image in silver, and counts of how they were found."""
    meta = pl.from_arrow(lake.read("images", columns=["image_id", "width", "height", "format", "pixel_hash", "phash"]))
    meta = meta.sort("image_id").with_row_index("row")
    exact = (meta.group_by("pixel_hash").agg(pl.col("row").min().alias("first"), pl.col("row"))
             .explode("row").filter(pl.col("row") != pl.col("first")))
    ni, nj, dist = near_pairs(meta["phash"].to_numpy(), threshold)
    same_pixels = meta["pixel_hash"].to_numpy()
    cand = ~(same_pixels[ni] == same_pixels[nj])  # pairs already exact need no pixel check
    ni, nj, dist = ni[cand], nj[cand], dist[cand]
    corr = _pair_correlations(lake, meta, ni, nj)
    ok = corr >= min_correlation
    i = np.concatenate([exact["first"].to_numpy().astype(np.int64), ni[ok]])
    j = np.concatenate([exact["row"].to_numpy().astype(np.int64), nj[ok]])
    groups = assign_groups(meta, i, j)
    sizes = groups.group_by("dup_group").len().filter(pl.col("len") > 1)
    counts = {"images": meta.height, "exact_pairs": exact.height, "near_candidates": int(len(ni)),
              "near_pairs": int(ok.sum()), "near_rejected_by_pixels": int((~ok).sum()),
              "groups_with_duplicates": sizes.height, "images_in_groups": int(sizes["len"].sum() or 0),
              "largest_group": int(sizes["len"].max() or 1) if sizes.height else 1}
    return groups, counts


def _pair_correlations(lake: Lake, meta: pl.DataFrame, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    if len(i) == 0:
        return np.zeros(0, np.float32)
    rows = np.unique(np.concatenate([i, j]))
    wanted = meta["image_id"].to_numpy()[rows].tolist()
    px = lake.read("images", columns=["image_id", "pixels"], filter=pc.field("image_id").isin(wanted))
    by_id = dict(zip(px.column("image_id").to_pylist(), px.column("pixels").to_pylist()))
    ids = meta["image_id"].to_numpy()
    block = lambda idx: np.stack([np.frombuffer(by_id[ids[k]], np.uint8) for k in idx])
    return grey_correlation(block(i), block(j))


# ---------------------------------------------------------------------------- the stage
def write_groups(lake: Lake, groups: pl.DataFrame, run_id: str) -> dict:
    """Set dup_group / is_canonical on ``images`` in place (a column update, pixels untouched)."""
    updated = lake.update_columns("images", groups.select("image_id", "dup_group", "is_canonical").to_arrow(),
                                  ["dup_group", "is_canonical"], run_id=run_id, operation="dedup groups")
    return {"updated": updated}


def run(params) -> dict:
    cfg = params.dedup
    lake = Lake.from_params(params)
    if not lake.exists("images"):
        raise InputError(f"table 'images' does not exist yet in the lake at {lake.root} (run the clean stage: python -m transform.clean)")
    run_id = new_run_id(STAGE)
    started = time.perf_counter()
    groups, counts = find_groups(lake, cfg.near_threshold, cfg.min_correlation)
    written = write_groups(lake, groups, run_id)
    canonical = int(groups["is_canonical"].sum())
    recon = reconcile(STAGE, counts["images"], canonical=canonical, merged_duplicates=groups.height - canonical)
    seconds = time.perf_counter() - started
    print(f"[{STAGE}] {counts['images']} images: {counts['groups_with_duplicates']} duplicate groups "
          f"({counts['exact_pairs']} exact, {counts['near_pairs']} near pairs; {counts['near_rejected_by_pixels']} "
          f"hash collisions rejected on pixels) in {seconds:.1f}s")
    return {"run_id": run_id, "reconcile": recon, "counts": counts, "updated": written["updated"],
            "seconds": round(seconds, 3), "versions": {"images": lake.version("images")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
