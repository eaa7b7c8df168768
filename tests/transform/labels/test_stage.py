"""The labels stage: every item an outcome, policies, votes before or without images, loud failures."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest
import yaml

from ingest.votes.land import land_export
from ingest.votes.plain_csv import CsvVotesExport
from sluice.errors import InputError
from sluice.items import ItemIndex
from transform.labels.stage import run

NOW = datetime(2026, 1, 1, tzinfo=UTC)


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
    return land_export(lake, CsvVotesExport(name=name, kind="csv", path=str(path)), ItemIndex.from_lake(lake), "r").new


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
    rejected = {"vote_id": "rejected-1", "item_ref": "c.png", "item": "c.png", "item_key": "auto",
                "image_id": iid("c.png"), "worker_id": "w3",
                "label": "bird", "status": "rejected", "source_file": "x", "source_format": "mturk", "run_id": "r"}
    lake.merge_insert("crowd_votes", pa.Table.from_pylist([rejected]))

    def go(**labels):
        cfg = {"classes": ["cat", "dog", "bird"], "synonyms": {"kitty": "cat"}, "min_votes": 2,
               "min_confidence": 0.5, "max_unknown_label_share": 0.1, **labels}
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
        "c.png": ("dog", "majority", "unresolved", "tie"),  # best guess kept (seeded break between equal workers)
        "d.png": ("bird", "majority", "unresolved", "below_min_votes"),
        "e.png": (None, "none", "unresolved", "no_label"),  # 'horse' is not a class: quarantined
        "f.png": (None, "none", "unresolved", "no_label"),  # its only vote, 'fish', is not a class
        "g.png": ("dog", "given", "resolved", "crowd_overridden"),
    }
    got = {u: (rows[iid(u)]["label"], rows[iid(u)]["label_source"], rows[iid(u)]["status"], rows[iid(u)]["reason"])
           for u in expect}
    assert got == expect
    assert (rows[iid("g.png")]["crowd_label"], rows[iid("g.png")]["crowd_confidence"]) == ("cat", 1.0)  # disputed
    assert rows[iid("e.png")]["crowd_label"] is None and rows[iid("a.png")]["crowd_label"] == "cat"
    assert rows[iid("a.png")]["confidence"] == 1.0 and rows[iid("a.png")]["votes"] == 3
    assert rows[iid("c.png")]["agreement"] == 0.5
    assert summary["votes"] == {"votes_in": 14, "used": 12, "rejected_assignments": 1, "not_in_classes": 1,
                                "repeat_same_worker_item": 0, "gold_answers": 0, "pending_no_image": 0}
    q = pl.from_arrow(lake.read("quarantine")).filter(pl.col("stage") == "labels")
    assert sorted(zip(q["source_table"], q["check"])) == [("crowd_votes", "label_not_in_classes"),
                                                          ("raw_images", "label_not_in_classes")]
    workers = {r["worker_id"]: r for r in lake.read("annotators").to_pylist()}
    assert workers["w4"]["votes"] == 1 and not workers["w4"]["is_spammer"] and not workers["w4"]["is_adversarial"]


def test_images_whose_source_label_is_no_class_are_named_in_one_line(stage, caplog):
    """A class folder added after sluice init wrote labels.classes lands quarantined, and the stage says so: which
    label, how many, and the fix (a near-spelling of a class names the class)."""
    stage(method="majority")
    line = next(r.getMessage() for r in caplog.records if "outside labels.classes" in r.getMessage())
    assert line.startswith("1 of ") and "'horse' x1" in line and "add it to labels.classes" in line
    caplog.clear()
    stage(method="majority", classes=["cat", "dog", "bird", "hors"])
    line = next(r.getMessage() for r in caplog.records if "outside labels.classes" in r.getMessage())
    assert "near-spellings of classes: 'horse' -> 'hors'" in line


@pytest.mark.parametrize("policy, label, status, reason", [
    ("given_over_crowd", "dog", "resolved", "crowd_overridden"),
    ("crowd_over_given", "cat", "resolved", "given_overridden"),
    ("agree_only", "cat", "conflict", "crowd_given_disagree"),  # the crowd's best guess stays
])
def test_policies_decide_crowd_against_given(stage, lake, policy, label, status, reason):
    _, rows = stage(policy=policy)
    g = rows[iid("g.png")]
    assert (g["label"], g["status"], g["reason"]) == (label, status, reason)
    conflicts = pl.from_arrow(lake.read("quarantine")).filter(pl.col("check") == "label_conflict")
    assert conflicts.height == (2 if policy == "agree_only" else 0)  # agree_only: image b's given labels too


def test_source_policy_overrides_the_global_one_and_names_unknown_sources(stage):
    _, rows = stage(policy="given_over_crowd", source_policy={"t": "crowd_over_given"})
    g = rows[iid("g.png")]
    assert (g["label"], g["status"], g["reason"]) == ("cat", "resolved", "given_overridden")
    with pytest.raises(InputError, match=r"labels.source_policy names source\(s\) 'tt' with no landed images"):
        stage(source_policy={"tt": "agree_only"})


def test_dawid_skene_is_the_default_and_rerun_replaces_its_own_rows(stage, lake):
    first, rows = stage(min_confidence=0.9)
    assert rows[iid("a.png")]["label_source"] == "dawid_skene" and rows[iid("a.png")]["confidence"] > 0.9
    c = rows[iid("c.png")]  # two equally trusted workers disagree
    assert (c["status"], c["reason"]) == ("unresolved", "low_confidence") and c["confidence"] < 0.9
    assert c["label"] in ("bird", "dog")  # the best guess stays
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
    with pytest.raises(InputError, match=r"gold.csv:3: gold item 'zz.png' is neither in raw_images nor voted on"):
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

    params = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    params["lake"] = {"root": str(tmp_path / "lake")}
    params["privacy"] = {"pseudonymize_workers": False}  # the report names the demo's designed workers
    for module in ("demo.generate", "ingest.public", "ingest.votes", "transform.labels"):
        result = run_cli(params=params, module=module, timeout=600)
        assert result.returncode == 0, f"{module}: {result.stderr[-2000:]}"
    metrics = json.loads((tmp_path / "reports/metrics/labels.json").read_text())
    assert metrics["dawid_skene_accuracy"] >= metrics["majority_accuracy"]
    assert metrics["spammers_flagged"] == 1 and metrics["adversarial_flagged"] == 1
    manifest = json.loads((tmp_path / "data/manifests/labels.json").read_text())
    assert manifest["spammers"] == ["spammer"] and manifest["adversarial"] == ["adversary"]
    for worker, r in metrics["workers"].items():
        assert abs(r["estimated_accuracy"] - r["true_accuracy"]) < 0.05, worker
    assert r["interval"][0] <= r["estimated_accuracy"] <= r["interval"][1]


# ---------------------------------------------------------------------------- votes first, images later or never
def test_votes_before_images_are_labelled_by_item_then_resolve(lake, tmp_path, make_params):
    land_csv(lake, tmp_path, "early", ["a.png,w1,cat", "a.png,w2,cat", "a.png,w3,dog", "x.png,w1,dog"])
    params = make_params({"labels": {"classes": ["cat", "dog"], "method": "majority"}})
    summary = run(params)  # no raw_images at all
    rows = {r["item"]: r for r in lake.read("labels").to_pylist()}
    assert summary["pending_items"] == 2 and summary["votes"]["pending_no_image"] == 4
    assert (rows["a.png"]["label"], rows["a.png"]["status"], rows["a.png"]["image_id"]) == ("cat", "resolved", None)
    assert rows["a.png"]["confidence"] == pytest.approx(2 / 3)  # a 2-of-3 majority resolves under the defaults
    assert (rows["x.png"]["label"], rows["x.png"]["status"]) == ("dog", "resolved")  # one vote: default min_votes 1
    assert lake.count("annotators") == 3 and summary["em_iterations"] == 0  # majority runs no EM
    assert not lake.exists("quarantine") or lake.count("quarantine") == 0

    land_raw(lake)  # the images arrive
    summary = run(params)
    rows = {r["item"]: r for r in lake.read("labels").to_pylist()}
    assert rows[iid("a.png")]["image_id"] == iid("a.png") and rows[iid("a.png")]["votes"] == 3
    assert "a.png" not in rows and rows["x.png"]["image_id"] is None  # x.png never landed: still pending
    assert summary["pending_items"] == 1
    bronze = pl.from_arrow(lake.read("crowd_votes"))
    assert bronze["image_id"].null_count() == 4  # bronze is append-only; resolution happens here


def test_cli_aggregates_without_images(run_cli, tmp_path):
    (tmp_path / "votes.csv").write_text("item,worker,label\n1,w1,cat\n1,w2,cat\n2,w1,dog\n")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "labels": {"classes": ["cat", "dog"], "exports": [{"name": "v", "kind": "csv", "path": "votes.csv"}]}}
    assert run_cli("votes", "ingest", params=params).returncode == 0
    result = run_cli("labels", "aggregate", params=params)
    assert result.returncode == 0, result.stderr
    assert "2 items (0 images from raw_images, 2 voted items without an image)" in result.stderr
    workers = run_cli("labels", "workers", params=params)
    assert workers.returncode == 0 and "accuracy_low" in workers.stdout


# ---------------------------------------------------------------------------- loud on mistakes
def test_labels_outside_the_classes_fail_the_run_naming_them(run_cli, tmp_path):
    lines = "".join(f"{i},w{w},{lab}\n" for i in range(20) for w, lab in enumerate(["automobile", "truck", "automobile"]))
    (tmp_path / "votes.csv").write_text("item,worker,label\n" + lines)
    params = {"lake": {"root": str(tmp_path / "lake")},
              "labels": {"classes": ["automobil", "truck"], "exports": [{"name": "v", "kind": "csv", "path": "votes.csv"}]}}
    assert run_cli("votes", "ingest", params=params).returncode == 0
    result = run_cli("labels", "aggregate", params=params)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "40 of 60 votes (66.7%) carry a label outside labels.classes" in error
    assert "'automobile' x40" in error and "'automobile' -> 'automobil'" in error


def test_class_indices_are_suggested(lake, tmp_path, make_params):
    from sluice.errors import InputError

    land_csv(lake, tmp_path, "v", ["a.png,w1,0", "a.png,w2,1"])
    with pytest.raises(InputError, match="look like class indices"):
        run(make_params({"labels": {"classes": ["cat", "dog"]}}))


def test_zero_usable_votes_is_an_error(lake, tmp_path, make_params):
    from sluice.errors import InputError

    land_csv(lake, tmp_path, "v", ["a.png,w1,fish"])
    with pytest.raises(InputError, match="0 of 1 votes are usable"):
        run(make_params({"labels": {"classes": ["cat", "dog"], "max_unknown_label_share": 1.0}}))


def test_zero_votes_is_said_as_such_not_as_a_missing_class_list(lake, tmp_path, make_params):
    """A header-only export with no classes set: the cause is no votes, not labels.classes."""
    path = tmp_path / "v.csv"
    path.write_text("item,worker,label\n")
    params = make_params({"labels": {"exports": [{"name": "v", "kind": "csv", "path": str(path)}]}})
    land_export(lake, params.labels.exports[0], ItemIndex.from_lake(lake), "r")
    with pytest.raises(InputError, match=r"no votes to aggregate: crowd_votes is empty, the vote exports \(v \("):
        run(params)


# ---------------------------------------------------------------------------- truth files keyed like the votes
def test_ground_truth_csv_keyed_like_the_votes(stage, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("item,label\na.png,cat\nb.png,dog\nc.png,bird\ng.png,dog\n")
    summary, _ = stage(ground_truth=str(truth), method="one_coin")
    acc = summary["accuracy"]
    assert acc["items_scored"] == 4 and acc["majority_accuracy"] == 0.5 and "one_coin_accuracy" in acc
    assert set(acc["workers"]["w1"]) >= {"estimated_accuracy", "interval", "true_accuracy"}
    with pytest.raises(InputError, match="labels.ground_truth does not exist"):  # asked for: said, not skipped
        stage(ground_truth=str(tmp_path / "gone.csv"))
    truth.write_text("item,label\na.png,cat\nzz.png,dog\n")  # some items (and one never voted): those items only
    summary, _ = stage(ground_truth=str(truth), method="majority")
    assert (summary["accuracy"]["items_scored"], summary["accuracy"]["majority_accuracy"]) == (1, 1.0)
    truth.write_text("item,label\na.png,cat\nb.png,wolf\n")  # a label outside the classes: said, not dropped
    with pytest.raises(InputError, match=r"truth.csv: labels.ground_truth gives item 'b.png' the label 'wolf'"):
        stage(ground_truth=str(truth))
    truth.write_text("item,label\na.png,cat\n./A.png,dog\nb.png,\n")  # one item (as the votes key it), two labels
    with pytest.raises(InputError, match=r"gives item 'a.png' two labels \(cat and dog"):
        stage(ground_truth=str(truth))


def test_ground_truth_from_the_sources_own_labels(stage):
    """CIFAR-10H's votes on CIFAR's own labelled test images: the crowd scored against the labels the images came
    with (an image given two, b.png's copies, is not scored)."""
    summary, _ = stage(ground_truth="sources", method="majority")
    acc = summary["accuracy"]
    assert (acc["ground_truth"], acc["items_scored"], acc["majority_accuracy"]) == ("the sources' labels", 2, 0.5)
    assert acc["workers"]["w1"]["true_accuracy"] == 0.5  # a.png cat (given cat), g.png cat (given dog)


def test_votes_only_truth_inference_benchmark_layout(run_cli, tmp_path):
    """answer.csv (question,worker,answer) + truth.csv (question,truth), no images, no class list."""
    (tmp_path / "answer.csv").write_text("question,worker,answer\n" + "".join(
        f"q{i},w{w},{(i + (w == 2)) % 2}\n" for i in range(30) for w in range(3)))
    (tmp_path / "truth.csv").write_text("question,truth\n" + "".join(f"q{i},{i % 2}\n" for i in range(30)))
    params = {"lake": {"root": str(tmp_path / "lake")}, "privacy": {"pseudonymize_workers": False},
              "labels": {"ground_truth": "truth.csv", "exports": [
                  {"name": "a", "kind": "csv", "path": "answer.csv", "item_column": "question", "worker_column": "worker",
                   "label_column": "answer"}]}}
    assert run_cli("votes", "ingest", params=params).returncode == 0
    result = run_cli("labels", "aggregate", params=params)
    assert result.returncode == 0, result.stderr
    assert "classes taken from the votes (0, 1)" in result.stderr
    assert "dawid_skene 1.0; final labels 1.0 on 30 resolved items" in result.stderr


def test_square_layout_headerless_votes_and_gold_through_init(run_cli, tmp_path):
    """SQUARE's `worker item label` lines without a header and its `item label` gold beside them: `sluice init`
    reads the columns by their values and takes the gold as the ground truth the crowd is scored against."""
    (tmp_path / "bm.response.txt").write_text("".join(
        f"w{w}\tq{i}\t{(i + (w == 2)) % 2}\n" for i in range(30) for w in range(3)))
    (tmp_path / "bm.gold.txt").write_text("".join(f"q{i}\t{i % 2}\n" for i in range(30)))
    env = {"SLUICE_PSEUDONYM_KEY": "test-key", "SLUICE_PARAMS": str(tmp_path / "proj" / "params.yaml")}
    res = run_cli("init", str(tmp_path / "proj"), "--votes", str(tmp_path / "bm.response.txt"), env=env)
    assert res.returncode == 0, res.stderr
    assert "read as item column_2 (30 distinct), worker column_1 (3), label column_3 (2)" in res.stderr
    assert run_cli("votes", "ingest", cwd=tmp_path / "proj", env=env).returncode == 0
    result = run_cli("labels", "aggregate", cwd=tmp_path / "proj", env=env)
    assert result.returncode == 0, result.stderr
    assert "accuracy vs ground truth on 30 voted items: majority 1.0" in result.stderr


# ---------------------------------------------------------------------------- labels kept in columns of a vote file
def test_truth_and_gold_read_from_columns_of_a_vote_file(stage, tmp_path):
    """CIFAR-10H keeps the true label on every trial's row, Toloka the control answer in GOLDEN:result: one label an
    item, read from two columns, keyed as the votes are."""
    trials = tmp_path / "trials.csv"
    trials.write_text("image,worker,chosen,true_category,GOLDEN:result\n"
                      "a.png,w1,cat,cat,\na.png,w2,cat,cat,\nb.png,w1,dog,dog,\nc.png,w1,bird,bird,bird\n"
                      "c.png,w2,dog,bird,bird\ng.png,w1,cat,dog,\n")
    truth = {"path": str(trials), "item_column": "image", "label_column": "true_category"}
    summary, _ = stage(ground_truth=truth, method="one_coin")
    assert summary["accuracy"]["items_scored"] == 4
    assert summary["accuracy"]["ground_truth"] == f"{trials}, column true_category"
    summary, rows = stage(gold_file={**truth, "label_column": "GOLDEN:result"})
    assert summary["gold_items"] == 1 and rows[iid("c.png")]["label"] == "bird"
    trials.write_text("image,worker,true_category\na.png,w1,cat\na.png,w2,dog\n")  # two truths for one item
    with pytest.raises(InputError, match=r"item 'a.png' has two labels in column 'true_category' \('cat' and 'dog'\)"):
        stage(ground_truth=truth)


def test_label_studio_ground_truth_annotations_are_gold_not_votes(stage, lake, tmp_path):
    """An annotation starred as the task's ground truth lands with status gold: it pins its item and never counts as
    a worker's vote; two that disagree pin nothing."""
    from ingest.votes.label_studio import LabelStudioExport

    def task(image, *annotations):
        return {"data": {"image": image}, "annotations": [
            {"id": n, "completed_by": who, "ground_truth": gt, "result": [{"type": "choices", "value": {"choices": [c]}}]}
            for n, (who, c, gt) in enumerate(annotations)]}
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([task("c.png", ("expert", "bird", True), ("w5", "dog", False)),
                                task("f.png", ("expert", "cat", True), ("lead", "dog", True))]))
    land_export(lake, LabelStudioExport(name="ls", kind="label_studio", path=str(path)), ItemIndex.from_lake(lake), "r")
    assert sorted(lake.read("crowd_votes").to_pandas()["status"].unique()) == ["gold", "rejected", "submitted"]
    summary, rows = stage()
    assert summary["gold_items"] == 1 and rows[iid("c.png")]["label"] == "bird"
    workers = {r["worker_id"] for r in lake.read("annotators").to_pylist()}
    assert summary["votes"]["gold_answers"] == 3 and "w5" in workers and not {"expert", "lead"} & workers
