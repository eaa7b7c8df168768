"""Accuracy against a known truth, the stage's printed summary and the metrics file DVC tracks.

The printed report is short whatever the crowd's size: totals, the method's accuracy next to majority
vote's, and the few worst and best workers; the full per-worker list goes only to the metrics file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from sluice.errors import InputError
from sluice.item_labels import item_key, read_item_labels
from sluice.params_labels import SOURCES, label_file_path
from sluice.items import ItemIndex
from sluice.paths import LABELS_METRICS as METRICS_PATH  # noqa: E402
from transform.labels.aggregate import Crowd
from transform.labels.inputs import item_keys
from transform.labels.vocabulary import Vocabulary

SHOWN_WORKERS = 3  # worst and best shown in the printed report


def _truth(source, vocab: Vocabulary, index: ItemIndex, given: pl.DataFrame) -> tuple[pl.DataFrame, str] | None:
    """(item, true) and what it is: the file or columns ``labels.ground_truth`` names, or (``sources``) the one label
    the image sources give an image (``given``: image_id, given; an image given several is left out)."""
    if source == SOURCES:
        one = given.filter(pl.col("given").list.len() == 1)
        return one.select(pl.col("image_id").alias("item"), pl.col("given").list.first().alias("true")), "the sources' labels"
    path = label_file_path(source)
    if not path:
        return None
    if not Path(path).is_file():  # said, not skipped: a report the user asked for does not vanish
        raise InputError(f"{path}: labels.ground_truth does not exist")
    truth = read_item_labels(source, "labels.ground_truth")
    truth = truth.with_columns(item_keys(truth["item"], index, item_key(source)).alias("key"),
                               vocab.normalize(truth["label"]).alias("true"))
    _check_truth(truth, path)
    truth = truth.filter(pl.col("true").is_not_null()).group_by(pl.col("key").alias("item")).agg(pl.col("true").first())
    return truth, path if isinstance(source, str) else f"{path}, column {source.label_column}"


def _check_truth(truth: pl.DataFrame, path: str) -> None:
    """A truth that cannot be one: a label outside the classes (a typo, a missing ``labels.synonyms`` entry) or an
    item given two labels is one line naming the file and the item, as for ``labels.gold_file``; rows without a
    label are passed over."""
    stray = truth.filter(pl.col("true").is_null() & (pl.col("label").str.strip_chars().fill_null("") != ""))
    if stray.height:
        row = stray.row(0, named=True)
        raise InputError(f"{path}: labels.ground_truth gives item '{row['item']}' the label '{row['label']}', not one "
                         f"of labels.classes ({stray.height} such rows; add the spelling to labels.synonyms)")
    twice = truth.filter(pl.col("true").is_not_null()).group_by("key").agg(pl.col("item").first(),
                                                                       pl.col("true").unique().sort())
    twice = twice.filter(pl.col("true").list.len() > 1)
    if twice.height:
        row = twice.row(0, named=True)
        raise InputError(f"{path}: labels.ground_truth gives item '{row['item']}' two labels "
                         f"({' and '.join(row['true'])}; {twice.height} such items)")


def accuracy_report(crowd: Crowd, labels: pl.DataFrame, source, vocab: Vocabulary, votes: pl.DataFrame,
                    index: ItemIndex, method: str, given: pl.DataFrame) -> dict | None:
    """Majority vote vs the method vs the final labels against the truth (``item,label``, two columns of a vote
    export: ``LabelColumns``, or the sources' own labels), and per worker."""
    found = _truth(source, vocab, index, given)
    if found is None:
        return None
    truth, shown = found
    items = crowd.items.join(truth, on="item", maintain_order="left").filter(~pl.col("gold") & pl.col("true").is_not_null())
    report: dict = {"ground_truth": shown, "method": method, "items_scored": items.height}
    if items.height:
        true_idx = vocab.index(items["true"])
        report["majority_accuracy"] = round(float((items["mv_label"].to_numpy() == true_idx).mean()), 4)
        report[f"{method}_accuracy"] = round(float((items["method_label"].to_numpy() == true_idx).mean()), 4)
    final = labels.filter(pl.col("status") == "resolved").join(truth, on="item")
    report["final_labels_scored"] = final.height
    report["final_label_accuracy"] = round(float((final["label"] == final["true"]).mean()), 4) if final.height else None
    worker_truth = (votes.join(truth, on="item").group_by("worker_id")
                    .agg((pl.col("label") == pl.col("true")).mean().alias("true_accuracy")))
    rows = crowd.workers.join(worker_truth, on="worker_id", how="left").sort("worker_id")
    report["workers"] = {
        r["worker_id"]: {"votes": r["votes"], "estimated_accuracy": _round(r["accuracy"]),
                         "interval": [_round(r["accuracy_low"]), _round(r["accuracy_high"])],
                         "true_accuracy": _round(r["true_accuracy"]),
                         "is_spammer": r["is_spammer"], "is_adversarial": r["is_adversarial"]}
        for r in rows.iter_rows(named=True)}
    scored = rows.filter(pl.col("true_accuracy").is_not_null() & pl.col("accuracy").is_not_null())
    if scored.height > 2:
        report["estimate_truth_correlation"] = round(float(np.corrcoef(scored["accuracy"], scored["true_accuracy"])[0, 1]), 4)
    return report


def _round(x):
    return None if x is None else round(float(x), 4)


def render_summary(s: dict, workers: pl.DataFrame) -> list[str]:
    """The lines the stage prints: totals, accuracy, a few worst and best workers."""
    lines = [f"{s['items']} items ({s['images']} images from {s['images_from']}, {s['pending_items']} voted items "
             f"without an image): " + ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items()))
             + f"; resolved by {', '.join(f'{k} {v}' for k, v in sorted(s['resolved_by'].items())) or 'none'}",
             f"reasons: {', '.join(f'{k} {v}' for k, v in s['reasons'].items()) or 'none'}"
             + (" (where the crowd disputes a source label, its answer is in crowd_label: sluice sql \"select item, "
                "label, crowd_label, crowd_confidence from labels where reason = 'crowd_overridden'\")"
                if s["reasons"].get("crowd_overridden") else ""),
             (f"votes used {s['votes']['used']} of {s['votes']['votes_in']} ({s['method']}, {s['em_iterations']} EM "
             f"iterations, {s['gold_items']} gold items); workers {s['workers']}, spammers {len(s['spammers'])}, "
             f"adversarial {len(s['adversarial'])}")]
    acc = s.get("accuracy")
    if acc:
        method_acc = acc.get(f"{s['method']}_accuracy")
        against = "the sources' labels" if acc["ground_truth"] == "the sources' labels" else "ground truth"
        lines.append(f"accuracy vs {against} on {acc['items_scored']} voted items: majority "
                     f"{acc.get('majority_accuracy')}" + ("" if s["method"] == "majority" else f", {s['method']} {method_acc}")
                     + f"; final labels {acc['final_label_accuracy']} on {acc['final_labels_scored']} resolved items"
                     + (f"; estimated vs true worker accuracy r = {acc['estimate_truth_correlation']}"
                        if "estimate_truth_correlation" in acc else ""))
    ranked = workers.filter(pl.col("accuracy").is_not_null()).sort("accuracy")
    if ranked.height:
        truth = (acc or {}).get("workers", {})
        shown = ranked.head(SHOWN_WORKERS) if ranked.height <= 2 * SHOWN_WORKERS else \
            pl.concat([ranked.head(SHOWN_WORKERS), ranked.tail(SHOWN_WORKERS)])
        lines.append(f"{'worker':<24} {'votes':>6} {'est.acc':>8} {'95% interval':>14} {'true.acc':>8}  flags"
                     + ("" if ranked.height <= 2 * SHOWN_WORKERS else f"   (worst and best {SHOWN_WORKERS} of {ranked.height}; "
                        "all in the metrics file and `sluice labels workers`)"))
        for r in (shown if ranked.height > 2 * SHOWN_WORKERS else ranked).iter_rows(named=True):
            flags = ",".join(f for f, on in (("spammer", r["is_spammer"]), ("adversarial", r["is_adversarial"])) if on)
            true = (truth.get(r["worker_id"]) or {}).get("true_accuracy")
            interval = f"{r['accuracy_low']:.2f}-{r['accuracy_high']:.2f}"
            lines.append(f"{r['worker_id'][:24]:<24} {r['votes']:>6} {r['accuracy']:>8.3f} {interval:>14} "
                         f"{'n/a' if true is None else f'{true:.3f}':>8}  {flags}")
    return lines


def metrics(summary: dict) -> dict:
    """The figures `dvc metrics show` tracks (the full worker list included)."""
    acc = summary.get("accuracy") or {}
    return {
        "images": summary["images"], "items": summary["items"], "resolved": summary["status"].get("resolved", 0),
        "unresolved": summary["status"].get("unresolved", 0), "conflict": summary["status"].get("conflict", 0),
        "votes_used": summary["votes"]["used"], "majority_accuracy": acc.get("majority_accuracy"),
        **{k: v for k, v in acc.items() if k.endswith("_accuracy") and k not in ("majority_accuracy",)},
        "spammers_flagged": len(summary["spammers"]), "adversarial_flagged": len(summary["adversarial"]),
        "workers": {w: {"estimated_accuracy": r["estimated_accuracy"], "interval": r["interval"],
                        "true_accuracy": r["true_accuracy"]} for w, r in acc.get("workers", {}).items()},
    }


def write_metrics(summary: dict, path: Path = METRICS_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics(summary), indent=2, sort_keys=True) + "\n")
    return path
