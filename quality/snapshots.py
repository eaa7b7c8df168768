"""What the snapshot gate measures on the exported folder (``sluice.snapshot`` format).

The content hash is recomputed from the shard bytes (``sluice.snapshot.verify``); row counts are
read from the label shards only (memory-mapped, never the images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sluice.snapshot import read_manifest, verify


def _shard_rows(folder: Path, manifest: dict) -> int:
    total = 0
    for split in manifest.get("splits", {}).values():
        for shard in split.get("shards", []):
            path = folder / f"{shard['stem']}.labels.npy"
            total += len(np.load(path, mmap_mode="r")) if path.is_file() else 0
    return total


def _gold_rows(env) -> str:
    if env.has("dataset.split"):
        return "dataset table missing"
    rows = dict(env.rows("SELECT split, count(*) FROM dataset GROUP BY split"))
    return ", ".join(f"{s}={rows[s]}" for s in sorted(rows))


def snapshot_metrics(env):
    """A one-row pandas frame of expected/actual pairs and bounded values for the snapshot suite."""
    import pandas as pd

    folder = env.snapshot_dir
    manifest = read_manifest(folder)  # InputError (exit 2) when the folder has no manifest
    _, expected_hash, actual_hash = verify(folder)
    splits = manifest.get("splits", {})
    train = splits.get("train", {}).get("class_counts", {})
    total = sum(train.values())
    mean, std = manifest.get("mean"), manifest.get("std")
    stats_ok = (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3
                and all(0 <= m <= 1 for m in mean) and all(0 < s <= 1 for s in std))
    yield pd.DataFrame([{
        "content_hash_expected": expected_hash, "content_hash_actual": actual_hash,
        "rows_expected": sum(s.get("rows", 0) for s in splits.values()), "rows_actual": _shard_rows(Path(folder), manifest),
        "classes_expected": ",".join(env.classes or manifest.get("classes", [])),
        "classes_actual": ",".join(manifest.get("classes", [])),
        "gold_rows_expected": ", ".join(f"{s}={splits[s].get('rows', 0)}" for s in sorted(splits)),
        "gold_rows_actual": _gold_rows(env),
        "train_min_class_share": min((c / total for c in train.values()), default=0.0) if total else 0.0,
        "mean_std_ok": bool(stats_ok),
    }])
