"""Incremental dedup: what the last run's ``image_groups`` still says, and which images are new.

A full dedup pass searches every pair of images, so its cost grows ~N^2 with the lake (docs/scale.md);
a lake that grows by a batch at a time only needs the pairs with a new image. ``image_groups`` keeps,
per image, its group, its strongest match and ``match_basis``: the dedup settings and the image's
``pixel_hash`` its row was computed from. A run can reuse the stored rows when

- every stored row's basis is the current one (same settings, same matching code, same pixels: clean
  rewrites ``images`` on every run, but unchanged bytes give the same pixels), and
- no image that was in a group, or that a group or a best match names, has left the lake (erasure,
  an outlier removed by clean): its edges held the group together, so the groups are recomputed.

Then the stored groups stand for the pairs among the old images (a group is a connected component,
so edges from each member to its canonical one connect it the same way) and only pairs with a new
image are searched and verified: the same groups as a full pass (tested) unless
``dedup.max_candidates_per_image`` binds. Otherwise, or with ``dedup.incremental: false``, or when more
than ``FULL_PASS_SHARE`` of the images are new, the run is a full pass and says why.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl

# bump when the matching changes what a stored row would be (hashes, windows, verification, grouping)
# 2: pairs with a detail-free image found by their plain correlation (dedup_plain); 3: the detail check;
# 4: mirrored copies (dedup.mirrored), mirrored pairs verified apart from the same pair as it is;
# 5: frames and letterboxes cut off the thumbnails (dedup_match.unframe); 6: contrast-limited equalisation
# (sluice.thumbnails.LEVEL_CAP: every window code and score changes); 7: a pair verified at up to
# dedup_search.ALIGNMENTS window hits, not only its closest hash (more pairs pass); 8: a pair short of the
# bar also scored without its worst band (captions, watermarks: transform/overlay_band.py); 9: query windows
# of 18 px too (crops of 20-30%: dedup_match.SIZES); 10: query windows of another aspect (dedup_match.STRETCHES);
# 11: the detail check MOVED_DETAIL_MARGIN stricter for a shifted, cropped or squashed alignment (dedup_match);
# 12: a mirrored match must beat its images' own mirror symmetry (dedup_match.MIRROR_SYMMETRY_MARGIN)
MATCHING_VERSION = 12
# above this share of new images a full pass is the cheaper one: with CIFAR-10's 10,000 test images
# landing after its 50,000 train images (17% new) the incremental run took 0.88-0.97x a full pass's
# time, with 1% new 1.6-2.6x (docs/scale.md)
FULL_PASS_SHARE = 0.15


def fingerprint(cfg) -> str:
    """The settings a stored row depends on, hashed (12 hex digits)."""
    keys = {"near_threshold": cfg.near_threshold, "min_correlation": cfg.min_correlation,
            "moved_margin": cfg.moved_margin, "max_candidates_per_image": cfg.max_candidates_per_image,
            "min_detail_correlation": cfg.min_detail_correlation, "mirrored": cfg.mirrored,
            "matching": MATCHING_VERSION}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]


def basis(meta: pl.DataFrame, print_: str) -> pl.Series:
    """``match_basis`` of each image row: the settings' fingerprint and the image's pixel hash."""
    return (pl.lit(print_ + ":") + meta["pixel_hash"].str.slice(0, 16)).alias("match_basis") \
        if meta.height else pl.Series("match_basis", [], pl.String)


def plan(meta: pl.DataFrame, stored: pl.DataFrame | None, print_: str, incremental: bool
         ) -> tuple[np.ndarray | None, str]:
    """(rows of ``meta`` that are new, or None for a full pass; why), ``meta`` being the images in row
    order (image_id, row, pixel_hash) and ``stored`` the previous ``image_groups`` (or None)."""
    if not incremental:
        return None, "full pass (dedup.incremental: false)"
    if stored is None or stored.height == 0 or "match_basis" not in stored.columns:
        return None, "full pass (no stored result to build on)"
    now = meta.select("image_id", "row", basis(meta, print_))
    joined = now.join(stored.select("image_id", stored_basis=pl.col("match_basis"), known=pl.lit(True)),
                      on="image_id", how="left")
    known = joined.filter(pl.col("known").is_not_null())
    stale = known.filter(pl.col("stored_basis").is_null() | (pl.col("stored_basis") != pl.col("match_basis"))).height
    if stale:
        return None, f"full pass ({stale:,} stored rows were made with other dedup settings, another matching version or other pixels)"
    gone = set(stored["image_id"].to_list()) - set(meta["image_id"].to_list())
    if gone:
        held = stored.filter((pl.col("image_id").is_in(list(gone)) & (pl.col("dup_group") != pl.col("image_id")))
                             | pl.col("dup_group").is_in(list(gone)) | pl.col("match_with").is_in(list(gone)))
        if held.height:
            return None, f"full pass ({len(gone):,} images left the lake, some of them in a duplicate group)"
    new = joined.filter(pl.col("known").is_null())["row"].to_numpy().astype(np.int64)
    if len(new) > FULL_PASS_SHARE * meta.height:
        return None, f"full pass ({len(new):,} of {meta.height:,} images are new: one search over all costs less)"
    return np.sort(new), f"incremental ({len(new):,} new of {meta.height:,} images; the others keep their stored groups)"


def stored_edges(meta: pl.DataFrame, stored: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """An edge from every stored group member to its group's canonical image, as rows of ``meta``."""
    rows = meta.select("image_id", "row")
    members = (stored.filter(pl.col("dup_group") != pl.col("image_id")).select("image_id", "dup_group")
               .join(rows, on="image_id").join(rows.rename({"image_id": "dup_group", "row": "to"}), on="dup_group"))
    return members["row"].to_numpy().astype(np.int64), members["to"].to_numpy().astype(np.int64)


def stored_matches(stored: pl.DataFrame, present: pl.Series) -> pl.DataFrame:
    """The stored strongest match of every image still present (for :func:`transform.dedup.best_matches`)."""
    return (stored.filter(pl.col("match_kind").is_not_null() & pl.col("image_id").is_in(present.implode()))
            .select("image_id", "match_with", "match_kind", pl.col("match_score").cast(pl.Float32)))
