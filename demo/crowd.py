"""The demo's simulated crowd: a pool of annotators of known quality voting on the demo images.

Workers: three good ones, two mediocre ones, a spammer answering at random, an adversarial worker
who systematically answers a wrong class, and a worker with a single vote. Their votes are exported
in the three formats ``ingest/crowd.py`` reads — an MTurk batch CSV (items by file path), a Label
Studio JSON export (items by file path or ``file#row``) and a plain long CSV (items by image id or
path) — plus a few planted defects (a rejected assignment, a duplicated assignment row, a synonym, a
label outside the class list, a skipped annotation, votes on an item never landed) and a small gold
file. The truth (each worker's designed and realised accuracy, the planted defects) goes into
``ground_truth.json`` under ``crowd``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

# name -> (profile, designed accuracy, share of the voting work)
WORKERS = {
    "good_1": ("good", 0.95, 0.10),
    "good_2": ("good", 0.92, 0.10),
    "good_3": ("good", 0.90, 0.10),
    "mediocre_1": ("mediocre", 0.70, 0.18),
    "mediocre_2": ("mediocre", 0.60, 0.18),
    "spammer": ("spammer", None, 0.17),
    "adversary": ("adversarial", 0.05, 0.17),
}
ONE_VOTE_WORKER = "one_vote"
VOTED_FRACTION = 0.7
VOTES_PER_ITEM = (3, 4, 5)
GOLD_ITEMS = 30
UNKNOWN_ITEM = "data/demo/folder/train/3/never_landed.png"
START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def _answer(rng: np.random.Generator, profile: str, accuracy: float | None, true: int, k: int) -> int:
    if profile == "spammer":
        return int(rng.integers(k))
    if profile == "adversarial":  # a fixed wrong class for each true class, with a little noise
        return (true + 3) % k if rng.random() > accuracy else true
    if rng.random() < accuracy:
        return true
    return int((true + 1 + rng.integers(k - 1)) % k)  # uniformly one of the other classes


def _voted_items(truth: dict, rng: np.random.Generator) -> list[str]:
    """One reference per distinct image (copies of the same bytes left out), conflicts always voted."""
    copies = {pair[1] for pair in truth["exact_duplicates"]} | {c["paths"][1] for c in truth["label_conflicts"]}
    candidates = sorted(u for u in truth["true_labels"] if u not in copies)
    forced = sorted({c["paths"][0] for c in truth["label_conflicts"]})
    rest = [u for u in candidates if u not in set(forced)]
    chosen = rng.choice(len(rest), size=int(len(rest) * VOTED_FRACTION), replace=False)
    return sorted(forced + [rest[i] for i in chosen])


def simulate_votes(truth: dict, seed: int) -> tuple[list[dict], dict]:
    """Votes ``{item, worker, label}`` for the voted demo items, and each worker's realised accuracy."""
    rng = np.random.default_rng([seed, 4])
    classes = truth["classes"]
    k = len(classes)
    names = list(WORKERS)
    share = np.array([WORKERS[w][2] for w in names])
    votes, correct = [], {w: [0, 0] for w in names}
    for item in _voted_items(truth, rng):
        true = classes.index(truth["true_labels"][item])
        n = int(rng.choice(VOTES_PER_ITEM))
        for w in rng.choice(len(names), size=n, replace=False, p=share / share.sum()):
            name = names[w]
            profile, accuracy, _ = WORKERS[name]
            label = _answer(rng, profile, accuracy, true, k)
            votes.append({"item": item, "worker": name, "label": classes[label]})
            correct[name][0] += label == true
            correct[name][1] += 1
    item = votes[0]["item"]
    votes.append({"item": item, "worker": ONE_VOTE_WORKER, "label": truth["true_labels"][item]})
    correct[ONE_VOTE_WORKER] = [1, 1]
    workers = {w: {"profile": WORKERS[w][0] if w in WORKERS else "one_vote",
                   "designed_accuracy": (WORKERS[w][1] if w in WORKERS else 1.0) if w != "spammer" else 1 / k,
                   "votes": n, "true_accuracy": round(c / n, 4)} for w, (c, n) in correct.items()}
    return votes, workers


def _file_image_id(uri: str) -> str | None:
    path = Path(uri)
    return hashlib.sha256(path.read_bytes()).hexdigest() if "#" not in uri and path.is_file() else None


def _mturk_time(t: datetime) -> str:
    return t.astimezone(timezone(timedelta(hours=-8))).strftime("%a %b %d %H:%M:%S PST %Y")


def _write_mturk(path: Path, votes: list[dict], planted: dict) -> None:
    columns = ["HITId", "HITTypeId", "Title", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime",
               "SubmitTime", "WorkTimeInSeconds", "Input.image_url", "Answer.label", "Approve", "Reject"]
    hits = {item: f"3HIT{i:06d}" for i, item in enumerate(dict.fromkeys(v["item"] for v in votes))}
    rows = []
    for j, v in enumerate(votes):
        t = START + timedelta(minutes=j)
        rows.append({"HITId": hits[v["item"]], "HITTypeId": "3TYPEDIGITS", "Title": "Which digit is this?",
                     "AssignmentId": f"3ASG{j:07d}", "WorkerId": v["worker"], "AssignmentStatus": "Approved",
                     "AcceptTime": _mturk_time(t - timedelta(seconds=20)), "SubmitTime": _mturk_time(t),
                     "WorkTimeInSeconds": "20", "Input.image_url": v["item"], "Answer.label": v["label"],
                     "Approve": "x", "Reject": ""})
    spam = next(r for r in rows if r["WorkerId"] == "spammer")
    spam.update(AssignmentStatus="Rejected", Approve="", Reject="random answers")
    planted["mturk_rejected"] = [spam["AssignmentId"]]
    rows.insert(len(rows) // 2, dict(rows[len(rows) // 3]))  # the same assignment submitted twice
    planted["mturk_duplicate_rows"] = 1
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)


def _write_label_studio(path: Path, votes: list[dict], planted: dict) -> None:
    worker_ids = {w: i + 1 for i, w in enumerate(sorted({v["worker"] for v in votes}))}
    tasks: dict[str, dict] = {}
    for j, v in enumerate(votes):
        task = tasks.setdefault(v["item"], {"id": len(tasks) + 1, "data": {"image": v["item"]},
                                            "annotations": [], "predictions": []})
        task["annotations"].append({
            "id": 1000 + j, "completed_by": {"id": worker_ids[v["worker"]], "email": v["worker"]},
            "was_cancelled": False, "created_at": (START + timedelta(minutes=j)).isoformat().replace("+00:00", "Z"),
            "result": [{"from_name": "digit", "to_name": "image", "type": "choices", "value": {"choices": [v["label"]]}}]})
    ordered = list(tasks.values())
    # planted: a spelled-out synonym, a label outside the class list, a skipped annotation
    seven = next(a for t in ordered for a in t["annotations"] if a["result"][0]["value"]["choices"] == ["7"])
    seven["result"][0]["value"]["choices"] = [" Seven "]
    ordered[1]["annotations"].append({"id": 9001, "completed_by": {"id": worker_ids["mediocre_2"], "email": "mediocre_2"},
                                      "was_cancelled": False, "created_at": START.isoformat().replace("+00:00", "Z"),
                                      "result": [{"from_name": "digit", "to_name": "image", "type": "choices",
                                                  "value": {"choices": ["cat"]}}]})
    ordered[2]["annotations"].append({"id": 9002, "completed_by": {"id": worker_ids["good_2"], "email": "good_2"},
                                      "was_cancelled": True, "result": [],
                                      "created_at": START.isoformat().replace("+00:00", "Z")})
    planted.update(label_studio_synonym=1, label_not_in_classes=1, label_studio_skipped=1)
    path.write_text(json.dumps(ordered, indent=1) + "\n")


def _write_csv(path: Path, votes: list[dict], planted: dict) -> None:
    ids: dict[str, str | None] = {}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item", "worker", "label", "timestamp"])
        for j, v in enumerate(votes):
            if v["item"] not in ids:
                ids[v["item"]] = _file_image_id(v["item"])
            ref = ids[v["item"]] or v["item"]  # files by image id, rows inside files by file#row
            writer.writerow([ref, v["worker"], v["label"], (START + timedelta(minutes=j)).isoformat()])
        for w in ("good_1", "mediocre_1"):
            writer.writerow([UNKNOWN_ITEM, w, "3", START.isoformat()])
    planted["unknown_item_votes"] = 2


def build_crowd_demo(out: Path, truth: dict, seed: int) -> dict:
    """Write ``<out>/votes/{mturk.csv,label_studio.json,votes.csv,gold.csv}``; return the crowd truth."""
    votes, workers = simulate_votes(truth, seed)
    folder = out / "votes"
    folder.mkdir(parents=True, exist_ok=True)
    items = sorted(dict.fromkeys(v["item"] for v in votes))
    rng = np.random.default_rng([seed, 5])
    rng.shuffle(items)
    thirds = {"mturk": set(items[: len(items) * 4 // 10]), "label_studio": set(items[len(items) * 4 // 10: len(items) * 7 // 10])}
    parts = {"mturk": [], "label_studio": [], "csv": []}
    for v in votes:
        fmt = next((f for f, s in thirds.items() if v["item"] in s), "csv")
        parts[fmt].append(v)
    planted: dict = {}
    _write_mturk(folder / "mturk.csv", parts["mturk"], planted)
    _write_label_studio(folder / "label_studio.json", parts["label_studio"], planted)
    _write_csv(folder / "votes.csv", parts["csv"], planted)
    gold = sorted(items[:GOLD_ITEMS])
    with (folder / "gold.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item", "label"])
        writer.writerows([[g, truth["true_labels"][g]] for g in gold])
    return {"workers": workers, "voted_items": len(items), "votes": len(votes), "gold_items": gold,
            "files": {f: len(p) for f, p in parts.items()}, "planted": planted}
