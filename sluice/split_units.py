"""Which duplicate groups must share a split: those whose images show one subject.

A duplicate group keeps the copies of one image in one split. Photographs of one subject are not copies, but a
split between them leaks as surely: HAM10000's 10,015 dermoscopy images show 7,470 lesions, several images
each; ChestX-ray14's 112,120 X-rays come from 30,805 patients; a camera trap fires bursts of near-identical
frames. A model tested on another image of a lesion it trained on is tested on what it learnt. A source names
each image's subject (``raw_images.subject``: a labels file's ``lesion_id`` / ``Patient ID`` / ``seq_id``,
``subject_column`` of its entry), and here the duplicate groups that share a subject, directly or through a
chain (groups A and B show lesion 1, B and C lesion 2), form one *unit*: the dataset stage splits units, not
groups (``transform/splits.py``), and an erasure pins a unit's rank as it pins a group's (``split_pins.py``).
Subjects are scoped by source: two sources' "patient 1" are not one patient.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def image_subjects(lake, version: int | None = None) -> pl.DataFrame:
    """(image_id, subject) of every ``raw_images`` row whose source names a subject (``<source>/<subject>``); none
    for a lake from before the column."""
    empty = pl.DataFrame(schema={"image_id": pl.String, "subject": pl.String})
    if not lake.exists("raw_images"):
        return empty
    names = lake.dataset("raw_images", version).schema.names
    if "subject" not in names:
        return empty
    named = lake.read("raw_images", columns=["subject"], version=version)["subject"]
    if named.null_count == len(named):  # most lakes: read no more
        return empty
    rows = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source", "subject"], version=version))
    return (rows.filter(pl.col("subject").is_not_null())
            .select("image_id", subject=pl.concat_str("source", pl.lit("/"), "subject"))
            .unique().sort("image_id", "subject"))


def units(groups: pl.DataFrame, subjects: pl.DataFrame) -> pl.DataFrame:
    """(dup_group, unit, unit_groups) for every group of ``groups`` (image_id, dup_group): the groups linked
    by a subject of ``subjects`` (image_id, subject) share a unit, named by its smallest dup_group; a group
    whose images name no subject is a unit of its own (``unit_groups`` 1)."""
    ids = groups.select("dup_group").unique().sort("dup_group").with_row_index("g")
    links = (groups.select("image_id", "dup_group").join(subjects, on="image_id")
             .select("dup_group", "subject").unique())
    if links.is_empty():
        return ids.select("dup_group", unit="dup_group", unit_groups=pl.lit(1, pl.UInt32))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    names = links.select("subject").unique().sort("subject").with_row_index("s")
    edges = links.join(ids, on="dup_group").join(names, on="subject")
    n_groups = ids.height
    a = edges["g"].to_numpy().astype(np.int64)
    b = edges["s"].to_numpy().astype(np.int64) + n_groups
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_groups + names.height,) * 2)
    _, component = connected_components(graph, directed=False)
    out = ids.with_columns(component=pl.Series(component[:n_groups]))
    return (out.with_columns(unit=pl.col("dup_group").min().over("component"),
                             unit_groups=pl.len().over("component"))
            .select("dup_group", "unit", "unit_groups"))
