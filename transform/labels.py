"""Labels: crowd votes aggregated by majority vote or Dawid-Skene, combined with the labels sources carry.

Writes three derived results, recomputed from all of bronze on every run (so votes that arrive later
are simply part of the next run, and Delta versions every result):

- ``labels``: one row per image of silver ``images`` (or of ``raw_images`` while ``images`` does not
  exist yet) with the label, where it came from, the posterior confidence, the number of votes and
  their agreement, and a status: ``resolved``, ``unresolved`` (with the reason: no label, too few
  votes, a tie, low confidence) or ``conflict`` (sources disagree and the policy cannot decide).
- ``annotators``: per worker the number of votes, the estimated accuracy, a confusion-matrix summary
  and flags for spammers (answers carry almost no information about the truth) and adversarial
  workers (informative answers that are mostly wrong: systematically confusing classes).
- ``quarantine`` rows of this stage: votes and source labels outside the class list, conflicts.

Dawid-Skene is implemented here on numpy (vectorised EM over per-worker confusion matrices, with
optional gold items): crowd-kit 1.4 runs with pandas 3 / numpy 2, and the tests check this
implementation against it, but its pandas joins are far slower on a million votes
(``benchmarks/crowd.py`` measures both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from sluice.errors import ConfigError, InputError
from sluice.lake import Lake

STAGE = "labels"
EPS = 1e-10
from sluice.paths import LABELS_METRICS as METRICS_PATH  # noqa: E402


# ---------------------------------------------------------------------------- label normalisation
@dataclass(frozen=True)
class Vocabulary:
    """The class list and how raw label text maps onto it: trim, casefold, synonyms, canonical spelling."""

    classes: tuple[str, ...]
    synonyms: dict[str, str]

    @classmethod
    def build(cls, classes: list[str] | None, synonyms: dict[str, str], source_labels: pl.Series) -> "Vocabulary":
        syn = {k.strip().casefold(): v.strip() for k, v in synonyms.items()}
        if classes is None:
            mapped = _map_synonyms(source_labels.drop_nulls().str.strip_chars().str.to_lowercase(), syn)
            classes = sorted(set(mapped.str.to_lowercase().drop_nulls().to_list()) - {""})
            if not classes:
                raise ConfigError("labels.classes is null and no source carries labels to infer it from; "
                                  "set labels.classes in params.yaml")
        if len({c.casefold() for c in classes}) != len(classes):
            raise ConfigError(f"labels.classes: classes must differ after case folding (got {classes})")
        return cls(tuple(classes), syn)

    def normalize(self, labels: pl.Series) -> pl.Series:
        """Each label as its canonical class name, null where it is not one of the classes."""
        key = _map_synonyms(labels.str.strip_chars().str.to_lowercase(), self.synonyms).str.to_lowercase()
        return key.replace_strict({c.casefold(): c for c in self.classes}, default=None, return_dtype=pl.String)

    def index(self, names: pl.Series) -> np.ndarray:
        codes = names.replace_strict({c: i for i, c in enumerate(self.classes)}, return_dtype=pl.Int64)
        return codes.to_numpy().astype(np.int64, copy=False)


def _map_synonyms(keys: pl.Series, synonyms: dict[str, str]) -> pl.Series:
    return keys.replace(synonyms) if synonyms else keys


# ---------------------------------------------------------------------------- aggregation
def _incidence(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], weight: np.ndarray | None = None):
    """Sparse ``(rows x cols)`` vote-count matrix: EM's sums over votes become sparse x dense products."""
    from scipy import sparse

    data = np.ones(len(rows)) if weight is None else weight
    return sparse.csr_matrix((data, (rows, cols)), shape=shape)


def vote_counts(items: np.ndarray, labels: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Votes per (item, class) as an (n_items, k) matrix: majority vote is its row-wise argmax."""
    return np.bincount(items * k + labels, minlength=n_items * k).reshape(n_items, k).astype(np.float64)


@dataclass
class DawidSkene:
    posteriors: np.ndarray  # (items, k): P(true class | votes)
    confusion: np.ndarray  # (workers, k answered, k true): P(answer | true class)
    prior: np.ndarray  # (k,)
    iterations: int
    log_likelihood: float  # of the votes (and the gold answers), per vote, at the last E-step


def dawid_skene(items: np.ndarray, workers: np.ndarray, labels: np.ndarray, n_items: int, n_workers: int, k: int,
                gold: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-6,
                smoothing: float = 0.0) -> DawidSkene:
    """Dawid & Skene (1979) EM over per-worker confusion matrices, vectorised over votes.

    Starts from the majority-vote distribution. ``gold`` (class index per item, -1 where unknown)
    pins known items' posteriors after every E-step, and adds a second start: every worker who
    answered at least ``k`` gold items gets a first confusion matrix estimated from those answers
    alone. Of the two runs the more likely one (votes and gold answers) wins. The gold start matters where
    majority vote misleads: a crowd that is mostly adversarial otherwise converges to a permutation of
    the classes. ``smoothing`` is a pseudo-count added to every confusion cell (0 reproduces the
    classic maximum-likelihood EM, as crowd-kit runs it).
    """
    n_votes = len(items)
    if n_votes == 0:
        return DawidSkene(np.zeros((n_items, k)), np.zeros((n_workers, k, k)), np.full(k, 1 / k), 0, 0.0)
    counts = vote_counts(items, labels, n_items, k)
    voted = counts.sum(axis=1) > 0
    known = np.flatnonzero(gold >= 0) if gold is not None else np.empty(0, np.int64)
    pair = workers * k + labels  # row of the (worker, answer) in the flattened confusion matrices
    by_pair = _incidence(pair, items, (n_workers * k, n_items))  # M-step: confusion counts = by_pair @ posteriors
    by_item = by_pair.T.tocsr()  # E-step: log-likelihoods = by_item @ log confusion

    def pin(p: np.ndarray) -> np.ndarray:
        if len(known):
            p[known] = 0.0
            p[known, gold[known]] = 1.0
        return p

    def m_step(p: np.ndarray, votes=by_pair) -> tuple[np.ndarray, np.ndarray]:
        prior = np.clip(p.mean(axis=0), EPS, None)
        conf = np.asarray(votes @ p).reshape(n_workers, k, k) + smoothing
        conf = np.clip(conf, EPS, None)
        return prior / prior.sum(), conf / conf.sum(axis=1, keepdims=True)

    def em(prior: np.ndarray, conf: np.ndarray) -> DawidSkene:
        previous, ll, iterations, posteriors = -np.inf, -np.inf, 0, None
        for iterations in range(1, max_iter + 1):
            log_conf = np.log(conf).reshape(n_workers * k, k)
            logits = np.log(prior) + by_item @ log_conf
            top = logits.max(axis=1, keepdims=True)
            posteriors = np.exp(logits - top)
            norm = posteriors.sum(axis=1, keepdims=True)
            posteriors /= norm
            log_evidence = np.log(norm[:, 0]) + top[:, 0]
            if len(known):  # gold items: the likelihood of the votes *and* of the known class
                log_evidence[known] = logits[known, gold[known]]
            ll = float(log_evidence[voted].sum() / n_votes)
            prior, conf = m_step(pin(posteriors))
            if ll - previous < tol:
                break
            previous = ll
        return DawidSkene(posteriors, conf, prior, iterations, ll)

    majority = pin(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))
    best = em(*m_step(majority))
    if len(known):
        on_gold = gold[items] >= 0
        seeded = np.bincount(workers[on_gold], minlength=n_workers) >= k
        gold_votes = _incidence(pair, items, by_pair.shape, np.where(seeded[workers] & ~on_gold, 0.0, 1.0))
        from_gold = em(*m_step(majority, gold_votes))
        best = max((best, from_gold), key=lambda r: r.log_likelihood)
    return best


def _top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the argmax, its value and whether the runner-up ties it."""
    order = np.argsort(-p, axis=1, kind="stable")[:, :2]
    first = np.take_along_axis(p, order[:, :1], axis=1)[:, 0]
    second = np.take_along_axis(p, order[:, 1:2], axis=1)[:, 0] if p.shape[1] > 1 else np.zeros(len(p))
    return order[:, 0], first, np.isclose(first, second, rtol=0, atol=1e-9)


@dataclass
class Crowd:
    """Per-item crowd outcome and per-worker quality, from the usable votes."""

    items: pl.DataFrame  # row, image_id, votes, label, confidence, agreement, tie, mv_label, ds_label, gold
    workers: pl.DataFrame  # annotators columns (without run_id) + information
    counts: np.ndarray  # (items, k) votes per class, rows aligned with ``items.row``
    iterations: int  # EM iterations Dawid-Skene ran


def aggregate(votes: pl.DataFrame, vocab: Vocabulary, params, gold: dict[str, int] | None = None) -> Crowd:
    """Aggregate ``votes`` (image_id, worker_id, label as a class name) with the configured method."""
    k = len(vocab.classes)
    item_ids = votes["image_id"].unique().sort()
    worker_ids = votes["worker_id"].unique().sort()
    items = _codes(votes["image_id"], item_ids)
    workers = _codes(votes["worker_id"], worker_ids)
    labels = vocab.index(votes["label"])
    n_items, n_workers = len(item_ids), len(worker_ids)
    gold_codes = np.full(n_items, -1, np.int64)
    if gold:
        position = {v: i for i, v in enumerate(item_ids.to_list())}
        for image_id, cls in gold.items():
            if image_id in position:
                gold_codes[position[image_id]] = cls
    em = params.em
    ds = dawid_skene(items, workers, labels, n_items, n_workers, k, gold_codes, em.max_iter, em.tol, em.smoothing)
    counts = vote_counts(items, labels, n_items, k)
    n = counts.sum(axis=1)
    mv_label, mv_top, mv_tie = _top_two(counts)
    ds_label, ds_conf, ds_tie = _top_two(ds.posteriors)
    use_ds = params.method == "dawid_skene"
    label = ds_label if use_ds else mv_label
    per_item = pl.DataFrame({
        "row": np.arange(n_items), "image_id": item_ids,
        "votes": n.astype(np.int32),
        "label": np.asarray(vocab.classes, dtype=object)[label] if n_items else np.empty(0, object),
        "confidence": ds_conf if use_ds else mv_top / np.maximum(n, 1),
        "agreement": counts[np.arange(n_items), label] / np.maximum(n, 1),
        "tie": ds_tie if use_ds else mv_tie,
        "mv_label": mv_label, "ds_label": ds_label, "gold": gold_codes >= 0,
    }, schema_overrides={"label": pl.String})
    return Crowd(per_item, annotator_rows(worker_ids, workers, items, labels, ds, vocab, params), counts, ds.iterations)


def _codes(values: pl.Series, uniques: pl.Series) -> np.ndarray:
    codes = values.replace_strict(uniques, pl.Series(np.arange(len(uniques))), return_dtype=pl.Int64)
    return codes.to_numpy().astype(np.int64, copy=False)


def information(prior: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Share of the label entropy each worker's answers carry: I(truth; answer) / H(truth), per worker."""
    joint = conf * prior[None, None, :]  # (w, answer, truth)
    answer = joint.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.where(joint > 0, joint * np.log(joint / (answer * prior[None, None, :])), 0.0).sum(axis=(1, 2))
    entropy = -(prior * np.log(prior)).sum()
    return np.clip(mi / entropy, 0, 1) if entropy > 0 else np.zeros(len(conf))


def annotator_rows(worker_ids: pl.Series, workers: np.ndarray, items: np.ndarray, labels: np.ndarray,
                   ds: DawidSkene, vocab: Vocabulary, params) -> pl.DataFrame:
    """Votes, estimated accuracy (mean posterior that the worker's answer is the true class) and flags."""
    n_workers, k = len(worker_ids), len(vocab.classes)
    votes = np.bincount(workers, minlength=n_workers)
    right = np.bincount(workers, weights=ds.posteriors[items, labels], minlength=n_workers) if len(items) else np.zeros(n_workers)
    accuracy = right / np.maximum(votes, 1)
    info = information(ds.prior, ds.confusion) if len(items) else np.zeros(n_workers)
    enough = votes >= params.flag_min_votes
    spammer = enough & (info < params.spammer_max_information)
    adversarial = enough & ~spammer & (accuracy < 1 / k)
    return pl.DataFrame({
        "worker_id": worker_ids, "votes": votes.astype(np.int32), "accuracy": accuracy,
        "confusion": [_confusion_summary(ds.confusion[w], vocab.classes, info[w]) for w in range(n_workers)],
        "is_spammer": spammer, "is_adversarial": adversarial, "information": info,
    })


def _confusion_summary(conf: np.ndarray, classes: tuple[str, ...], info: float) -> str:
    """Compact JSON: P(correct | true class) per class and the three most likely confusions."""
    off = conf.copy()
    np.fill_diagonal(off, 0)
    worst = np.argsort(-off, axis=None, kind="stable")[:3]
    return json.dumps({
        "p_correct": {c: round(float(conf[i, i]), 3) for i, c in enumerate(classes)},
        "top_confusions": [{"true": classes[t], "answered": classes[a], "p": round(float(off[a, t]), 3)}
                           for a, t in (np.unravel_index(x, off.shape) for x in worst) if off[a, t] > 0],
        "information": round(float(info), 3),
    }, separators=(",", ":"))


# ---------------------------------------------------------------------------- inputs
@dataclass
class Votes:
    usable: pl.DataFrame  # vote_id, image_id, worker_id, label (class name)
    not_in_classes: pl.DataFrame  # vote_id, item_ref, worker_id, label
    counts: dict


def load_votes(lake: Lake, vocab: Vocabulary, index: pl.DataFrame) -> Votes:
    """Usable votes: not rejected, item known, label in the class list, one per worker and image."""
    from ingest.crowd import resolve_items

    cols = ["vote_id", "item_ref", "image_id", "worker_id", "label", "status", "submitted_at"]
    raw = pl.from_arrow(lake.read("crowd_votes", columns=cols)) if lake.exists("crowd_votes") else \
        pl.DataFrame(schema={c: pl.String for c in cols}).with_columns(pl.col("submitted_at").cast(pl.Datetime("us", "UTC")))
    rejected = raw.filter(pl.col("status") == "rejected")
    live = raw.filter(pl.col("status") != "rejected")
    # votes that landed before their image did resolve now
    live = live.with_columns(pl.coalesce("image_id", resolve_items(live, index)).alias("image_id"))
    unknown = live.filter(pl.col("image_id").is_null())
    live = live.filter(pl.col("image_id").is_not_null()).with_columns(vocab.normalize(live.filter(
        pl.col("image_id").is_not_null())["label"]).alias("class"))
    bad = live.filter(pl.col("class").is_null()).select("vote_id", "item_ref", "worker_id", "label")
    good = live.filter(pl.col("class").is_not_null())
    usable = (good.sort(["submitted_at", "vote_id"], descending=True, nulls_last=True)
              .unique(["worker_id", "image_id"], keep="first")
              .sort("vote_id")
              .select("vote_id", "image_id", "worker_id", pl.col("class").alias("label")))
    counts = {"votes_in": raw.height, "used": usable.height, "rejected_assignments": rejected.height,
              "unknown_item": unknown.height, "not_in_classes": bad.height,
              "repeat_same_worker_item": good.height - usable.height}
    return Votes(usable, bad, counts)


def load_gold(path: str | None, vocab: Vocabulary, index: pl.DataFrame) -> dict[str, int]:
    """Gold answers from a CSV ``item,label``: image_id -> class index. A bad row is a user error."""
    if not path:
        return {}
    from ingest.crowd import read_delimited, resolve_items

    frame = read_delimited(Path(path), ["item", "label"], None, "labels.gold_file")
    frame = frame.with_columns(resolve_items(frame, index, "item").alias("image_id"),
                               vocab.normalize(frame["label"]).alias("class"))
    for line, row in enumerate(frame.iter_rows(named=True), start=2):
        if row["image_id"] is None:
            raise InputError(f"{path}:{line}: gold item '{row['item']}' is not in raw_images")
        if row["class"] is None:
            raise InputError(f"{path}:{line}: gold label '{row['label']}' is not one of labels.classes")
    return dict(zip(frame["image_id"].to_list(), vocab.index(frame["class"]).tolist()))


def given_labels(raw: pl.DataFrame, vocab: Vocabulary) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per image the distinct normalised source labels; and the raw rows whose label is not a class."""
    labelled = raw.filter(pl.col("source_label").is_not_null()).with_columns(vocab.normalize(
        raw.filter(pl.col("source_label").is_not_null())["source_label"]).alias("class"))
    invalid = labelled.filter(pl.col("class").is_null()).select("image_id", "source", "source_uri", "source_label")
    given = (labelled.filter(pl.col("class").is_not_null())
             .group_by("image_id").agg(pl.col("class").unique().sort().alias("given")))
    return given, invalid


# ---------------------------------------------------------------------------- combining
def combine(universe: pl.DataFrame, crowd: pl.DataFrame, given: pl.DataFrame, params, method: str) -> pl.DataFrame:
    """One label row per image of ``universe`` under ``params.policy`` (see docs/labels.md for the table)."""
    df = (universe.join(crowd, on="image_id", how="left").join(given, on="image_id", how="left")
          .with_columns(pl.col("votes").fill_null(0), pl.col("given").fill_null(pl.lit([], pl.List(pl.String)))))
    n_given = pl.col("given").list.len()
    g_label = pl.when(n_given == 1).then(pl.col("given").list.first())
    crowd_reason = (pl.when(pl.col("votes") == 0).then(None)
                    .when(pl.col("votes") < params.min_votes).then(pl.lit("below_min_votes"))
                    .when(pl.col("tie")).then(pl.lit("tie"))
                    .when(pl.col("confidence") < params.min_confidence).then(pl.lit("low_confidence")))
    df = df.with_columns(g_label.alias("g"), crowd_reason.alias("c_reason"),
                         ((pl.col("votes") > 0) & crowd_reason.is_null()).alias("c_ok"))
    c_ok, g, n_g, same = pl.col("c_ok"), pl.col("g"), n_given, (pl.col("label") == pl.col("g")).fill_null(False)
    policy = params.policy
    use_crowd = c_ok & ((n_g == 0) | same | ((n_g > 1) & pl.lit(policy != "agree_only"))
                        | ((n_g == 1) & ~same & pl.lit(policy == "crowd_over_given")))
    use_given = ~use_crowd & (n_g == 1) & (~c_ok | pl.lit(policy == "given_over_crowd"))
    conflict = ~use_crowd & ~use_given & (n_g > 0)
    reason = (pl.when(use_crowd & (n_g == 1) & ~same).then(pl.lit("given_overridden"))
              .when(use_crowd & (n_g > 1)).then(pl.lit("given_conflict_resolved_by_crowd"))
              .when(use_given & c_ok).then(pl.lit("crowd_overridden"))
              .when(conflict & c_ok).then(pl.lit("crowd_given_disagree" if policy == "agree_only" else "given_labels_conflict"))
              .when(conflict & (n_g > 1)).then(pl.lit("given_labels_conflict"))
              .when(use_crowd | use_given).then(None)
              .otherwise(pl.coalesce("c_reason", pl.lit("no_label"))))
    return df.select(
        "image_id",
        pl.when(use_crowd).then(pl.col("label")).when(use_given).then(g).alias("label"),
        pl.when(use_crowd).then(pl.lit(method)).when(use_given).then(pl.lit("given"))
        .when(pl.col("votes") > 0).then(pl.lit(method)).when(n_g > 0).then(pl.lit("given"))
        .otherwise(pl.lit("none")).alias("label_source"),
        pl.when(use_crowd | (~use_given & (pl.col("votes") > 0))).then(pl.col("confidence")).alias("confidence"),
        pl.col("votes").cast(pl.Int32),
        pl.when(pl.col("votes") > 0).then(pl.col("agreement")).alias("agreement"),
        pl.when(use_crowd | use_given).then(pl.lit("resolved")).when(conflict).then(pl.lit("conflict"))
        .otherwise(pl.lit("unresolved")).alias("status"),
        reason.alias("reason"),
        pl.col("given"), pl.col("label").alias("crowd_label"),
    ).sort("image_id")


# ---------------------------------------------------------------------------- report
def accuracy_report(crowd: Crowd, labels: pl.DataFrame, raw: pl.DataFrame, truth_path: str | None,
                    vocab: Vocabulary, seed: int, votes: pl.DataFrame) -> dict | None:
    """Majority vote vs Dawid-Skene vs the final labels against the demo ground truth, and per worker."""
    if not truth_path or not Path(truth_path).is_file():
        return None
    truth = json.loads(Path(truth_path).read_text())
    true_of_uri = pl.DataFrame({"source_uri": list(truth["true_labels"]), "true": list(truth["true_labels"].values())},
                               schema={"source_uri": pl.String, "true": pl.String})
    image_truth = raw.join(true_of_uri, on="source_uri").group_by("image_id").agg(pl.col("true").first())
    items = crowd.items.join(image_truth, on="image_id", maintain_order="left").filter(~pl.col("gold"))
    report: dict = {"ground_truth": truth_path, "items_scored": items.height}
    if items.height:
        true_idx = vocab.index(items["true"])
        noise = np.random.default_rng(seed).random((items.height, len(vocab.classes)))
        majority = np.argmax(crowd.counts[items["row"].to_numpy()] + 0.5 * noise, axis=1)  # ties broken at random
        report["majority_accuracy"] = round(float((majority == true_idx).mean()), 4)
        report["dawid_skene_accuracy"] = round(float((items["ds_label"].to_numpy() == true_idx).mean()), 4)
    final = labels.filter(pl.col("status") == "resolved").join(image_truth, on="image_id")
    report["final_labels_scored"] = final.height
    report["final_label_accuracy"] = round(float((final["label"] == final["true"]).mean()), 4) if final.height else None
    worker_truth = (votes.join(image_truth, on="image_id").group_by("worker_id")
                    .agg((pl.col("label") == pl.col("true")).mean().alias("true_accuracy")))
    designed = (truth.get("crowd") or {}).get("workers", {})
    rows = crowd.workers.join(worker_truth, on="worker_id", how="left").sort("worker_id")
    report["workers"] = {
        r["worker_id"]: {"votes": r["votes"], "estimated_accuracy": round(r["accuracy"], 4),
                         "true_accuracy": None if r["true_accuracy"] is None else round(r["true_accuracy"], 4),
                         "profile": designed.get(r["worker_id"], {}).get("profile"),
                         "is_spammer": r["is_spammer"], "is_adversarial": r["is_adversarial"]}
        for r in rows.iter_rows(named=True)}
    return report


# ---------------------------------------------------------------------------- the stage
def _quarantine(rows: list[tuple[str, str, str, str, str]], run_id: str) -> pa.Table:
    """Quarantine rows of this stage from ``(source_table, row_key, check, reason, details)``."""
    from sluice.runs import utcnow

    now = utcnow()
    rows = list({(r[0], r[1], r[2]): r for r in rows}.values())  # one row per quarantine key
    names = ["source_table", "row_key", "check", "reason", "details"]
    cols = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    return pa.table({**cols, "stage": [STAGE] * len(rows), "run_id": [run_id] * len(rows),
                     "quarantined_at": pa.array([now] * len(rows), pa.timestamp("us", tz="UTC"))})


def _universe(lake: Lake, raw: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    if lake.exists("images"):
        return pl.from_arrow(lake.read("images", columns=["image_id"])).unique().sort("image_id"), "images"
    print(f"[{STAGE}] silver table 'images' does not exist yet: labelling the distinct image_ids of raw_images instead")
    return raw.select("image_id").unique().sort("image_id"), "raw_images"


def run(params) -> dict:
    """Recompute ``labels``, ``annotators`` and this stage's quarantine rows; return the summary."""
    from ingest.crowd import item_index
    from sluice.runs import new_run_id, reconcile

    cfg = params.labels
    lake = Lake.from_params(params)
    run_id = new_run_id(STAGE)
    raw = pl.from_arrow(lake.read("raw_images", columns=["image_id", "source", "source_uri", "source_label"]))
    vocab = Vocabulary.build(cfg.classes, cfg.synonyms, raw["source_label"])
    index = item_index(lake)
    votes = load_votes(lake, vocab, index)
    reconcile(f"{STAGE}:votes", votes.counts["votes_in"], **{k: v for k, v in votes.counts.items() if k != "votes_in"})
    gold = load_gold(cfg.gold_file, vocab, index)
    crowd = aggregate(votes.usable, vocab, cfg, gold)
    given, invalid_given = given_labels(raw, vocab)
    universe, universe_from = _universe(lake, raw)
    labels = combine(universe, crowd.items.select("image_id", "votes", "label", "confidence", "agreement", "tie"),
                     given, cfg, cfg.method)

    quarantine = [("crowd_votes", r["vote_id"], "label_not_in_classes", "label_not_in_classes",
                   json.dumps({"label": r["label"], "worker_id": r["worker_id"], "item_ref": r["item_ref"]}, sort_keys=True))
                  for r in votes.not_in_classes.iter_rows(named=True)]
    quarantine += [("raw_images", r["source_uri"], "label_not_in_classes", "label_not_in_classes",
                    json.dumps({"label": r["source_label"], "source": r["source"], "image_id": r["image_id"]}, sort_keys=True))
                   for r in invalid_given.iter_rows(named=True)]
    conflicts = labels.filter(pl.col("status") == "conflict")
    quarantine += [("labels", r["image_id"], "label_conflict", r["reason"],
                    json.dumps({"given": r["given"], "crowd": r["crowd_label"], "confidence": r["confidence"],
                                "policy": cfg.policy}, sort_keys=True))
                   for r in conflicts.iter_rows(named=True)]

    table = labels.drop("given", "crowd_label").with_columns(pl.lit(run_id).alias("run_id"))
    lake.overwrite("labels", table.to_arrow(), run_id=run_id)
    lake.overwrite("annotators", crowd.workers.drop("information").with_columns(pl.lit(run_id).alias("run_id")).to_arrow(),
                   run_id=run_id)
    lake.overwrite("quarantine", _quarantine(quarantine, run_id), predicate=f"stage = '{STAGE}'", run_id=run_id)

    status = dict(labels.group_by("status").len().iter_rows())
    reasons = {r: n for r, n in labels.filter(pl.col("reason").is_not_null()).group_by("reason").len().sort("reason").iter_rows()}
    reconcile(f"{STAGE}:images", universe.height, resolved=status.get("resolved", 0),
              unresolved=status.get("unresolved", 0), conflict=status.get("conflict", 0))
    sources = dict(labels.filter(pl.col("status") == "resolved").group_by("label_source").len().iter_rows())
    workers = crowd.workers
    summary = {
        "run_id": run_id, "classes": list(vocab.classes), "method": cfg.method, "policy": cfg.policy,
        "images_from": universe_from, "images": universe.height, "status": status, "reasons": reasons,
        "resolved_by": sources, "votes": votes.counts, "gold_items": len(gold),
        "votes_outside_images": int(votes.usable.join(universe, on="image_id", how="anti").height),
        "invalid_source_labels": invalid_given.height,
        "em_iterations": crowd.iterations,
        "workers": workers.height, "spammers": sorted(workers.filter("is_spammer")["worker_id"].to_list()),
        "adversarial": sorted(workers.filter("is_adversarial")["worker_id"].to_list()),
        "quarantined": len(quarantine),
        "versions": {t: lake.version(t) for t in ("labels", "annotators", "quarantine")},
    }
    report = accuracy_report(crowd, labels, raw, cfg.ground_truth, vocab, cfg.seed, votes.usable)
    if report is not None:
        summary["accuracy"] = report
    print(render_summary(summary))
    return summary


def render_summary(s: dict) -> str:
    lines = [f"[{STAGE}] {s['images']} images (from {s['images_from']}): "
             + ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items()))
             + f"; resolved by {', '.join(f'{k} {v}' for k, v in sorted(s['resolved_by'].items())) or 'none'}",
             f"[{STAGE}] reasons: {', '.join(f'{k} {v}' for k, v in s['reasons'].items()) or 'none'}",
             f"[{STAGE}] votes used {s['votes']['used']} of {s['votes']['votes_in']} ({s['method']}, {s['em_iterations']} EM "
             f"iterations, {s['gold_items']} gold items); workers {s['workers']}, spammers {s['spammers'] or 'none'}, "
             f"adversarial {s['adversarial'] or 'none'}"]
    acc = s.get("accuracy")
    if acc:
        lines.append(f"[{STAGE}] accuracy vs ground truth on {acc['items_scored']} voted items: majority "
                     f"{acc.get('majority_accuracy')}, dawid-skene {acc.get('dawid_skene_accuracy')}; final labels "
                     f"{acc['final_label_accuracy']} on {acc['final_labels_scored']} resolved images")
        lines.append(f"[{STAGE}] {'worker':<14} {'votes':>6} {'est.acc':>8} {'true.acc':>8}  flags")
        for w, r in acc["workers"].items():
            flags = ",".join(f for f, on in (("spammer", r["is_spammer"]), ("adversarial", r["is_adversarial"])) if on)
            true = "n/a" if r["true_accuracy"] is None else f"{r['true_accuracy']:.3f}"
            lines.append(f"[{STAGE}] {w:<14} {r['votes']:>6} {r['estimated_accuracy']:>8.3f} {true:>8}  {flags}")
    return "\n".join(lines)


def metrics(summary: dict) -> dict:
    """The figures `dvc metrics show` tracks."""
    acc = summary.get("accuracy") or {}
    return {
        "images": summary["images"], "resolved": summary["status"].get("resolved", 0),
        "unresolved": summary["status"].get("unresolved", 0), "conflict": summary["status"].get("conflict", 0),
        "votes_used": summary["votes"]["used"], "majority_accuracy": acc.get("majority_accuracy"),
        "dawid_skene_accuracy": acc.get("dawid_skene_accuracy"), "final_label_accuracy": acc.get("final_label_accuracy"),
        "spammers_flagged": len(summary["spammers"]), "adversarial_flagged": len(summary["adversarial"]),
        "workers": {w: {"estimated_accuracy": r["estimated_accuracy"], "true_accuracy": r["true_accuracy"]}
                    for w, r in acc.get("workers", {}).items()},
    }


def write_metrics(summary: dict, path: Path = METRICS_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics(summary), indent=2, sort_keys=True) + "\n")
    return path


# ---------------------------------------------------------------------------- commands
def register(sub) -> None:
    p = sub.add_parser("labels", help="crowd votes and labels: ingest vote exports, aggregate, show workers",
                       description="Crowd labels: land vote exports (MTurk CSV, Label Studio JSON, long CSV) in "
                                   "crowd_votes, aggregate them (Dawid-Skene or majority vote) with the labels sources "
                                   "carry into `labels` and `annotators`. Settings: the `labels` section of params.yaml.")
    cmds = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    i = cmds.add_parser("ingest", help="land the vote exports of labels.exports in crowd_votes (idempotent)")
    i.add_argument("--export", help="only the export with this name")
    i.set_defaults(func=_cmd_ingest)
    a = cmds.add_parser("aggregate", help="recompute labels and annotators from every vote and source label")
    a.set_defaults(func=_cmd_aggregate)
    w = cmds.add_parser("workers", help="list annotators: votes, estimated accuracy, flags")
    w.set_defaults(func=_cmd_workers)


def _cmd_ingest(args) -> int:
    from ingest.crowd import run as ingest_run
    from sluice.config import load_params

    ingest_run(load_params(), only=args.export)
    return 0


def _cmd_aggregate(args) -> int:
    from sluice.config import load_params

    run(load_params())
    return 0


def _cmd_workers(args) -> int:
    from sluice.commands import render

    lake = Lake.from_params()
    table = pl.from_arrow(lake.read("annotators")).sort("accuracy", descending=True).drop("confusion", "run_id")
    print(render(table.to_arrow(), "table"))
    return 0


def main() -> None:
    from sluice.stage import stage_main
    from sluice.config import load_params
    from sluice.runs import write_manifest

    def go():
        summary = run(load_params())
        print(f"[{STAGE}] manifest: {write_manifest(STAGE, summary)}; metrics: {write_metrics(summary)}")

    stage_main(go)


if __name__ == "__main__":
    main()
