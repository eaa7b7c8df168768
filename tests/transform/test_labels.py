"""Label aggregation: Dawid-Skene (checked against crowd-kit), majority vote, policies, the stage."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import yaml

from ingest.crowd import item_index, land_export
from sluice.config import CsvVotesExport
from transform.labels import Vocabulary, aggregate, dawid_skene, run, vote_counts

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------- the algorithm
def simulate(n_items: int, accuracies: list[float], k: int, per_item: int, seed: int, adversary: int | None = None):
    """Votes from workers of the given accuracies (errors uniform); ``adversary`` answers truth+1."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(len(accuracies), per_item, replace=False) for _ in range(n_items)])
    t = truth[items]
    right = rng.random(len(items)) < np.asarray(accuracies)[workers]
    labels = np.where(right, t, rng.integers(0, k, len(items)))
    if adversary is not None:
        labels = np.where(workers == adversary, (t + 1) % k, labels)
    return items, workers, labels, truth


def test_dawid_skene_matches_crowd_kit():
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    import pandas as pd

    k = 4
    items, workers, labels, _ = simulate(400, [0.9, 0.85, 0.7, 0.6, 0.5, 0.3, 0.25], k, 5, seed=1, adversary=6)
    ours = dawid_skene(items, workers, labels, 400, 7, k, max_iter=50, tol=1e-12, smoothing=0.0)
    theirs = crowdkit.DawidSkene(n_iter=50, tol=1e-12).fit_predict_proba(
        pd.DataFrame({"task": items, "worker": workers, "label": labels})).sort_index()
    reference = theirs[list(range(k))].to_numpy()
    assert np.array_equal(ours.posteriors.argmax(1), reference.argmax(1))
    assert np.abs(ours.posteriors - reference).max() < 1e-3


def test_dawid_skene_beats_majority_when_quality_varies():
    k = 10
    items, workers, labels, truth = simulate(2000, [0.95, 0.9, 0.6, 0.5, 0.1, 0.1], k, 4, seed=3, adversary=5)
    ds = dawid_skene(items, workers, labels, 2000, 6, k, smoothing=0.01)
    noise = np.random.default_rng(0).random((2000, k)) * 0.5  # ties at random
    mv = (vote_counts(items, labels, 2000, k) + noise).argmax(1)
    ds_acc, mv_acc = (ds.posteriors.argmax(1) == truth).mean(), (mv == truth).mean()
    assert ds_acc > mv_acc + 0.05, (ds_acc, mv_acc)
    # the adversary's confusion matrix is learnt: answer truth+1 given truth
    assert ds.confusion[5, 1, 0] > 0.9


def test_gold_items_undo_a_permutation_majority_vote_induces():
    """Three of four workers systematically answer truth+1: only gold items reveal who is right."""
    rng = np.random.default_rng(2)
    n, k = 300, 4
    truth = rng.integers(0, k, n)
    items, workers = np.repeat(np.arange(n), 4), np.tile(np.arange(4), n)
    t = truth[items]
    labels = np.where(workers == 0, t, (t + 1) % k)
    labels = np.where(rng.random(len(items)) < 0.9, labels, rng.integers(0, k, len(items)))
    gold = np.full(n, -1)
    gold[:15] = truth[:15]
    plain = dawid_skene(items, workers, labels, n, 4, k, smoothing=0.01)
    seeded = dawid_skene(items, workers, labels, n, 4, k, gold=gold, smoothing=0.01)
    assert (plain.posteriors.argmax(1)[15:] == truth[15:]).mean() < 0.1
    assert (seeded.posteriors.argmax(1)[15:] == truth[15:]).mean() > 0.95


def test_no_votes_gives_empty_result():
    empty = np.empty(0, np.int64)
    ds = dawid_skene(empty, empty, empty, 0, 0, 3)
    assert ds.posteriors.shape == (0, 3) and ds.iterations == 0


def test_spammer_and_adversary_are_flagged(make_params):
    k = 5
    items, workers, labels, _ = simulate(600, [0.9, 0.85, 0.8, 0.7, 0.2, 0.2], k, 4, seed=4, adversary=5)
    labels = np.where(workers == 4, np.random.default_rng(9).integers(0, k, len(items)), labels)  # pure random
    vocab = Vocabulary(tuple("abcde"), {})
    votes = pl.DataFrame({"image_id": [f"i{i:04d}" for i in items], "worker_id": [f"w{w}" for w in workers],
                          "label": [vocab.classes[x] for x in labels]})
    params = make_params({}).labels
    crowd = aggregate(votes, vocab, params)
    flags = {r["worker_id"]: (r["is_spammer"], r["is_adversarial"]) for r in crowd.workers.iter_rows(named=True)}
    assert flags == {"w0": (False, False), "w1": (False, False), "w2": (False, False), "w3": (False, False),
                     "w4": (True, False), "w5": (False, True)}
    acc = dict(crowd.workers.select("worker_id", "accuracy").iter_rows())
    assert acc["w0"] > 0.85 and acc["w5"] < 0.1 and abs(acc["w4"] - 1 / k) < 0.08


def test_vocabulary_normalises_and_infers():
    vocab = Vocabulary.build(None, {" Kitty ": "cat"}, pl.Series(["Cat", " dog", "kitty", None]))
    assert vocab.classes == ("cat", "dog")
    assert vocab.normalize(pl.Series([" CAT ", "Kitty", "Dog", "fish"])).to_list() == ["cat", "cat", "dog", None]


# ---------------------------------------------------------------------------- the stage
def iid(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()


# uri -> source label; b and b_copy are the same bytes (image "b") filed under two labels
RAW = {"a.png": "Cat ", "b.png": "dog", "b_copy.png": "kitty", "c.png": None, "d.png": None, "e.png": "horse",
       "f.png": None, "g.png": "dog"}
SAME_BYTES = {"b_copy.png": "b.png"}


def land_raw(lake):
    rows = [{"image_id": iid(SAME_BYTES.get(u, u)), "content": SAME_BYTES.get(u, u).encode(), "source": "t",
             "source_uri": u, "source_label": lab, "fetched_at": NOW, "run_id": "r"} for u, lab in RAW.items()]
    lake.merge_insert("raw_images", pa.Table.from_pylist(rows))


def land_csv(lake, tmp_path, name: str, lines: list[str]) -> int:
    path = tmp_path / f"{name}.csv"
    path.write_text("item,worker,label\n" + "".join(line + "\n" for line in lines))
    return land_export(lake, CsvVotesExport(name=name, kind="csv", path=str(path)), item_index(lake), "r").new


VOTES = ["a.png,w1,cat", "a.png,w2,cat", "a.png,w3,cat",
         "b.png,w1,dog", "b.png,w2,dog", "b.png,w3,dog",
         "c.png,w1,bird", "c.png,w2,dog",
         "d.png,w4,bird",
         "g.png,w1,cat", "g.png,w2,cat", "g.png,w3,cat",
         "f.png,w3,fish"]


@pytest.fixture
def stage(lake, tmp_path, make_params):
    land_raw(lake)
    land_csv(lake, tmp_path, "votes", VOTES)
    rejected = {"vote_id": "rejected-1", "item_ref": "c.png", "image_id": iid("c.png"), "worker_id": "w3",
                "label": "bird", "status": "rejected", "source_file": "x", "source_format": "mturk", "run_id": "r"}
    lake.merge_insert("crowd_votes", pa.Table.from_pylist([rejected]))

    def go(**labels):
        cfg = {"classes": ["cat", "dog", "bird"], "synonyms": {"kitty": "cat"}, "min_votes": 2,
               "min_confidence": 0.5, **labels}
        summary = run(make_params({"labels": cfg}))
        rows = {r["image_id"]: r for r in lake.read("labels").to_pylist()}
        return summary, rows

    return go


def test_stage_labels_every_image_with_status_and_reason(stage, lake):
    summary, rows = stage(method="majority")
    assert summary["images_from"] == "raw_images" and len(rows) == 7
    expect = {  # image: (label, source, status, reason)
        "a.png": ("cat", "majority", "resolved", None),
        "b.png": ("dog", "majority", "resolved", "given_conflict_resolved_by_crowd"),
        "c.png": (None, "majority", "unresolved", "tie"),
        "d.png": (None, "majority", "unresolved", "below_min_votes"),
        "e.png": (None, "none", "unresolved", "no_label"),  # 'horse' is not a class: quarantined
        "f.png": (None, "none", "unresolved", "no_label"),  # its only vote, 'fish', is not a class
        "g.png": ("dog", "given", "resolved", "crowd_overridden"),
    }
    got = {u: (rows[iid(u)]["label"], rows[iid(u)]["label_source"], rows[iid(u)]["status"], rows[iid(u)]["reason"])
           for u in expect}
    assert got == expect
    assert rows[iid("a.png")]["confidence"] == 1.0 and rows[iid("a.png")]["votes"] == 3
    assert rows[iid("c.png")]["agreement"] == 0.5
    assert summary["votes"] == {"votes_in": 14, "used": 12, "rejected_assignments": 1, "unknown_item": 0,
                                "not_in_classes": 1, "repeat_same_worker_item": 0}
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("stage") == "labels")
    assert sorted(zip(q["source_table"], q["check"])) == [("crowd_votes", "label_not_in_classes"),
                                                          ("raw_images", "label_not_in_classes")]
    workers = {r["worker_id"]: r for r in lake.read("annotators").to_pylist()}
    assert workers["w4"]["votes"] == 1 and not workers["w4"]["is_spammer"] and not workers["w4"]["is_adversarial"]


@pytest.mark.parametrize("policy, label, status, reason", [
    ("given_over_crowd", "dog", "resolved", "crowd_overridden"),
    ("crowd_over_given", "cat", "resolved", "given_overridden"),
    ("agree_only", None, "conflict", "crowd_given_disagree"),
])
def test_policies_decide_crowd_against_given(stage, lake, policy, label, status, reason):
    _, rows = stage(policy=policy)
    g = rows[iid("g.png")]
    assert (g["label"], g["status"], g["reason"]) == (label, status, reason)
    conflicts = pl.from_arrow(lake.read("quarantine")).filter(pl.col("check") == "label_conflict")
    assert conflicts.height == (2 if policy == "agree_only" else 0)  # agree_only: image b's given labels too


def test_dawid_skene_is_the_default_and_rerun_replaces_its_own_rows(stage, lake):
    first, rows = stage(min_confidence=0.9)
    assert rows[iid("a.png")]["label_source"] == "dawid_skene" and rows[iid("a.png")]["confidence"] > 0.9
    c = rows[iid("c.png")]  # two equally trusted workers disagree
    assert (c["label"], c["status"], c["reason"]) == (None, "unresolved", "low_confidence") and c["confidence"] < 0.9
    before = lake.count("quarantine")
    second, _ = stage(min_confidence=0.9)
    assert lake.count("quarantine") == before and lake.count("labels") == 7
    assert second["versions"]["labels"] == first["versions"]["labels"] + 1


def test_new_votes_are_merged_and_labels_recomputed(stage, lake, tmp_path):
    _, rows = stage()
    assert rows[iid("d.png")]["reason"] == "below_min_votes"
    assert land_csv(lake, tmp_path, "later", ["d.png,w1,bird", "d.png,w2,bird"]) == 2
    assert land_csv(lake, tmp_path, "votes", VOTES) == 0  # the first export again: nothing new
    _, rows = stage()
    assert (rows[iid("d.png")]["label"], rows[iid("d.png")]["status"], rows[iid("d.png")]["votes"]) == ("bird", "resolved", 3)


def test_only_images_of_the_silver_table_are_labelled(stage, lake):
    images = [{"image_id": iid(u), "width": 1, "height": 1, "mode": "RGB", "pixels": b"\0\0\0", "pixel_hash": "h",
               "phash": 0, "run_id": "r"} for u in ("a.png", "b.png")]
    lake.merge_insert("images", pa.Table.from_pylist(images))
    summary, rows = stage()
    assert summary["images_from"] == "images" and set(rows) == {iid("a.png"), iid("b.png")}
    assert summary["votes_outside_images"] == 6  # still used to estimate the workers


def test_without_votes_source_labels_decide(lake, make_params):
    land_raw(lake)
    summary = run(make_params({"labels": {"synonyms": {"kitty": "cat"}}}))  # classes inferred: cat, dog, horse
    rows = {r["image_id"]: r for r in lake.read("labels").to_pylist()}
    assert summary["classes"] == ["cat", "dog", "horse"] and summary["votes"]["votes_in"] == 0
    assert (rows[iid("a.png")]["label"], rows[iid("a.png")]["label_source"]) == ("cat", "given")
    assert (rows[iid("b.png")]["status"], rows[iid("b.png")]["reason"]) == ("conflict", "given_labels_conflict")
    assert rows[iid("c.png")]["reason"] == "no_label" and lake.count("annotators") == 0


def test_gold_file_must_name_known_items(stage, tmp_path):
    from sluice.errors import InputError

    gold = tmp_path / "gold.csv"
    gold.write_text("item,label\na.png,cat\nzz.png,cat\n")
    with pytest.raises(InputError, match=r"gold.csv:3: gold item 'zz.png' is not in raw_images"):
        stage(gold_file=str(gold))
    gold.write_text("item,label\na.png,cat\nc.png,bird\n")
    summary, rows = stage(gold_file=str(gold))
    assert summary["gold_items"] == 2 and rows[iid("c.png")]["label"] == "bird"


def test_cli_config_error_is_one_line(run_cli, tmp_path):
    result = run_cli(params={"lake": {"root": str(tmp_path / "lake")}, "labels": {"classes": ["a", "A"]}},
                     module="transform.labels")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("sluice: error: labels.classes: classes must differ")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_end_to_end(run_cli, tmp_path):
    """The demo's three vote exports through the real connectors: DS >= majority, bad workers flagged."""
    from pathlib import Path

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    params["lake"] = {"root": str(tmp_path / "lake")}
    for module in ("demo.generate", "ingest.public", "ingest.crowd", "transform.labels"):
        result = run_cli(params=params, module=module, timeout=600)
        assert result.returncode == 0, f"{module}: {result.stderr[-2000:]}"
    metrics = json.loads((tmp_path / "reports/metrics/labels.json").read_text())
    assert metrics["dawid_skene_accuracy"] >= metrics["majority_accuracy"]
    assert metrics["spammers_flagged"] == 1 and metrics["adversarial_flagged"] == 1
    manifest = json.loads((tmp_path / "data/manifests/labels.json").read_text())
    assert manifest["spammers"] == ["spammer"] and manifest["adversarial"] == ["adversary"]
    for worker, r in metrics["workers"].items():
        assert abs(r["estimated_accuracy"] - r["true_accuracy"]) < 0.05, worker
