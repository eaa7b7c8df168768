"""Crowd outcome and source labels combined into one ``labels`` row per item under ``labels.policy``
(or, per image, the ``labels.source_policy`` of the sources that labelled it).

See the table in docs/labels.md. Every row keeps the best guess it has: an unresolved or conflicting
item still carries the crowd's label (null only when nothing voted on it and no source labels it).
"""

from __future__ import annotations

import polars as pl


def combine(universe: pl.DataFrame, crowd: pl.DataFrame, given: pl.DataFrame, policy: str, method: str) -> pl.DataFrame:
    """One row per image of ``universe`` plus one per voted item with no landed image.

    ``crowd``: item, pending (no landed image), votes, label, confidence, agreement, reason (null = the
    crowd resolved it). Items whose image landed but is outside ``universe`` get no row.
    """
    images = (universe.select(pl.col("image_id").alias("item"), "image_id")
              .join(crowd.drop("pending"), on="item", how="left").join(given, on="image_id", how="left"))
    pending = crowd.filter("pending").drop("pending").with_columns(
        pl.lit(None, pl.String).alias("image_id"), pl.lit(None, pl.List(pl.String)).alias("given"),
        pl.lit(None, pl.String).alias("policy"))
    df = pl.concat([images, pending.select(images.columns)]).with_columns(
        pl.col("votes").fill_null(0), pl.col("given").fill_null(pl.lit([], pl.List(pl.String))))
    pol = pl.col("policy").fill_null(pl.lit(policy))
    n_g = pl.col("given").list.len()
    g = pl.when(n_g == 1).then(pl.col("given").list.first())
    voted = pl.col("votes") > 0
    c_ok = voted & pl.col("reason").is_null()
    same = (pl.col("label") == g).fill_null(False)
    use_crowd = c_ok & ((n_g == 0) | same | ((n_g > 1) & (pol != "agree_only"))
                        | ((n_g == 1) & ~same & (pol == "crowd_over_given")))
    use_given = ~use_crowd & (n_g == 1) & (~c_ok | (pol == "given_over_crowd"))
    conflict = ~use_crowd & ~use_given & (n_g > 0)
    reason = (pl.when(use_crowd & (n_g == 1) & ~same).then(pl.lit("given_overridden"))
              .when(use_crowd & (n_g > 1)).then(pl.lit("given_conflict_resolved_by_crowd"))
              .when(use_given & c_ok).then(pl.lit("crowd_overridden"))
              .when(conflict & c_ok & (pol == "agree_only")).then(pl.lit("crowd_given_disagree"))
              .when(conflict & c_ok).then(pl.lit("given_labels_conflict"))
              .when(conflict & (n_g > 1)).then(pl.lit("given_labels_conflict"))
              .when(use_crowd | use_given).then(None)
              .otherwise(pl.coalesce("reason", pl.lit("no_label"))))
    return df.select(
        "item", "image_id",
        pl.when(use_given).then(g).when(voted).then(pl.col("label")).alias("label"),
        pl.when(use_given).then(pl.lit("given")).when(voted).then(pl.lit(method))
        .when(n_g > 0).then(pl.lit("given")).otherwise(pl.lit("none")).alias("label_source"),
        pl.when(use_given).then(None).when(voted).then(pl.col("confidence")).alias("confidence"),
        pl.col("votes").cast(pl.Int32),
        pl.when(voted).then(pl.col("agreement")).alias("agreement"),
        pl.when(use_crowd | use_given).then(pl.lit("resolved")).when(conflict).then(pl.lit("conflict"))
        .otherwise(pl.lit("unresolved")).alias("status"),
        reason.alias("reason"),
        pl.col("given"), pl.when(voted).then(pl.col("label")).alias("crowd_label"),
        pl.when(voted).then(pl.col("confidence")).alias("crowd_confidence"), pol.alias("policy"),
    ).sort("item")
