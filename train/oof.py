"""Stage ``oof`` (``python -m train.oof``): out-of-fold predictions, label issues, per-group metrics.

Every train+val image of the snapshot gets class probabilities from a model that never saw it: the
images are split into ``insight.folds`` stratified folds (``train.evaluate.stratified_folds``; a subject's images, a
patient's or a lesion's, in one fold) and one
model per fold is trained on the other folds with the training recipe (``train.evaluate.fold_models``,
``train.*`` params, ``insight.epochs`` epochs). With ``insight.test_issues`` every test image gets the
probabilities of the train stage's model when it was trained on this snapshot (it never saw a test
image and is the strongest model at hand), else the mean of the fold models'. From those probabilities:

- gold ``predictions``: image_id, dataset content hash, fold (-1 for test), given label, probs
  (list<float32>), split;
- gold ``label_issues``: confident learning (train/label_issues.py), ranked, with evidence from the
  ``labels`` table (label source, votes, crowd agreement) where the lake has it; train+val and test
  are judged apart (their probabilities come from different models), each ranked from 1. Test issues
  are for a person to review: the dataset stage never acts on them (a model must not grade its own
  exam by relabelling it);
- ``insight.metrics``: the estimated noise rate, issue counts per (given, suggested) pair and a
  warning when the estimated noise rate passes ``insight.noise_warn_rate``;
- ``insight.groups_metrics``: accuracy, precision and recall per class, per source
  (``raw_images.source``) and per label source (``labels.label_source``: given or crowd) with Wilson
  intervals and the best-worst gap (train/group_metrics.py), a warning per gap over
  ``insight.max_group_gap``.

Both tables are replaced per dataset hash (a rerun on the same snapshot replaces its rows; rows of
other snapshots stay, so two dataset versions can be compared).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from sluice import snapshot_store
from sluice.config import Params
from sluice.lake import Lake
from sluice.runs import new_run_id
from sluice.stage import run_stage, stage_logger, stage_record
from train.data import LoaderSpec, load_data
from train.evaluate import fold_models, train_val
from train.reports import write_json
from train.group_metrics import group_report
from train.label_issues import rank_issues
from train.model import CONFIG, load_model

STAGE = "oof"
# below this out-of-fold accuracy the noise warning says the list is mostly the fold models' own mistakes (a user's
# 1,355 photos of 5 classes, 5% flipped: 0.47 out of fold, 40% of the images flagged, precision 0.09)
WEAK_OOF_ACCURACY = 0.8


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, loader) -> np.ndarray:
    """Softmax probabilities (n, k) of ``model`` over an evaluation loader, in loader order."""
    model.eval()
    out = [torch.softmax(model(batch[0]).float(), 1).cpu() for batch in loader]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def trained_model(params: Params, manifest: dict) -> torch.nn.Module | None:
    """The train stage's model (``train.out_dir``) when it was trained on this very snapshot, else None.

    It never saw a test image (a final fit joins train and val only) and is the strongest model at hand:
    fold models train on two thirds of the data for ``insight.epochs``."""
    folder = Path(params.train.out_dir)
    if not (folder / CONFIG).is_file():
        return None
    config = json.loads((folder / CONFIG).read_text())
    if config.get("dataset_hash") != manifest.get("content_hash") or config.get("classes") != manifest["classes"]:
        return None
    return load_model(folder)[0]


def out_of_fold(folder: Path, params: Params, workdir: Path) -> dict:
    """Probabilities of every train+val image from the fold model that held it out, and (with
    ``insight.test_issues``) of every test image: the trained model's when it was trained on this
    snapshot, else the mean over the fold models."""
    cfg = params.train.model_copy(update={"epochs": params.insight.epochs})
    manifest, _, labels, ids = train_val(folder)
    k = len(manifest["classes"])
    probs = np.zeros((len(labels), k), np.float32)
    fold = np.full(len(labels), -1, np.int32)
    test = trained = None
    if params.insight.test_issues and manifest["splits"].get("test", {}).get("rows"):
        test = load_data(folder, LoaderSpec(eval_batch_size=cfg.eval_batch_size), splits=("test",))
        part = snapshot_store.load_split(folder, "test")
        test_labels, test_ids = np.asarray(part.labels, np.int64), list(part.ids)
        trained = trained_model(params, manifest)
        test_probs = (predict_probs(trained, test.test) if trained is not None
                      else np.zeros((len(test_ids), k), np.float32))
    for i, held, model, data in fold_models(folder, cfg, params.insight.folds, workdir, log=stage_logger(STAGE),
                                            lake=Lake.from_params(params)):
        probs[held] = predict_probs(model, data.val)
        fold[held] = i
        if test is not None and trained is None:
            test_probs += predict_probs(model, test.test) / params.insight.folds
    splits = ["train"] * manifest["splits"].get("train", {}).get("rows", 0)
    splits += ["val"] * (len(ids) - len(splits))
    out = {"manifest": manifest, "ids": ids, "labels": labels, "probs": probs, "fold": fold, "splits": splits}
    if test is not None:
        out["test"] = {"ids": test_ids, "labels": test_labels, "probs": test_probs,
                       "predicted_by": str(params.train.out_dir) if trained is not None else "fold models' mean"}
    return out


def _rows(probs: np.ndarray) -> pa.ListArray:
    """An (n, k) float32 matrix as n list<float32> values, without a Python loop."""
    n, k = probs.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(probs.reshape(-1).astype(np.float32)))


def _issues(found, ids: list[str], labels: np.ndarray, splits: list[str]) -> pa.Table:
    """One split group's ranked issues (row order = rank, from 1) as a table of class indices."""
    o = found.order
    return pa.table({"image_id": pa.array([ids[i] for i in o], pa.string()),
                     "given": pa.array(labels[o], pa.int64()), "suggested": pa.array(found.suggested[o], pa.int64()),
                     "self_confidence": found.self_confidence[o], "margin": found.margin[o], "score": found.score[o],
                     "rank": np.arange(1, len(o) + 1, dtype=np.int32),
                     "split": pa.array([splits[i] for i in o], pa.string())})


def _test_summary(test: dict, found, names: np.ndarray, method: str) -> dict:
    o, labels = found.order, test["labels"]
    pairs = Counter(f"{names[labels[i]]}->{names[found.suggested[i]]}" for i in o)
    return {"images": len(labels), "predicted_by": test["predicted_by"], "method": method,
            "accuracy": round(float((test["probs"].argmax(1) == labels).mean()), 6),
            "noise_rate_estimate": round(found.noise_rate, 6), "issues": int(len(o)),
            "issue_share": round(len(o) / max(len(labels), 1), 6), "issues_by_pair": dict(pairs.most_common())}


def _lake_columns(lake: Lake, table: str, columns: list[str], ids: list[str]) -> pa.Table | None:
    if not lake.exists(table):
        return None
    return lake.read(table, columns=columns, filter=pc.field("image_id").isin(pa.array(ids, pa.string())))


def groups(lake: Lake, table: str, column: str, ids: list[str]) -> list[str] | None:
    """Each image's value(s) of ``table.column`` ('crawl+public' when the same bytes came from both
    sources), 'unknown' for an image the table lacks; None when the table has none of the images."""
    rows = _lake_columns(lake, table, ["image_id", column], ids)
    if rows is None or rows.num_rows == 0:
        return None
    found: dict[str, set[str]] = {}
    for image_id, value in zip(rows["image_id"].to_pylist(), rows[column].to_pylist()):
        found.setdefault(image_id, set()).add(str(value))
    return ["+".join(sorted(found[i])) if i in found else "unknown" for i in ids]


def evidence(lake: Lake, ids: list[str]) -> dict[str, dict]:
    """Per image what the ``labels`` table knows: where the label came from, votes, agreement."""
    cols = ["image_id", "label_source", "confidence", "votes", "agreement", "crowd_label"]
    if lake.exists("labels"):  # a labels table from before crowd_label: the rest
        cols = [c for c in cols if c in lake.dataset("labels").schema.names]
    rows = _lake_columns(lake, "labels", cols, ids)
    if rows is None:
        return {}
    return {r.pop("image_id"): {k: v for k, v in r.items() if v is not None} for r in rows.to_pylist()}


def run(params: Params, folder: Path | str | None = None) -> dict:
    log = stage_logger(STAGE)
    ins = params.insight
    folder = snapshot_store.location(folder or params.train.snapshot)
    torch.set_num_threads(params.train.threads_per_process * params.train.processes)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sluice-oof-") as tmp:
        oof = out_of_fold(folder, params, Path(tmp))
    seconds = time.perf_counter() - start
    manifest, ids, labels, probs = oof["manifest"], oof["ids"], oof["labels"], oof["probs"]
    classes, dhash = list(manifest["classes"]), manifest["content_hash"]
    names = np.asarray(classes, dtype=object)
    lake, run_id = Lake.from_params(params), new_run_id(STAGE)
    where = f"dataset_hash = '{dhash}'"
    test = oof.get("test")
    t_ids = test["ids"] if test else []
    lake.overwrite("predictions", pa.table({
        "image_id": ids + t_ids, "dataset_hash": [dhash] * (len(ids) + len(t_ids)),
        "fold": np.concatenate([oof["fold"], np.full(len(t_ids), -1, np.int32)]),
        "label": names[np.concatenate([labels, test["labels"]]) if test else labels].tolist(),
        "probs": _rows(np.concatenate([probs, test["probs"]]) if test else probs),
        "run_id": [run_id] * (len(ids) + len(t_ids)), "split": oof["splits"] + ["test"] * len(t_ids)}),
        predicate=where, run_id=run_id)

    found = rank_issues(probs, labels, ins.rank_by, ins.method)
    parts = [_issues(found, ids, labels, oof["splits"])]
    if test:
        test_found = rank_issues(test["probs"], test["labels"], ins.rank_by, ins.test_method)
        parts.append(_issues(test_found, t_ids, test["labels"], ["test"] * len(t_ids)))
    issues = pa.concat_tables(parts)
    known = evidence(lake, issues["image_id"].to_pylist())
    lake.overwrite("label_issues", pa.table({
        "image_id": issues["image_id"], "dataset_hash": [dhash] * issues.num_rows,
        "given_label": names[issues["given"].to_numpy()].tolist(),
        "suggested_label": names[issues["suggested"].to_numpy()].tolist(),
        **{c: issues[c] for c in ("self_confidence", "margin", "score", "rank")},
        "evidence": [json.dumps(known.get(i, {}), sort_keys=True) for i in issues["image_id"].to_pylist()],
        "run_id": [run_id] * issues.num_rows, "split": issues["split"]}), predicate=where, run_id=run_id)

    o = found.order
    warnings = []
    oof_accuracy = float((probs.argmax(1) == labels).mean()) if len(labels) else 0.0
    if found.noise_rate > ins.noise_warn_rate:
        weak = (f"; the fold models reach only {oof_accuracy:.2f} out of fold, so most of these are their own "
                "mistakes, not wrong labels: review the most doubtful first, or raise insight.epochs"
                if oof_accuracy < WEAK_OOF_ACCURACY else "")
        warnings.append(f"estimated label noise {found.noise_rate:.3f} is above insight.noise_warn_rate "
                        f"{ins.noise_warn_rate} ({len(o)} label issues in {len(ids)} images){weak}")
    pairs = Counter(f"{names[labels[i]]}->{names[found.suggested[i]]}" for i in o)
    summary = {"dataset_hash": dhash, "images": len(ids), "folds": ins.folds, "epochs": ins.epochs,
               "oof_accuracy": round(oof_accuracy, 6),
               "noise_rate_estimate": round(found.noise_rate, 6), "issues": int(len(o)),
               "issue_share": round(len(o) / max(len(ids), 1), 6), "rank_by": ins.rank_by, "method": ins.method,
               "issues_by_pair": dict(pairs.most_common()), "seconds": round(seconds, 3), "warnings": warnings}
    if test:
        summary["test"] = _test_summary(test, test_found, names, ins.test_method)
        if test_found.noise_rate > ins.noise_warn_rate:
            warnings.append(f"estimated test-label noise {test_found.noise_rate:.3f} is above insight.noise_warn_rate "
                            f"{ins.noise_warn_rate} ({summary['test']['issues']} test label issues to review)")
    write_json(ins.metrics, summary)
    dims = {"source": groups(lake, "raw_images", "source", ids),  # crawl vs public connectors
            "label_source": groups(lake, "labels", "label_source", ids)}  # given vs crowd-aggregated labels
    report = group_report(labels, probs.argmax(1), classes, {d: g for d, g in dims.items() if g}, ins.max_group_gap)
    write_json(ins.groups_metrics, report)
    for w in warnings + report["warnings"]:
        log.warning("quality warning: %s", w)
    log.info("%d images, %d folds x %d epochs in %.1f s: out-of-fold accuracy %.4f, %d label issues, "
             "estimated noise %.3f", len(ids), ins.folds, ins.epochs, seconds, summary["oof_accuracy"], len(o),
             found.noise_rate)
    if test:
        t = summary["test"]
        log.info("test split: %d images, accuracy %.4f (%s), %d label issues to review (estimated noise %.3f): "
                 "sluice sql \"select * from label_issues where split = 'test'\"",
                 t["images"], t["accuracy"], t["predicted_by"], t["issues"], t["noise_rate_estimate"])
    record = stage_record(STAGE, lake, ["predictions", "label_issues"], len(ids), run_id=run_id,
                          issues=len(o), trusted=len(ids) - len(o))
    return {**summary, **record, "groups_warnings": report["warnings"]}


def main() -> None:
    run_stage(STAGE, run)


if __name__ == "__main__":
    main()
