"""What the labels stage reads: usable votes (re-resolved against raw_images), gold and truth files, source labels.

An item is the image a vote resolves to (its ``image_id``) or, while no landed image matches, the
vote's normalised item name: such votes are *pending*, still aggregated and still training the worker
model, and they resolve on the first run after their image lands (``crowd_votes.image_id`` is never rewritten).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sluice.errors import InputError
from sluice.item_labels import item_key, read_item_labels
from sluice.items import ItemIndex, normalize
from sluice.lake import Lake
from transform.labels.vocabulary import Vocabulary

VOTE_COLUMNS = ["vote_id", "item_ref", "item", "item_key", "image_id", "worker_id", "label", "status", "submitted_at"]


@dataclass
class Votes:
    usable: pl.DataFrame  # vote_id, item, image_id (null: pending), worker_id, label (class name)
    not_in_classes: pl.DataFrame  # vote_id, item_ref, worker_id, label
    counts: dict
    gold: pl.DataFrame  # item, label (class name): known answers an export marks (status gold), not votes


def load_votes(lake: Lake, vocab: Vocabulary, index: ItemIndex) -> Votes:
    """Usable votes: not rejected, label in the class list, one per worker and item (the latest)."""
    if lake.exists("crowd_votes"):
        raw = pl.from_arrow(lake.read("crowd_votes", columns=VOTE_COLUMNS))
    else:
        raw = pl.DataFrame(schema={c: pl.String for c in VOTE_COLUMNS}).with_columns(
            pl.col("submitted_at").cast(pl.Datetime("us", "UTC")))
    rejected = raw.filter(pl.col("status") == "rejected")
    # an export's known answers (Label Studio's ground-truth annotations): gold for the stage, never a worker's vote
    live = raw.filter(~pl.col("status").is_in(["rejected", "gold"]))
    known = raw.filter(pl.col("status") == "gold")
    known = known.with_columns(pl.coalesce(index.resolve(known["item"], known["item_key"]), "image_id").alias("image_id"))
    known = known.with_columns(pl.coalesce("image_id", "item").alias("item"), vocab.normalize(known["label"]).alias("class"))
    # resolved afresh on every run: votes that landed before their image count once it lands
    live = live.with_columns(pl.coalesce(index.resolve(live["item"], live["item_key"]), "image_id").alias("image_id"))
    live = live.with_columns(pl.coalesce("image_id", "item").alias("item"), vocab.normalize(live["label"]).alias("class"))
    bad = live.filter(pl.col("class").is_null()).select("vote_id", "item_ref", "worker_id", "label")
    good = live.filter(pl.col("class").is_not_null())
    usable = (good.sort(["submitted_at", "vote_id"], descending=True, nulls_last=True)
              .unique(["worker_id", "item"], keep="first")
              .sort("vote_id")
              .select("vote_id", "item", "image_id", "worker_id", pl.col("class").alias("label")))
    bad = pl.concat([bad, known.filter(pl.col("class").is_null()).select(bad.columns)])
    counts = {"votes_in": raw.height, "used": usable.height, "rejected_assignments": rejected.height,
              "not_in_classes": bad.height, "repeat_same_worker_item": good.height - usable.height,
              "gold_answers": int(known["class"].is_not_null().sum()),
              "pending_no_image": int(usable["image_id"].null_count())}
    gold = known.filter(pl.col("class").is_not_null()).select("item", pl.col("class").alias("label"))
    return Votes(usable, bad, counts, gold)


def gold_answers(marked: pl.DataFrame, vocab: Vocabulary) -> tuple[dict[str, int], list[str]]:
    """The known answers the exports mark (item -> class index), and the items whose marked answers disagree (not
    gold: which one is right is not known)."""
    labels = marked.unique().group_by("item", maintain_order=True).agg(pl.col("label"))
    agreed = labels.filter(pl.col("label").list.len() == 1).with_columns(pl.col("label").list.first())
    split = labels.filter(pl.col("label").list.len() > 1)["item"].to_list()
    return dict(zip(agreed["item"].to_list(), vocab.index(agreed["label"]).tolist())), split


def item_keys(names: pl.Series, index: ItemIndex, key: str = "auto") -> pl.Series:
    """Item identities for names given like vote items (gold, truth files; resolved under ``key``, as their vote
    export's are): the image_id, else the normalised name."""
    norm = normalize(names)
    return pl.select(pl.coalesce(index.resolve(norm, key), norm)).to_series().rename("item")


def load_gold(source, vocab: Vocabulary, index: ItemIndex, known: set[str]) -> dict[str, int]:
    """Gold answers (``item,label`` keyed like the votes, or two columns of a vote export: ``LabelColumns``): item ->
    class index.

    A row whose item is neither a landed image nor a voted item (``known``), or whose label is not a
    class, is a user error naming the line (of a file of one row an item) or the item.
    """
    if not source:
        return {}
    frame = read_item_labels(source, "labels.gold_file")
    frame = frame.with_columns(item_keys(frame["item"], index, item_key(source)).alias("key"),
                               vocab.normalize(frame["label"]).alias("class"))
    path = source if isinstance(source, str) else source.path
    for line, row in enumerate(frame.iter_rows(named=True), start=2):
        where = f"{path}:{line}" if isinstance(source, str) else path
        if row["key"] not in known:
            raise InputError(f"{where}: gold item '{row['item']}' is neither in raw_images nor voted on")
        if row["class"] is None:
            raise InputError(f"{where}: gold label '{row['label']}' (item '{row['item']}') is not one of labels.classes")
    return dict(zip(frame["key"].to_list(), vocab.index(frame["class"]).tolist()))


def given_labels(raw: pl.DataFrame, vocab: Vocabulary,
                 source_policy: dict[str, str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per image the distinct normalised source labels and the policy its sources ask for (null: the
    global ``labels.policy``; set only when every source labelling the image names the same one in
    ``labels.source_policy``); and the raw rows whose label is not a class."""
    labelled = raw.filter(pl.col("source_label").is_not_null())
    labelled = labelled.with_columns(vocab.normalize(labelled["source_label"]).alias("class"))
    invalid = labelled.filter(pl.col("class").is_null()).select("image_id", "source", "source_uri", "source_label")
    wanted = pl.DataFrame({"source": list(source_policy or {}), "source_policy": list((source_policy or {}).values())},
                          schema={"source": pl.String, "source_policy": pl.String})
    given = (labelled.filter(pl.col("class").is_not_null()).join(wanted, on="source", how="left")
             .group_by("image_id").agg(pl.col("class").unique().sort().alias("given"),
                                       pl.col("source_policy").unique().alias("policies")))
    one = (pl.col("policies").list.len() == 1) & pl.col("policies").list.first().is_not_null()
    given = given.select("image_id", "given", pl.when(one).then(pl.col("policies").list.first()).alias("policy"))
    return given, invalid
