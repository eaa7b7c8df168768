"""Dedup's groups: connected components of the matched pairs, which member of each is kept, and what each match is.

**Which copy is kept** (``is_canonical``: the image the dataset trains on, and whose label a group conflict may
take). A group holds an original and its edits, and nothing in two files says which is which; what can be told
from the images is ranked, first difference wins:

1. **not framed**: a copy padded to a square, letterboxed or framed (``dedup_match.unframe`` cut its frame off the
   thumbnail) would carry its bars into the training pixels;
2. **colour** over greyscale;
3. **enough pixels for the output** (``clean.size``): a copy smaller than it would be upscaled; above it every
   copy gives the same training pixels, so an upscaled or a bigger framed or captioned copy gains nothing here;
4. a **lossless** format (PNG, BMP, TIFF, PPM) over a lossy one (JPEG, WebP, which is nearly always lossy, and
   GIF's 256 colours);
5. **landed first** (the ingest run that first brought its bytes): a copy landed later never displaces one already
   kept on a tie, so rerunning after new copies land keeps the dataset's images;
6. more decoded pixels (the higher-resolution original of a thumbnail, should ``clean.size`` grow);
7. the smallest ``image_id``.

Each is a property of one image, so a full pass and an incremental run (``transform/dedup_state.py``, whose stored
members keep only an edge to their canonical image) keep the same member. Not told apart: which of two copies of
the same size and format carries a caption or a watermark, or was re-encoded at a lower quality (a group of two
such copies keeps the first landed, then the larger).
"""

from __future__ import annotations

import numpy as np
import polars as pl

LOSSLESS = ("PNG", "BMP", "TIFF", "PPM")
KINDS = ("near", "shifted", "cropped", "cropped")  # by geometry, before colour is looked at


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label per node of an undirected graph given as edge lists."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def assign_groups(images: pl.DataFrame, i: np.ndarray, j: np.ndarray, output_pixels: int | None = None) -> pl.DataFrame:
    """``images`` (image_id, width, height, format; optionally ``framed``, ``greyscale`` and ``landed``, the
    ranking's first and fifth keys) + duplicate edges (rows of ``images``) -> dup_group, is_canonical.
    ``output_pixels``: the normalized image's pixels (the ranking's third key; None: not used)."""
    area = pl.col("width").cast(pl.Int64) * pl.col("height").cast(pl.Int64)
    flag = lambda name: pl.col(name).fill_null(False) if name in images.columns else pl.lit(False)
    ranked = images.with_columns(
        comp=pl.Series(components(images.height, i, j)),
        framed=flag("framed"), grey=flag("greyscale"),
        enough=area.clip(upper_bound=output_pixels) if output_pixels else pl.lit(0, pl.Int64),
        lossy=~pl.col("format").str.to_uppercase().is_in(LOSSLESS).fill_null(False),
        landed_at=pl.col("landed") if "landed" in images.columns else pl.lit(None, pl.Datetime("us")),
        area=area,
    ).sort(["comp", "framed", "grey", "enough", "lossy", "landed_at", "area", "image_id"],
           descending=[False, False, False, True, False, False, True, False], nulls_last=True)
    return (ranked.with_columns(dup_group=pl.col("image_id").first().over("comp"))
            .with_columns(is_canonical=pl.col("image_id") == pl.col("dup_group"))
            .select("image_id", "dup_group", "is_canonical").sort("image_id"))


def landing_order(raw: pl.DataFrame) -> pl.DataFrame:
    """``raw_images`` rows (image_id, fetched_at, run_id) -> image_id, ``landed``: when the ingest run that first
    landed its bytes began (every image of one run ties, so the rest of the ranking decides among them)."""
    runs = raw.group_by("run_id").agg(pl.col("fetched_at").min().alias("landed"))
    return raw.join(runs, on="run_id").group_by("image_id").agg(pl.col("landed").min())


def match_kinds(geometry: np.ndarray, grey_a, grey_b, colour_a, colour_b, framed_a=None, framed_b=None) -> np.ndarray:
    """What edit a verified pair looks like (``match_kind``: sluice/catalog.py). A pair aligned as it is with a
    framed image (``framed_*``: its thumbnail's frame was cut off) is ``framed``, not ``recoloured`` by its bars."""
    from transform.dedup_match import MIRRORED, OVERLAID, STRETCHED

    kind = np.asarray(KINDS, dtype=object)[geometry % MIRRORED]
    kind[(geometry & STRETCHED) > 0] = "stretched"
    plain = geometry == 0
    kind[plain & (np.abs(colour_a - colour_b).max(axis=1) > 6)] = "recoloured"
    if framed_a is not None:
        kind[plain & (framed_a | framed_b)] = "framed"
    kind[plain & (grey_a != grey_b)] = "greyscale"
    kind[(geometry & OVERLAID) > 0] = "overlaid"
    kind[(geometry & MIRRORED) > 0] = "mirrored"
    return kind


def best_matches(ids: np.ndarray, i: np.ndarray, j: np.ndarray, kinds: np.ndarray, scores: np.ndarray,
                 stored: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per image in any edge (or with a ``stored`` match): its strongest match (kind, score, partner);
    exact beats near, then the smaller partner id."""
    schema = {"image_id": pl.String, "match_with": pl.String, "match_kind": pl.String, "match_score": pl.Float32}
    both = pl.DataFrame({"image_id": np.concatenate([ids[i], ids[j]]).astype(str).tolist(),
                         "match_with": np.concatenate([ids[j], ids[i]]).astype(str).tolist(),
                         "match_kind": np.concatenate([kinds, kinds]).astype(str).tolist(),
                         "match_score": np.concatenate([scores, scores]).astype(np.float32)}, schema=schema)
    if stored is not None:
        both = pl.concat([both, stored.select(list(schema)).cast(schema)])
    return (both.sort(["image_id", "match_score", "match_with"], descending=[False, True, False])
            .unique("image_id", keep="first", maintain_order=True))
