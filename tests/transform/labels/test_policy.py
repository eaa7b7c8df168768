"""Source labels vs the crowd: the global policy, and per-source overrides (labels.source_policy)."""

from __future__ import annotations

import polars as pl

from transform.labels.inputs import given_labels
from transform.labels.policy import combine
from transform.labels.vocabulary import Vocabulary

VOCAB = Vocabulary(("cat", "dog"), {})
# image a: labelled "cat" by a curated set; image b: "cat" by a scraper's guess; the crowd says dog for both
RAW = pl.DataFrame({"image_id": ["a", "b"], "source": ["curated", "scraped"], "source_uri": ["u1", "u2"],
                    "source_label": ["cat", "cat"]})
CROWD = pl.DataFrame({"item": ["a", "b"], "pending": [False, False], "votes": [3, 3], "label": ["dog", "dog"],
                      "confidence": [0.9, 0.9], "agreement": [1.0, 1.0], "reason": [None, None]},
                     schema_overrides={"reason": pl.String})
UNIVERSE = pl.DataFrame({"image_id": ["a", "b"]})


def _labels(policy: str, source_policy: dict | None = None) -> dict[str, tuple]:
    given, _ = given_labels(RAW, VOCAB, source_policy)
    out = combine(UNIVERSE, CROWD, given, policy, "dawid_skene")
    return {r["item"]: (r["label"], r["label_source"], r["policy"]) for r in out.iter_rows(named=True)}


def test_one_policy_for_every_source():
    assert _labels("given_over_crowd") == {"a": ("cat", "given", "given_over_crowd"),
                                           "b": ("cat", "given", "given_over_crowd")}


def test_a_source_can_defer_to_the_crowd():
    labels = _labels("given_over_crowd", {"scraped": "crowd_over_given"})
    assert labels == {"a": ("cat", "given", "given_over_crowd"), "b": ("dog", "dawid_skene", "crowd_over_given")}


def test_sources_that_disagree_on_policy_fall_back_to_the_global_one():
    raw = pl.concat([RAW, pl.DataFrame({"image_id": ["a"], "source": ["scraped"], "source_uri": ["u3"],
                                        "source_label": ["cat"]})])
    given, _ = given_labels(raw, VOCAB, {"scraped": "crowd_over_given", "curated": "agree_only"})
    assert dict(given.select("image_id", "policy").iter_rows()) == {"a": None, "b": "crowd_over_given"}


def test_the_crowds_answer_is_kept_where_a_source_label_wins():
    """Where the crowd and the dataset disagree is where wrong labels are: the crowd's answer stays
    queryable (crowd_label, crowd_confidence), not only in the quarantine of conflicts."""
    given, _ = given_labels(RAW, VOCAB, None)
    universe = pl.DataFrame({"image_id": ["a", "b", "c"]})
    out = {r["item"]: r for r in combine(universe, CROWD, given, "given_over_crowd", "dawid_skene").iter_rows(named=True)}
    assert (out["a"]["label"], out["a"]["reason"], out["a"]["crowd_label"], out["a"]["crowd_confidence"]) == (
        "cat", "crowd_overridden", "dog", 0.9)
    assert out["a"]["confidence"] is None  # the label used is the source's, not the crowd's
    assert out["c"]["crowd_label"] is None and out["c"]["crowd_confidence"] is None  # never voted on
