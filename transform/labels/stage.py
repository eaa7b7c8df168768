"""The ``labels`` stage: recompute ``labels``, ``annotators`` and this stage's quarantine rows from all of bronze.

Votes are re-resolved against ``raw_images`` on every run; items voted on before (or without) their
images are labelled by item name. The stage fails (exit 2) when there are votes but none usable, or
when more than ``labels.max_unknown_label_share`` of them name a label outside the class list.
"""

from __future__ import annotations

import json

import polars as pl

from sluice.errors import InputError
from sluice.items import ItemIndex
from sluice.lake import Lake
from sluice.stage import Quarantine, stage_logger
from transform.labels.aggregate import aggregate
from transform.labels.inputs import gold_answers, given_labels, load_gold, load_votes
from transform.labels.policy import combine
from transform.labels.report import accuracy_report, render_summary, write_metrics
from transform.labels.vocabulary import Vocabulary, check_unknown_labels, unknown_labels
from transform.labels.workers import uninformative

STAGE = "labels"
log = stage_logger(STAGE)
RAW_COLUMNS = ["image_id", "source", "source_uri", "source_label"]


def _universe(lake: Lake, raw: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    if lake.exists("images"):
        return pl.from_arrow(lake.read("images", columns=["image_id"])).unique().sort("image_id"), "images"
    if raw.height:
        log.info("silver table 'images' does not exist yet: labelling the distinct image_ids of raw_images instead")
    return raw.select("image_id").unique().sort("image_id"), "raw_images"


def _no_votes(exports) -> str:
    """Why there is nothing to take classes from when the real cause is zero votes, not a missing setting."""
    names = ", ".join(f"{e.name} ({e.path})" for e in exports[:3]) + (", ..." if len(exports) > 3 else "")
    return (f"no votes to aggregate: crowd_votes is empty, the vote exports ({names}) landed none (a header-only "
            "file?), and with labels.classes null there are no classes either; export the votes again and rerun "
            "ingest_crowd")


def run(params) -> dict:
    """Recompute ``labels``, ``annotators`` and this stage's quarantine rows; return the summary."""
    from sluice.runs import new_run_id, reconcile

    cfg = params.labels
    lake = Lake.from_params(params)
    run_id = new_run_id(STAGE)
    raw = pl.from_arrow(lake.read("raw_images", columns=RAW_COLUMNS)) if lake.exists("raw_images") else \
        pl.DataFrame(schema={c: pl.String for c in RAW_COLUMNS})
    known_labels = raw["source_label"]
    from_votes = cfg.classes is None and known_labels.drop_nulls().len() == 0 and lake.exists("crowd_votes")
    if from_votes:  # votes before (or without) labelled images: the crowd's own answers are all there is
        known_labels = pl.from_arrow(lake.read("crowd_votes", columns=["label"]))["label"]
    if cfg.classes is None and not known_labels.drop_nulls().len() and cfg.exports and not lake.count("crowd_votes"):
        raise InputError(_no_votes(cfg.exports))
    vocab = Vocabulary.build(cfg.classes, cfg.synonyms, known_labels)
    if from_votes:
        log.warning(f"labels.classes is null and no source carries labels: classes taken from the votes "
                    f"({', '.join(vocab.classes[:20])}{', ...' if len(vocab.classes) > 20 else ''}); set labels.classes "
                    "so that typos are caught")
    index = ItemIndex.from_lake(lake)
    votes = load_votes(lake, vocab, index)
    counted = votes.counts["votes_in"] - votes.counts["rejected_assignments"]
    check_unknown_labels(votes.not_in_classes["label"], counted, vocab, cfg.max_unknown_label_share)
    if counted and not votes.usable.height:
        raise InputError(f"0 of {votes.counts['votes_in']} votes are usable ({votes.counts}); check labels.classes "
                         "and labels.synonyms against the exported labels")
    reconcile(f"{STAGE}:votes", votes.counts["votes_in"],
              **{k: v for k, v in votes.counts.items() if k not in ("votes_in", "pending_no_image")})
    universe, universe_from = _universe(lake, raw)
    # the gold file's items are checked against every voted item and landed image: a set built only for one
    known = set(votes.usable["item"].to_list()) | set(raw["image_id"].to_list()) if cfg.gold_file else set()
    marked, disputed = gold_answers(votes.gold, vocab)
    if disputed:
        log.warning(f"{len(disputed)} items have known answers that disagree in the exports (e.g. {disputed[0]}): "
                    "not used as gold")
    gold = marked | load_gold(cfg.gold_file, vocab, index, known)  # labels.gold_file's answer first
    crowd = aggregate(votes.usable, vocab, cfg, gold)
    unknown = sorted(set(cfg.source_policy) - set(raw["source"].unique().to_list())) if raw.height else []
    if unknown:
        raise InputError(f"labels.source_policy names source(s) {', '.join(map(repr, unknown))} with no landed images "
                         f"(landed sources: {', '.join(sorted(raw['source'].unique().to_list()))})")
    given, invalid_given = given_labels(raw, vocab, cfg.source_policy)
    if invalid_given.height:  # a class folder added after sluice init wrote labels.classes, a typo in a labels file
        outside = invalid_given.unique("source_uri")
        log.warning(f"{outside.height} of {raw['source_label'].drop_nulls().len()} images carry a source label outside "
                    f"labels.classes: quarantined (label_not_in_classes), not trained on; "
                    f"{unknown_labels(outside['source_label'], vocab, 'the source in ingest.sources')}; to train on a "
                    "new class, add it to labels.classes in params.yaml")
    pending = votes.usable.filter(pl.col("image_id").is_null())["item"].unique()
    labels = combine(universe, crowd.items.select("item", pl.col("item").is_in(pending.implode()).alias("pending"), "votes",
                                                  "label", "confidence", "agreement", "reason"),
                     given, cfg.policy, cfg.method)

    quarantine = Quarantine(STAGE, "crowd_votes", run_id)
    for r in votes.not_in_classes.iter_rows(named=True):
        quarantine.add(r["vote_id"], "label_not_in_classes", details=json.dumps(
            {"label": r["label"], "worker_id": r["worker_id"], "item_ref": r["item_ref"]}, sort_keys=True))
    for r in invalid_given.unique("source_uri").iter_rows(named=True):
        quarantine.add(r["source_uri"], "label_not_in_classes", source_table="raw_images", details=json.dumps(
            {"label": r["source_label"], "source": r["source"], "image_id": r["image_id"]}, sort_keys=True))
    conflicts = labels.filter(pl.col("status") == "conflict")
    for r in conflicts.iter_rows(named=True):
        quarantine.add(r["item"], "label_conflict", r["reason"], source_table="labels", details=json.dumps(
            {"given": r["given"], "crowd": r["crowd_label"], "confidence": r["confidence"], "policy": r["policy"]},
            sort_keys=True))
    n_quarantined = len(quarantine)

    table = labels.drop("given", "policy").with_columns(pl.lit(run_id).alias("run_id"))
    lake.overwrite("labels", table.to_arrow(), run_id=run_id)
    lake.overwrite("annotators", crowd.workers.drop("information").with_columns(pl.lit(run_id).alias("run_id")).to_arrow(),
                   run_id=run_id)
    quarantine.write(lake, replace=True)

    status = dict(labels.group_by("status").len().iter_rows())
    reasons = {r: n for r, n in labels.filter(pl.col("reason").is_not_null()).group_by("reason").len().sort("reason").iter_rows()}
    reconcile(f"{STAGE}:items", labels.height, resolved=status.get("resolved", 0),
              unresolved=status.get("unresolved", 0), conflict=status.get("conflict", 0))
    workers = crowd.workers
    summary = {
        "run_id": run_id, "classes": list(vocab.classes), "method": cfg.method, "policy": cfg.policy,
        "images_from": universe_from, "images": universe.height, "items": labels.height,
        "pending_items": int(labels["image_id"].null_count()), "status": status, "reasons": reasons,
        "resolved_by": dict(labels.filter(pl.col("status") == "resolved").group_by("label_source").len().iter_rows()),
        "votes": votes.counts, "gold_items": len(gold),
        "votes_outside_images": int(votes.usable.filter(pl.col("image_id").is_not_null())
                                    .join(universe, on="image_id", how="anti").height),
        "invalid_source_labels": invalid_given.height, "em_iterations": crowd.iterations,
        "workers": workers.height, "spammers": sorted(workers.filter("is_spammer")["worker_id"].to_list()),
        "adversarial": sorted(workers.filter("is_adversarial")["worker_id"].to_list()),
        "quarantined": n_quarantined,
        "versions": {t: lake.version(t) for t in ("labels", "annotators", "quarantine")},
    }
    warning = uninformative(workers, cfg.flag_min_votes)
    if warning:
        summary["worker_model_warning"] = warning
        log.warning(f"worker model: {warning}")
    report = accuracy_report(crowd, labels, cfg.ground_truth, vocab, votes.usable, index, cfg.method, given)
    if report is not None:
        summary["accuracy"] = report
    for line in render_summary(summary, workers):
        log.info(line)
    return summary


def main() -> None:
    from sluice.config import load_params
    from sluice.runs import write_manifest
    from sluice.stage import stage_main

    def go():
        summary = run(load_params())
        log.info(f"manifest: {write_manifest(STAGE, summary)}; metrics: {write_metrics(summary)}")

    stage_main(go)
