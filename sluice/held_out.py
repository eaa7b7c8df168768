"""Which side of a source's own split each landed image is on: held out (``test``) or not (``train``).

A source's test split is held out. So is its validation split where it gives train and val but no test:
ImageNet, Imagenette and Imagewoof publish their held-out images as ``val/``, Hugging Face's Food-101 as
``validation``, and papers report accuracy on them. Pooled with train, a fifth of those images would
train the model and the test figure would not be the published one; held out, a copy of one in train is
a leak like any other (``dataset.leak_policy``). Where the source gives a test split too, its val split
is the train side, as before (a 16-image ``val/`` beside ``train/`` and ``test/`` is no test set).

One definition, two forms: :func:`sides` for the dataset stage (Polars) and :data:`SIDES_SQL` for the
quality checks and the dataset page (DuckDB over ``raw_images``).
"""

from __future__ import annotations

import polars as pl

_HINT_SQL = "lower(trim(split_hint))"
# image_id, source, side ('test', 'train' or NULL: no split hint) for every raw_images row
SIDES_SQL = (
    f"SELECT image_id, source, CASE WHEN {_HINT_SQL} = 'test' THEN 'test' "
    f"WHEN {_HINT_SQL} = 'val' AND NOT bool_or({_HINT_SQL} = 'test') OVER (PARTITION BY source) "
    f"AND bool_or({_HINT_SQL} = 'train') OVER (PARTITION BY source) THEN 'test' "
    f"WHEN {_HINT_SQL} IN ('train', 'val') THEN 'train' END AS side FROM raw_images")


def sides(raw: pl.DataFrame) -> pl.DataFrame:
    """``raw`` (``source``, ``split_hint``, any other columns) with ``side``: 'test', 'train' or null, as
    :data:`SIDES_SQL` says."""
    hint = pl.col("split_hint").str.strip_chars().str.to_lowercase()
    val_held_out = (~(hint == "test").any().over("source")) & (hint == "train").any().over("source")
    return raw.with_columns(side=pl.when(hint == "test").then(pl.lit("test"))
                            .when((hint == "val") & val_held_out).then(pl.lit("test"))
                            .when(hint.is_in(["train", "val"])).then(pl.lit("train"))
                            .otherwise(pl.lit(None, pl.String)))


def val_held_out(raw: pl.DataFrame) -> dict[str, int]:
    """The sources whose val split is held out (train and val, no test), each with its val images."""
    held = sides(raw).filter((pl.col("side") == "test")
                             & (pl.col("split_hint").str.strip_chars().str.to_lowercase() == "val"))
    return dict(held.group_by("source").len().sort("source").rows())
