"""One suite per table, defined in code: what each layer must satisfy before the next reads it.

Every check is critical (a failure stops the pipeline) or a warning (reported, quarantined, not
blocking); ``quality.severity`` in params.yaml overrides a check's severity by name, or turns it off.
Row checks run batch-wise in GX, aggregate checks run in DuckDB (see ``quality.checks``).
"""

from __future__ import annotations

from quality.checks import Check, Env, FrameColumn, Suite
from quality.expectations import (HEX64, OK, SPLITS, classes_or_empty, between, col, folded_classes, in_set, is_ok,
                                  nbytes, not_null, pair_equal, regex, schema_check, source_label, unique_key,
                                  vote_label)
from quality.manifests import reconciliation_frames
from quality.snapshots import snapshot_metrics
from sluice.connectors import connectors
from sluice.held_out import SIDES_SQL


# ---------------------------------------------------------------------------- bronze
def raw_images(env: Env) -> Suite:
    p = env.params
    leak = ("SELECT image_id FROM raw_images GROUP BY image_id "
            "HAVING bool_or(split_hint = 'test') AND bool_or(split_hint = 'train')")
    return Suite(
        "raw_images", "bronze", "raw_images", required=True,
        key=col("source_uri"),
        frame={"image_id": col("image_id"), "content_bytes": nbytes("content"), "source": col("source"),
               "source_uri": col("source_uri"), "fetched_at": col("fetched_at"), "run_id": col("run_id"),
               "split_hint": col("split_hint"), "source_label": source_label(p)},
        checks=[
            schema_check("raw_images"),
            Check.row("image_id_sha256", "critical", "image_id", regex(HEX64), "image_id is a sha256: 64 lowercase hex"),
            Check.row("content_bytes_range", "critical", "content_bytes", between(1, p.ingest.max_file_bytes),
                      f"content is 1..{p.ingest.max_file_bytes} bytes (ingest.max_file_bytes)"),
            Check.row("source_not_null", "critical", "source", not_null(), "every row names its source"),
            Check.row("source_uri_not_null", "critical", "source_uri", not_null(), "every row has a source_uri"),
            Check.row("fetched_at_not_null", "critical", "fetched_at", not_null(), "every row has fetched_at"),
            Check.row("run_id_not_null", "critical", "run_id", not_null(), "every row has a run_id"),
            Check.row("split_hint_known", "warning", "split_hint", in_set(SPLITS), "split_hint is train/val/test or null"),
            Check.row("source_label_mostly_present", "warning", "source_label", not_null(0.5),
                      "at least half of the landed images carry a source label (sources with label_from: none aside)"),
            unique_key("raw_images", ("image_id", "source", "source_uri"), "source_uri"),
            Check.aggregate(
                "no_test_image_in_train", "critical",
                "no image (same bytes) is landed both as a test and as a train example (a leak at the source)",
                between(0, 0), lambda env: env.scalar(f"SELECT count(*) FROM ({leak})"),
                needs=("raw_images.image_id", "raw_images.split_hint"),
                keys=lambda env: env.values(f"SELECT DISTINCT source_uri FROM raw_images WHERE image_id IN ({leak}) "
                                            "AND split_hint = 'train' ORDER BY 1"),
                detail=lambda env: "train copies of test images: " + ", ".join(env.values(
                    f"SELECT DISTINCT source_uri FROM raw_images WHERE image_id IN ({leak}) "
                    "AND split_hint = 'train' ORDER BY 1 LIMIT 5"))),
        ],
    )


def crowd_votes(env: Env) -> Suite:
    unresolved = "SELECT avg(CASE WHEN image_id IS NULL THEN 1.0 ELSE 0.0 END) FROM crowd_votes"
    return Suite(
        "crowd_votes", "bronze", "crowd_votes", key=col("vote_id"),
        frame={"vote_id": col("vote_id"), "item_ref": col("item_ref"), "image_id": col("image_id"),
               "worker_id": col("worker_id"), "label": vote_label(env.params), "status": col("status"),
               "source_format": col("source_format")},
        checks=[
            schema_check("crowd_votes"),
            Check.row("worker_id_not_null", "critical", "worker_id", not_null(), "every vote names its worker"),
            Check.row("item_ref_not_null", "critical", "item_ref", not_null(), "every vote names its item"),
            Check.row("image_id_sha256", "critical", "image_id", regex(HEX64), "resolved image ids are sha256 hex"),
            Check.row("status_known", "critical", "status", in_set(["approved", "gold", "rejected", "submitted"]),
                      "status is approved / gold (an export's known answer) / rejected / submitted"),
            Check.row("source_format_known", "warning", "source_format", in_set(sorted(connectors("votes"))),
                      "source_format is a registered vote connector kind (mturk / label_studio / csv / wide / a plug-in's)"),
            Check.row("label_in_classes", "warning", "label", lambda c: in_set(folded_classes(env))(c),
                      "vote labels are in the class list (trimmed, case-folded, labels.synonyms)", needs_classes=True),
            unique_key("crowd_votes", ("vote_id",), "vote_id"),
            Check.aggregate(
                "unresolved_item_share", "warning",
                f"at most {env.params.quality.max_unresolved_vote_share:.0%} of votes name an unknown item",
                between(0, env.params.quality.max_unresolved_vote_share),
                lambda env: float(env.scalar(unresolved) or 0.0), needs=("crowd_votes.image_id",)),
        ],
    )


def crawl_log(env: Env) -> Suite:
    return Suite(
        "crawl_log", "bronze", "crawl_log", key=FrameColumn("url || ' @ ' || CAST(fetched_at AS VARCHAR)", ("url", "fetched_at")),
        frame={"url": col("url"), "status": col("status"), "bytes": col("bytes"), "robots": col("robots"),
               "outcome": col("outcome")},
        checks=[
            schema_check("crawl_log"),
            # never requested, but logged: an inline image by its digest, a URL list's row by its line
            Check.row("url_http", "critical", "url", regex(r"^(https?://|data:[^,]*;sha256=[0-9a-f]{16}$|list:.+:\d+$)"),
                      "every logged request is an http(s) URL (or an inline image's digest, a URL list's row)"),
            Check.row("status_range", "critical", "status", between(100, 599), "HTTP status is 100..599 or null"),
            Check.row("bytes_non_negative", "critical", "bytes", between(0, None), "byte counts are >= 0"),
            Check.row("robots_known", "warning", "robots", in_set(["allowed", "disallowed", "n/a"]),
                      "robots decision is allowed / disallowed / n/a"),
            Check.row("outcome_known", "warning", "outcome",
                      regex(r"^(?:page|image|redirect|robots|error|dropped:.+)$"),
                      "outcome is page / image / redirect / robots / error / dropped:<reason>"),
            unique_key("crawl_log", ("run_id", "url", "fetched_at"), "url"),
        ],
    )


# ---------------------------------------------------------------------------- silver
def images(env: Env) -> Suite:
    from sluice.imaging import read_geometry

    geometry = read_geometry(env.lake, "images") if "images" in env.columns else None  # recorded by clean
    expected = geometry.height * geometry.width * 3 if geometry else -1  # none recorded: every row fails
    p = env.params.quality
    orphan = "SELECT count(*) FROM image_groups WHERE dup_group NOT IN (SELECT image_id FROM images)"
    ungrouped = "SELECT count(*) FROM images WHERE image_id NOT IN (SELECT image_id FROM image_groups)"
    canon = ("SELECT dup_group FROM image_groups GROUP BY dup_group "
             "HAVING count(*) FILTER (WHERE is_canonical AND image_id = dup_group) <> 1 "
             "OR count(*) FILTER (WHERE is_canonical) <> 1")
    return Suite(
        "images", "silver", "images", required=True, key=col("image_id"),
        frame={"image_id": col("image_id"), "pixel_hash": col("pixel_hash"), "width": col("width"),
               "height": col("height"), "mode": col("mode"), "pixel_bytes": nbytes("pixels"),
               "phash": col("phash"), "mean": col("mean"), "std": col("std"), "thumb_bytes": nbytes("thumb")},
        checks=[
            schema_check("images"),
            Check.row("image_id_sha256", "critical", "image_id", regex(HEX64), "image_id is sha256 hex"),
            Check.row("pixel_hash_sha256", "critical", "pixel_hash", regex(HEX64), "pixel_hash is sha256 hex"),
            Check.row("pixel_bytes", "critical", "pixel_bytes", between(expected, expected),
                      f"pixels are {geometry.height}x{geometry.width}x3 uint8 = {expected} bytes (geometry recorded on images)"
                      if geometry else "pixels match the geometry recorded on images (none recorded: rerun clean)"),
            Check.row("thumb_bytes", "critical", "thumb_bytes", between(1024, 1024),
                      "dedup's stored thumbnail is 32x32 grey = 1024 bytes (null in rows cleaned before it existed)"),
            Check.row("width_range", "critical", "width", between(1, p.max_image_side), f"decoded width is 1..{p.max_image_side}"),
            Check.row("height_range", "critical", "height", between(1, p.max_image_side), f"decoded height is 1..{p.max_image_side}"),
            Check.row("mode_not_null", "critical", "mode", not_null(), "decoded mode is recorded"),
            Check.row("phash_not_null", "critical", "phash", not_null(), "every image has a perceptual hash"),
            Check.row("mean_range", "warning", "mean", between(0, 255), "pixel mean is within 0..255"),
            Check.row("std_range", "warning", "std", between(0, 255), "pixel std is within 0..255"),
            Check.aggregate("dup_group_assigned", "warning", "dedup assigned every image a group (image_groups)",
                            between(0, 0), lambda env: env.scalar(ungrouped), needs=("image_groups.dup_group",)),
            unique_key("images", ("image_id",), "image_id"),
            Check.aggregate("dup_group_exists", "critical", "every image_groups.dup_group is the image_id of an image",
                            between(0, 0), lambda env: env.scalar(orphan), needs=("image_groups.dup_group",)),
            Check.aggregate(
                "one_canonical_per_group", "critical", "each duplicate group has exactly one canonical member, its id",
                between(0, 0), lambda env: env.scalar(f"SELECT count(*) FROM ({canon})"),
                needs=("image_groups.dup_group", "image_groups.is_canonical"),
                keys=lambda env: env.values(f"SELECT image_id FROM image_groups WHERE dup_group IN ({canon}) ORDER BY 1")),
        ],
    )


def labels(env: Env) -> Suite:
    q = env.params.quality
    no_label = "SELECT count(*) FROM images WHERE image_id NOT IN (SELECT image_id FROM labels)"
    return Suite(
        "labels", "silver", "labels", required=True, key=col("item"),
        frame={"item": col("item"), "image_id": col("image_id"), "status": col("status"), "label_source": col("label_source"),
               "votes": col("votes"), "confidence": col("confidence"), "agreement": col("agreement"),
               "resolved_label": FrameColumn("CASE WHEN status = 'resolved' THEN coalesce(label, '<null>') END",
                                             ("status", "label")),
               "resolved_confidence": FrameColumn("CASE WHEN status = 'resolved' THEN confidence END",
                                                  ("status", "confidence"))},
        checks=[
            schema_check("labels"),
            Check.row("image_id_sha256", "critical", "image_id", regex(HEX64), "image_id is sha256 hex"),
            Check.row("status_known", "critical", "status", in_set(["resolved", "unresolved", "conflict"]),
                      "status is resolved / unresolved / conflict"),
            Check.row("label_source_not_null", "critical", "label_source", not_null(), "every label says where it came from"),
            Check.row("resolved_label_in_classes", "critical", "resolved_label",
                      lambda c: in_set(classes_or_empty(env))(c), "resolved labels are in the class list",
                      needs_classes=True),
            Check.row("confidence_range", "critical", "confidence", between(0, 1), "confidence is within 0..1"),
            Check.row("agreement_range", "critical", "agreement", between(0, 1), "agreement is within 0..1"),
            Check.row("votes_non_negative", "critical", "votes", between(0, None), "vote counts are >= 0"),
            Check.row("resolved_confidence_min", "warning", "resolved_confidence", between(q.min_label_confidence, 1),
                      f"resolved labels have confidence >= {q.min_label_confidence} (quality.min_label_confidence)"),
            unique_key("labels", ("item",), "item"),  # image_id is null for voted items whose image has not landed
            Check.aggregate("every_image_labelled", "warning", "every image of the images table has a labels row",
                            between(0, 0), lambda env: env.scalar(no_label), needs=("images.image_id", "labels.image_id")),
        ],
    )


def annotators(env: Env) -> Suite:
    q = env.params.quality
    flagged = "SELECT avg(CASE WHEN is_spammer OR is_adversarial THEN 1.0 ELSE 0.0 END) FROM annotators"
    return Suite(
        "annotators", "silver", "annotators", key=col("worker_id"),
        frame={"worker_id": col("worker_id"), "votes": col("votes"), "accuracy": col("accuracy"),
               "unflagged_accuracy": FrameColumn("CASE WHEN NOT (is_spammer OR is_adversarial) THEN accuracy END",
                                                 ("is_spammer", "is_adversarial", "accuracy"))},
        checks=[
            schema_check("annotators"),
            Check.row("votes_non_negative", "critical", "votes", between(0, None), "vote counts are >= 0"),
            Check.row("accuracy_range", "critical", "accuracy", between(0, 1), "estimated accuracy is within 0..1"),
            Check.row("unflagged_accuracy_min", "warning", "unflagged_accuracy", between(q.min_annotator_accuracy, 1),
                      f"workers not flagged as spammer/adversarial have accuracy >= {q.min_annotator_accuracy}"),
            unique_key("annotators", ("worker_id",), "worker_id"),
            Check.aggregate("flagged_share", "warning",
                            f"at most {q.max_flagged_annotator_share:.0%} of workers are flagged spammer/adversarial",
                            between(0, q.max_flagged_annotator_share),
                            lambda env: float(env.scalar(flagged) or 0.0),
                            needs=("annotators.is_spammer", "annotators.is_adversarial")),
        ],
    )


def quarantine(env: Env) -> Suite:
    key = "source_table || '|' || row_key || '|' || stage || '|' || \"check\""
    return Suite(
        "quarantine", "silver", "quarantine", quarantines=False,
        frame={"stage": col("stage"), "reason": col("reason"), "source_table": col("source_table")},
        checks=[
            schema_check("quarantine"),
            Check.row("reason_not_null", "critical", "reason", not_null(), "every quarantined row says why"),
            unique_key("quarantine", ("source_table", "row_key", "stage", "check"), key),
        ],
    )


# ---------------------------------------------------------------------------- gold
def dataset(env: Env) -> Suite:
    q = env.params.quality
    n = len(env.classes or [])
    floor = q.class_share_floor(n) if n else (q.min_class_share if q.min_class_share is not None else 0.01)
    cross = "SELECT dup_group FROM dataset GROUP BY dup_group HAVING count(DISTINCT split) > 1"
    pixel = ("SELECT i.pixel_hash FROM dataset d JOIN images i USING (image_id) "
             "GROUP BY i.pixel_hash HAVING count(DISTINCT d.split) > 1")
    near = ("SELECT i.dup_group FROM dataset d JOIN image_groups i USING (image_id) "
            "GROUP BY i.dup_group HAVING count(DISTINCT d.split) > 1")
    # test rows whose near-duplicate group (image_groups) has a member in train or val
    leaked = ("SELECT count(DISTINCT d.image_id) FROM dataset d JOIN image_groups g USING (image_id) "
              "WHERE d.split = 'test' AND g.dup_group IN (SELECT g2.dup_group FROM dataset d2 "
              "JOIN image_groups g2 USING (image_id) WHERE d2.split <> 'test')")
    # subjects (a patient, a lesion: raw_images.subject) whose images, through their duplicate groups, are in two splits
    subject_splits = ("SELECT r.source, r.subject FROM dataset d JOIN image_groups g USING (image_id) "
                      "JOIN image_groups m ON m.dup_group = g.dup_group JOIN raw_images r ON r.image_id = m.image_id "
                      "WHERE r.subject IS NOT NULL GROUP BY 1, 2 HAVING count(DISTINCT d.split) > 1")
    mapping = ("SELECT count(*) FROM (SELECT label FROM dataset GROUP BY label HAVING count(DISTINCT class_index) > 1 "
               "UNION ALL SELECT CAST(class_index AS VARCHAR) FROM dataset GROUP BY class_index "
               "HAVING count(DISTINCT label) > 1)")
    missing = "SELECT image_id FROM dataset WHERE image_id NOT IN (SELECT image_id FROM images)"
    disagree = ("SELECT d.image_id FROM dataset d JOIN labels l USING (image_id) "
                "WHERE l.status = 'resolved' AND l.label IS DISTINCT FROM d.label")
    test_in_train = (f"SELECT DISTINCT d.image_id FROM dataset d JOIN ({SIDES_SQL}) r USING (image_id) "
                     "WHERE d.split = 'train' AND r.side = 'test'")  # its test split, or a val it holds out

    def shares(env: Env) -> dict[str, float]:
        counts = dict(env.rows("SELECT label, count(*) FROM dataset WHERE split = 'train' GROUP BY label"))
        total = sum(counts.values())
        classes = env.classes or sorted(counts)
        return {c: (counts.get(c, 0) / total if total else 0.0) for c in classes}

    def index_order(env: Env) -> str:
        wrong = [(lab, idx) for lab, idx in env.rows("SELECT DISTINCT label, class_index FROM dataset ORDER BY 2")
                 if lab not in (env.classes or []) or (env.classes or []).index(lab) != idx]
        return OK if not wrong else "label -> class_index not the class-list position: " + ", ".join(
            f"{lab}->{idx}" for lab, idx in wrong[:5])

    def empty_splits(env: Env) -> str:
        present = set(env.values("SELECT DISTINCT split FROM dataset"))
        missing_splits = [s for s in ("train", "test") if s not in present]
        return OK if not missing_splits else "empty split(s): " + ", ".join(missing_splits)

    return Suite(
        "dataset", "gold", "dataset", required=True, key=col("image_id"),
        frame={"image_id": col("image_id"), "split": col("split"), "label": col("label"),
               "class_index": col("class_index"), "weight": col("weight"), "dup_group": col("dup_group")},
        checks=[
            schema_check("dataset"),
            Check.row("image_id_sha256", "critical", "image_id", regex(HEX64), "image_id is sha256 hex"),
            Check.row("split_known", "critical", "split", in_set(SPLITS), "split is train / val / test"),
            Check.row("label_in_classes", "critical", "label", lambda c: in_set(classes_or_empty(env))(c),
                      "every label is in the class list", needs_classes=True),
            Check.row("class_index_range", "critical", "class_index", between(0, max(n - 1, 0)),
                      f"class_index is within 0..{n - 1} (the class list)", needs_classes=True),
            Check.row("weight_range", "critical", "weight", between(0, 1e6), "sample weights are finite and >= 0"),
            Check.row("dup_group_not_null", "critical", "dup_group", not_null(), "every row names its duplicate group"),
            unique_key("dataset", ("image_id",), "image_id"),
            Check.aggregate("no_dup_group_across_splits", "critical",
                            "no duplicate group spans two splits (dataset.dup_group)", between(0, 0),
                            lambda env: env.scalar(f"SELECT count(*) FROM ({cross})"),
                            needs=("dataset.dup_group", "dataset.split"),
                            keys=lambda env: env.values(f"SELECT image_id FROM dataset WHERE dup_group IN ({cross}) ORDER BY 1"),
                            detail=lambda env: "groups in several splits: " + ", ".join(
                                g[:12] for g in env.values(f"{cross} ORDER BY 1 LIMIT 5"))),
            Check.aggregate("no_pixel_copy_across_splits", "critical",
                            "no two images with identical pixels are in different splits (images.pixel_hash)",
                            between(0, 0), lambda env: env.scalar(f"SELECT count(*) FROM ({pixel})"),
                            needs=("images.pixel_hash", "dataset.split"),
                            keys=lambda env: env.values(
                                "SELECT d.image_id FROM dataset d JOIN images i USING (image_id) "
                                f"WHERE i.pixel_hash IN ({pixel}) ORDER BY 1")),
            Check.aggregate("no_near_duplicate_across_splits", "critical",
                            "no near-duplicate group (image_groups.dup_group) spans two splits",
                            between(0, 0), lambda env: env.scalar(f"SELECT count(*) FROM ({near})"),
                            needs=("image_groups.dup_group", "dataset.split"),
                            keys=lambda env: env.values(
                                "SELECT d.image_id FROM dataset d JOIN image_groups i USING (image_id) "
                                f"WHERE i.dup_group IN ({near}) ORDER BY 1")),
            Check.aggregate("no_subject_across_splits", "critical",
                            "no subject its source names (raw_images.subject: a patient, a lesion) has images in two "
                            "splits", between(0, 0), lambda env: env.scalar(f"SELECT count(*) FROM ({subject_splits})"),
                            needs=("raw_images.subject", "image_groups.dup_group", "dataset.split"),
                            detail=lambda env: "subjects in several splits: " + ", ".join(
                                f"{source}/{subject}" for source, subject in env.rows(f"{subject_splits} ORDER BY 1, 2 LIMIT 5"))),
            Check.aggregate("train_class_min_share", "critical",
                            f"every class has >= {floor:.2%} of the train split (quality.min_class_share"
                            + ("" if q.min_class_share is not None else f": a tenth of a balanced share of {n} classes")
                            + ")", between(floor, 1), lambda env: min(shares(env).values(), default=0.0),
                            needs=("dataset.label", "dataset.split"),
                            detail=lambda env: "below the minimum: " + ", ".join(
                                f"'{c}' {s:.2%}" for c, s in shares(env).items() if s < floor)),
            Check.aggregate("splits_not_empty", "critical", "train and test splits are not empty", is_ok(),
                            empty_splits, needs=("dataset.split",)),
            Check.aggregate("label_index_one_to_one", "critical", "each label has one class_index and vice versa",
                            between(0, 0), lambda env: env.scalar(mapping), needs=("dataset.label", "dataset.class_index")),
            Check.aggregate("class_index_is_class_list_position", "warning",
                            "class_index is the label's position in the class list", is_ok(), index_order,
                            needs=("dataset.label", "dataset.class_index"), needs_classes=True),
            Check.aggregate("images_exist", "critical", "every dataset row has its pixels in images", between(0, 0),
                            lambda env: env.scalar(f"SELECT count(*) FROM ({missing})"), needs=("images.image_id",),
                            keys=lambda env: env.values(f"{missing} ORDER BY 1")),
            Check.aggregate("label_agrees_with_labels", "warning",  # a group's label may win over a member's
                            "the dataset label is the resolved label of the labels table", between(0, 0),
                            lambda env: env.scalar(f"SELECT count(*) FROM ({disagree})"),
                            needs=("labels.label", "labels.status"),
                            keys=lambda env: env.values(f"{disagree} ORDER BY 1")),
            Check.aggregate("no_source_test_image_in_train", "warning",
                            "no image its source holds out (its test split, or its val where it gives no test) "
                            "is in the train split", between(0, 0),
                            lambda env: env.scalar(f"SELECT count(*) FROM ({test_in_train})"),
                            needs=("raw_images.split_hint", "raw_images.source"),
                            keys=lambda env: env.values(f"{test_in_train} ORDER BY 1")),
            Check.aggregate("test_leakage_share", "critical",
                            f"at most {q.max_test_leakage:.1%} of test images have a near-copy in train/val "
                            "(quality.max_test_leakage)", between(0, q.max_test_leakage),
                            lambda env: env.scalar(leaked) / max(env.scalar(
                                "SELECT count(*) FROM dataset WHERE split = 'test'") or 0, 1),
                            needs=("image_groups.dup_group", "dataset.split")),
        ],
    )


# ---------------------------------------------------------------------------- manifests and snapshot
def reconciliation(layer: str):
    def build(env: Env) -> Suite:
        return Suite(
            f"reconcile_{layer}", layer, None, key=col("entry"),
            rows=lambda env: reconciliation_frames(env, layer),
            checks=[
                Check.row("rows_in_accounted", "critical", "rows", pair_equal(),
                          "every stage manifest reconciles: rows in = out + quarantined + merged"),
                Check.row("manifest_readable", "critical", "readable", in_set([True]), "stage manifests are valid JSON"),
            ],
        )
    return build


def snapshot(env: Env) -> Suite:
    return Suite(
        "snapshot", "snapshot", None, required=True,
        rows=lambda env: snapshot_metrics(env),
        checks=[
            Check.row("content_hash_matches", "critical", "content_hash", pair_equal(),
                      "the shards' sha256 equals manifest.content_hash (sluice.snapshot.verify)"),
            Check.row("rows_match_shards", "critical", "rows", pair_equal(),
                      "manifest row counts equal the rows in the shard files"),
            Check.row("classes_match", "critical", "classes", pair_equal(), "manifest classes equal the class list"),
            Check.row("rows_match_gold", "warning", "gold_rows", pair_equal(),
                      "per-split row counts equal the gold dataset table's"),
            Check.row("train_min_class_share", "warning", "train_min_class_share",
                      between(env.params.quality.class_share_floor(len(env.classes or [])), 1),
                      "every class keeps its minimum share of train (quality.min_class_share)"),
            Check.row("mean_std_range", "critical", "mean_std_ok", in_set([True]), "train mean in 0..1 and std in (0..1]"),
        ],
    )


SUITES = {
    "bronze": [raw_images, crowd_votes, crawl_log, reconciliation("bronze")],
    "silver": [images, labels, annotators, quarantine, reconciliation("silver")],
    "gold": [dataset, reconciliation("gold")],
    "snapshot": [snapshot, reconciliation("snapshot")],
}


def suites_for(layer: str, env: Env) -> list[Suite]:
    return [build(env) for build in SUITES[layer]]
