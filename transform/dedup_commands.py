"""``sluice duplicates``: which landed files are copies of which, and which copies cross splits.

Two kinds of copy are listed, both per *landed file* (a ``raw_images`` row: its source, URI, split
hint and label), because that is what a user can open and fix:

- ``identical``: the same bytes landed more than once (one ``image_id``: another folder, another
  source); each later landing is paired with the image's first (by source, then URI).
- a verified match of the dedup stage (``image_groups``: exact pixels, shifted, cropped, mirrored, overlaid
  (a caption or a watermark), stretched (resized to another aspect), greyscale, recoloured, near), between the first landings of the two images,
  once per pair.

``--groups`` lists the files of every group of two or more instead (a group is ``image_groups``'
``dup_group``, or one image's landings). ``--across-splits`` keeps the groups whose files came with
different split hints (a test image with a look-alike in train: the leak the dataset stage closes by
keeping each group in one split). The listing is one read-only DuckDB query over the lake
(:func:`duplicates_sql`), so ``--at`` pins and ``--role`` apply as in ``sluice sql``.
"""

from __future__ import annotations

import sys

# match kinds a pair can have: dedup's (transform/dedup.py) and a re-landing of the same bytes
KINDS = ("identical", "exact", "shifted", "cropped", "mirrored", "overlaid", "framed", "stretched", "greyscale", "recoloured",
         "near")

_FILES = """
landed AS (
  SELECT image_id, source, source_uri AS uri, split_hint AS split, source_label AS label,
         row_number() OVER (PARTITION BY image_id ORDER BY source, source_uri) AS landing
  FROM raw_images),
files AS (
  SELECT l.*, coalesce(g.dup_group, l.image_id) AS dup_group,
         CASE WHEN l.landing > 1 THEN 'identical' ELSE g.match_kind END AS kind,
         CASE WHEN l.landing > 1 THEN 1.0 ELSE g.match_score END AS score,
         CASE WHEN l.landing > 1 THEN l.image_id ELSE g.match_with END AS partner_image
  FROM landed l LEFT JOIN image_groups g USING (image_id)),
sized AS (
  SELECT dup_group, count(*) AS group_files, count(DISTINCT split) AS group_splits,
         string_agg(DISTINCT split, ',' ORDER BY split) AS splits
  FROM files GROUP BY dup_group HAVING count(*) > 1)"""

_PAIRS = """
pairs AS (
  SELECT a.kind, a.score, a.split, b.split AS partner_split, a.uri, b.uri AS partner_uri, a.label,
         b.label AS partner_label, a.source, b.source AS partner_source, a.image_id, b.image_id AS partner_id,
         a.dup_group
  FROM files a JOIN files b ON b.image_id = a.partner_image AND b.landing = 1
  WHERE a.landing > 1
     OR (a.partner_image IS NOT NULL AND (a.image_id < b.image_id OR b.partner_image IS DISTINCT FROM a.image_id)))"""


def duplicates_sql(groups: bool = False, across_splits: bool = False, kinds: list[str] | None = None,
                   min_score: float | None = None) -> str:
    """The listing as one DuckDB statement over ``raw_images`` and ``image_groups`` (module docstring).
    ``kinds``/``min_score`` keep the pairs of those kinds / at least that score (with ``groups``: the
    groups holding such a pair)."""
    kept = []
    if kinds:
        kept.append("kind IN (" + ", ".join("'" + k.replace("'", "''") + "'" for k in kinds) + ")")
    if min_score is not None:
        kept.append(f"score >= {float(min_score)!r}")
    spans = "group_splits > 1" if across_splits else "TRUE"
    if groups:
        chosen = ("" if not kept else
                  f" AND dup_group IN (SELECT dup_group FROM files WHERE {' AND '.join(kept)})")
        return (f"WITH {_FILES}\nSELECT dup_group, group_files, splits, kind, score, split, uri, label, source, image_id,"
                f" partner_image AS match_with\nFROM files JOIN sized USING (dup_group)\nWHERE {spans}{chosen}\n"
                "ORDER BY group_files DESC, dup_group, landing > 1, uri")
    where = " AND ".join([spans, *kept])
    return (f"WITH {_FILES},{_PAIRS}\nSELECT pairs.* FROM pairs JOIN sized USING (dup_group)\nWHERE {where}\n"
            "ORDER BY dup_group, uri, partner_uri")


def listing(lake, versions: dict[str, int] | None = None, role=None, **options):
    """:func:`duplicates_sql` run on ``lake`` (an Arrow table); a one-line error when a table is missing."""
    from sluice.errors import InputError
    from sluice.sql import query

    for table, stage in (("raw_images", "ingest"), ("image_groups", "dedup")):
        if not lake.exists(table):
            raise InputError(f"the lake at {lake.root} has no {table} table yet: run the {stage} stage first "
                             f"(dvc repro {stage})")
    return query(duplicates_sql(**options), lake, versions, role)


def summary(table, groups: bool) -> str:
    """One line for stderr: how many pairs (or files) of which kinds, and how many files cross splits."""
    import polars as pl

    frame = pl.from_arrow(table)
    if frame.is_empty():
        return "no duplicates listed"
    if groups:
        crossing = frame.filter(pl.col("splits").str.contains(","))
        files = ", ".join(f"{n:,} {s}" for s, n in crossing.group_by("split").len().sort("split").iter_rows()
                          if s is not None)
        return (f"{frame['dup_group'].n_unique():,} groups of {frame.height:,} files; "
                f"{crossing['dup_group'].n_unique():,} of them span splits" + (f" ({files} files)" if files else ""))
    crossing = frame.filter(pl.col("split").is_not_null() & pl.col("partner_split").is_not_null()
                            & (pl.col("split") != pl.col("partner_split")))
    kinds = frame.group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    by_kind = ", ".join(f"{n:,} {k}" for k, n in kinds.iter_rows())
    return f"{frame.height:,} pairs ({by_kind}); {crossing.height:,} of them across splits"


def register(sub) -> None:
    from sluice.commands import AT_HELP, ROLE_HELP
    from sluice.output import add_output_args

    d = sub.add_parser(
        "duplicates", help="list copies: files landed twice and the dedup stage's matches, e.g. test images in train",
        description="List which landed files are copies of which: the same bytes landed twice ('identical') and "
                    "the matches the dedup stage verified (exact pixels, shifted, cropped, mirrored, overlaid, framed, stretched, greyscale, "
                    "recoloured, near), one row per pair with both files' source, URI, split hint and label. --across-splits "
                    "keeps the groups whose files came with different split hints (test images with a copy in "
                    "train). Reads raw_images and image_groups (run the dedup stage first).",
        epilog="examples: sluice duplicates --across-splits --format csv -o leaks.csv;  "
               "sluice duplicates --groups --kind cropped --kind shifted")
    d.add_argument("--groups", action="store_true",
                   help="one row per file of each group of two or more, instead of one row per pair")
    d.add_argument("--across-splits", action="store_true",
                   help="only groups whose files carry different split hints (train/val/test)")
    d.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                   help=f"only pairs of this kind ({', '.join(KINDS)}); repeatable")
    d.add_argument("--min-score", type=float, metavar="X", help="only pairs scoring at least X (identical: 1.0)")
    add_output_args(d, max_rows=True)
    d.add_argument("--at", action="append", metavar="PIN", help=AT_HELP)
    d.add_argument("--role", metavar="NAME", help=ROLE_HELP)
    d.set_defaults(func=_duplicates)


def _duplicates(args) -> int:
    from sluice.access import resolve
    from sluice.lake import Lake
    from sluice.output import emit
    from sluice.sql import parse_pins

    table = listing(Lake.from_params(), parse_pins(args.at), resolve(args.role), groups=args.groups,
                    across_splits=args.across_splits, kinds=args.kind, min_score=args.min_score)
    emit(table, args)
    print(summary(table, args.groups), file=sys.stderr)
    return 0
