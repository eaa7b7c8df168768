"""Every suite on real Delta tables: the clean fixture passes, each injected defect fails its check."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sluice.errors import ConfigError


def failed(report: dict) -> set[str]:
    return {c["name"] for c in report["checks"] if c["success"] is False}


@pytest.mark.parametrize("layer", ["bronze", "silver", "gold", "snapshot"])
def test_clean_fixture_passes(world, layer):
    report = world.run(layer)
    assert report["success"], report["critical_failures"]
    assert failed(report) == set()
    assert report["counts"]["skipped"] == 0
    assert report["counts"]["passed"] >= 8
    assert json.loads((world.root / "reports" / f"{layer}.json").read_text())["success"] is True


def _row(table, where, **changes):
    def fn(rows):
        for r in rows:
            if all(r[k] == v for k, v in where.items()):
                r.update(changes)
                return rows
        raise AssertionError(f"no {table} row matching {where}")
    return fn


def _first(**changes):
    def fn(rows):
        rows[0].update(changes)
        return rows
    return fn


def _copy_test_image_into_train(rows):
    test = next(r for r in rows if r["split_hint"] == "test")
    return rows + [{**test, "split_hint": "train", "source_uri": test["source_uri"].replace("/test/", "/train/") + ".copy"}]


def _duplicate_first(rows):
    return rows + [dict(rows[0])]


def _move_group_member_to_test(rows):
    member = next(r for r in rows if r["dup_group"] != r["image_id"])
    member["split"] = "test"
    return rows


def _drop_class_from_train(rows):
    return [r for r in rows if not (r["label"] == "fox" and r["split"] == "train")]


def _manifest(world, stage, **reconcile):
    path = world.root / "manifests" / f"{stage}.json"
    body = json.loads(path.read_text())
    body["reconcile"].update(reconcile)
    path.write_text(json.dumps(body))


def _one_patient_in_two_splits(world):
    """Two dataset images in different splits named by their source as one patient's."""
    rows = world.lake.read("dataset").to_pylist()
    train, test = (next(r["image_id"] for r in rows if r["split"] == s) for s in ("train", "test"))
    world.edit("raw_images", lambda raw: [{**r, "subject": "patient 7"} if r["image_id"] in (train, test) else r
                                          for r in raw])


def _corrupt_shard(world):
    shard = sorted((world.root / "dataset").glob("train-*.images.npy"))[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))


DEFECTS = {
    # suite: (layer, injection, expected failing check)
    "raw_images": ("bronze", lambda w: w.edit("raw_images", _first(image_id="NOT-A-SHA256")), "raw_images.image_id_sha256"),
    "raw_images leak": ("bronze", lambda w: w.edit("raw_images", _copy_test_image_into_train),
                        "raw_images.no_test_image_in_train"),
    "crowd_votes": ("bronze", lambda w: w.edit("crowd_votes", _first(status="maybe")), "crowd_votes.status_known"),
    "crawl_log": ("bronze", lambda w: w.edit("crawl_log", _first(status=999)), "crawl_log.status_range"),
    "images": ("silver", lambda w: w.edit("images", _first(pixels=b"\0" * 100)), "images.pixel_bytes"),
    "images thumb": ("silver", lambda w: w.edit("images", _first(thumb=b"\0" * 100)), "images.thumb_bytes"),
    "labels": ("silver", lambda w: w.edit("labels", _first(label="wolf")), "labels.resolved_label_in_classes"),
    "annotators": ("silver", lambda w: w.edit("annotators", _first(accuracy=1.7)), "annotators.accuracy_range"),
    "quarantine": ("silver", lambda w: w.edit("quarantine", _duplicate_first), "quarantine.key_unique"),
    "reconcile_silver": ("silver", lambda w: _manifest(w, "clean", images=23), "reconcile_silver.rows_in_accounted"),
    "dataset leak": ("gold", lambda w: w.edit("dataset", _move_group_member_to_test),
                     "dataset.no_dup_group_across_splits"),
    "dataset subject": ("gold", _one_patient_in_two_splits, "dataset.no_subject_across_splits"),
    "dataset class": ("gold", lambda w: w.edit("dataset", _drop_class_from_train), "dataset.train_class_min_share"),
    "dataset label": ("gold", lambda w: w.edit("dataset", _first(label="wolf")), "dataset.label_in_classes"),
    "snapshot": ("snapshot", _corrupt_shard, "snapshot.content_hash_matches"),
}


@pytest.mark.parametrize("case", sorted(DEFECTS))
def test_injected_defect_fails_its_check(world, case):
    layer, inject, check = DEFECTS[case]
    suite = check.split(".")[0]
    inject(world)
    report = world.run(layer, only=[suite])
    assert check in failed(report)
    assert check in report["critical_failures"]
    assert not report["success"]
    if case == "dataset leak":  # the planted pair shares a group; only the group's rows are named
        entry = next(c for c in report["checks"] if c["name"] == check)
        assert entry["quarantined"] == 2


def test_crawl_log_entries_never_requested_pass_and_a_garbled_url_fails(world):
    """An inline image's digest and a URL list's row are logged without a request: bronze passes them (it used to
    fail every crawl of a page with an inline image); a URL that is none of those fails."""
    def entries(rows):
        return rows + [{**rows[0], "url": "data:image/gif;base64;sha256=0123456789abcdef", "outcome": "dropped:data_url"},
                       {**rows[0], "url": "list:urls.csv:12", "outcome": "dropped:bad_url"}]

    world.edit("crawl_log", entries)
    assert world.run("bronze", only=["crawl_log"])["success"]
    world.edit("crawl_log", _first(url="garbled"))
    assert "crawl_log.url_http" in failed(world.run("bronze", only=["crawl_log"]))


def test_warning_does_not_stop_the_gate(world):
    world.edit("labels", _first(confidence=0.2))  # resolved but unsure: a warning
    report = world.run("silver", only=["labels"])
    assert report["success"]
    assert report["warnings"] == ["labels.resolved_confidence_min"]


def test_severity_override_demotes_and_unknown_name_is_a_config_error(world):
    world.edit("dataset", _drop_class_from_train)
    world.set(severity={"dataset.train_class_min_share": "warning"})
    report = world.run("gold", only=["dataset"])
    assert report["success"] and "dataset.train_class_min_share" in report["warnings"]
    world.set(severity={"dataset.no_such_check": "off"})
    with pytest.raises(ConfigError, match="dataset.no_such_check"):
        world.run("gold", only=["dataset"])


def test_failing_rows_are_quarantined_and_readmitted_after_a_fix(world):
    before = world.lake.read("dataset").to_pylist()
    world.edit("dataset", _move_group_member_to_test)
    world.run("gold", only=["dataset"])
    q = [r for r in world.lake.read("quarantine").to_pylist() if r["stage"] == "quality_gold"]
    assert {r["check"] for r in q} == {"dataset.no_dup_group_across_splits", "dataset.no_near_duplicate_across_splits"}
    assert {r["source_table"] for r in q} == {"dataset"}
    member = next(r for r in before if r["dup_group"] != r["image_id"])
    assert {member["image_id"], member["dup_group"]} <= {r["row_key"] for r in q}
    assert all(r["run_id"].startswith("quality_gold-") for r in q)
    world.run("gold", only=["dataset"])  # rerun: replaced, not duplicated
    assert len([r for r in world.lake.read("quarantine").to_pylist() if r["stage"] == "quality_gold"]) == len(q)

    world.lake.overwrite("dataset", pa.Table.from_pylist(before, schema=world.lake.read("dataset").schema))
    assert world.run("gold", only=["dataset"])["success"]
    remaining = world.lake.read("quarantine").to_pylist()
    assert [r for r in remaining if r["stage"] == "quality_gold"] == []
    assert any(r["stage"] == "ingest" for r in remaining)  # other stages' rows untouched
    version = world.lake.version("quarantine")
    assert world.run("gold", only=["dataset"])["success"]
    assert world.lake.version("quarantine") == version  # a clean rerun commits nothing


def test_row_checks_merge_across_batches(world):
    world.edit("raw_images", lambda rows: rows[:-1] + [{**rows[-1], "image_id": "bad"}])
    world.set(batch_rows=5)  # 24 rows -> 5 batches; the bad row is in the last one
    report = world.run("bronze", only=["raw_images"])
    entry = next(c for c in report["checks"] if c["name"] == "raw_images.image_id_sha256")
    assert (entry["success"], entry["elements"], entry["unexpected"], entry["sample"]) == (False, 24, 1, ["bad"])
    assert entry["quarantined"] == 1


def test_missing_column_fails_with_a_clear_message(world):
    from deltalake import write_deltalake

    table = world.lake.read("images").drop_columns(["phash"])
    write_deltalake(world.lake.uri("images"), table, mode="overwrite", schema_mode="overwrite")
    report = world.run("silver", only=["images"])
    assert not report["success"]
    schema = next(c for c in report["checks"] if c["name"] == "images.columns_and_types")
    assert schema["success"] is False and "missing column 'phash'" in schema["observed"]
    skipped = next(c for c in report["checks"] if c["name"] == "images.phash_not_null")
    assert skipped["skipped"] == "column 'images.phash' is missing"


def test_missing_required_table_fails(world):
    import shutil

    shutil.rmtree(world.lake.uri("dataset"))
    report = world.run("gold", only=["dataset"])
    assert report["critical_failures"] == ["dataset.table_exists"]


def test_data_docs_site_is_built(world):
    world.edit("annotators", _first(accuracy=1.7))
    report = world.run("silver", docs=True, only=["annotators"])
    index = world.root / "reports" / "docs" / "index.html"
    assert report["data_docs"] == str(index) and index.is_file()
    pages = list((world.root / "reports" / "docs" / "validations").rglob("*.html"))
    assert any("annotators.accuracy_range" in p.read_text() for p in pages)


def test_class_list_is_inferred_or_its_checks_are_skipped(world):
    import shutil

    world.set(classes=None)
    report = world.run("bronze", only=["crowd_votes"])
    assert report["classes"] == ["cat", "dog", "fox"] and report["classes_origin"].startswith("inferred from labels")
    for table in ("labels", "dataset"):
        shutil.rmtree(world.lake.uri(table))
    report = world.run("bronze", only=["crowd_votes"])
    entry = next(c for c in report["checks"] if c["name"] == "crowd_votes.label_in_classes")
    assert report["success"] and entry["skipped"].startswith("no class list")


def test_test_leakage_share_gate(world):
    world.edit("dataset", _move_group_member_to_test)
    report = world.run("gold", only=["dataset"])
    assert "dataset.test_leakage_share" in report["critical_failures"]
    world.set(max_test_leakage=0.5)  # one leaked test image of 7: allowed by a lax threshold
    report = world.run("gold", only=["dataset"])
    assert "dataset.test_leakage_share" not in report["critical_failures"]


def test_the_least_class_share_scales_with_the_number_of_classes(world):
    """A fixed 1% stopped every set of more than 100 balanced classes (Food-101: 0.99% each); by default each
    class must keep a tenth of a balanced share, and an explicit min_class_share is used as it is."""
    from sluice.params_data import QualityParams

    assert [QualityParams().class_share_floor(k) for k in (10, 101, 1000)] == [0.01, 0.1 / 101, 0.0001]
    assert QualityParams(min_class_share=0.02).class_share_floor(1000) == 0.02
    report = world.run("gold", only=["dataset"])
    [check] = [c for c in report["checks"] if c["name"] == "dataset.train_class_min_share"]
    assert check["success"] and "3.33% of the train split (quality.min_class_share: a tenth of a balanced share " \
                                "of 3 classes)" in check["description"]
    world.set(min_class_share=0.9)
    assert "dataset.train_class_min_share" in failed(world.run("gold", only=["dataset"]))


def test_an_inferred_class_list_of_numbers_is_in_numeric_order_as_the_dataset_stage_numbers_them():
    """Class folders 1..12: the dataset stage gives "10" index 9, so the list the gates compare with must too
    (sorted as text, "10" came second and the snapshot gate's classes_match failed on a correct snapshot)."""
    import duckdb

    from quality.gate import resolve_classes
    from sluice.config import Params

    con = duckdb.connect()
    con.execute("CREATE TABLE labels AS SELECT CAST(range + 1 AS VARCHAR) AS label, 'resolved' AS status FROM range(12)")
    params = Params.model_validate({})
    classes, origin = resolve_classes(params, con, {"labels"})
    assert classes == [str(k) for k in range(1, 13)] and origin.startswith("inferred from labels")


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_vote_labels_are_judged_as_the_labels_stage_reads_them(world):
    """Votes of `Cat ` and `kitty` (labels.synonyms) are the class cat, as the labels stage counts them: an MTurk
    answer capitalised quarantined every vote before; a label outside the classes still fails."""
    world.edit("crowd_votes", lambda rows: [{**r, "label": {"cat": " Cat ", "dog": "DOG"}.get(r["label"], r["label"])}
                                            for r in rows[:-1]] + [{**rows[-1], "label": "kitty"}])
    world.raw.setdefault("labels", {})["synonyms"] = {"Kitty": "cat"}
    report = world.run("bronze", only=["crowd_votes"])
    assert _check(report, "crowd_votes.label_in_classes")["success"] is True
    world.edit("crowd_votes", _first(label="wolf"))
    assert _check(world.run("bronze", only=["crowd_votes"]), "crowd_votes.label_in_classes")["success"] is False


def test_images_landed_unlabelled_by_design_do_not_count_against_source_labels(world):
    """A source with label_from: none lands images for crowd votes: their null labels are no defect (all were
    quarantined as missing source labels); the same nulls from a labelled source still fail the check."""
    world.edit("raw_images", lambda rows: [{**r, "source_label": None} for r in rows])
    report = world.run("bronze", only=["raw_images"])
    assert _check(report, "raw_images.source_label_mostly_present")["success"] is False
    sources = sorted({r["source"] for r in world.lake.read("raw_images", ["source"]).to_pylist()})
    world.raw["ingest"] = {"sources": [{"name": s, "kind": "image_folder", "path": "unused", "label_from": "none"}
                                       for s in sources]}
    report = world.run("bronze", only=["raw_images"])
    assert _check(report, "raw_images.source_label_mostly_present")["success"] is True
