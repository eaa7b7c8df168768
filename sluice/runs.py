"""Run ids, stage manifests and reconciliation lines shared by every stage."""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

MANIFEST_DIR = Path("data/manifests")


def new_run_id(stage: str) -> str:
    """A sortable, unique id for one execution of a stage: ``<stage>-<UTC time>-<random>``."""
    return f"{stage}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def write_manifest(stage: str, body: dict, directory: Path | str = MANIFEST_DIR) -> Path:
    """Write ``<directory>/<stage>.json`` atomically (temp file + rename) and return its path.

    Manifests are what DVC tracks for stages whose real output lives in the lake: the Delta version of
    every table the stage wrote, and its counts.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stage}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def reconcile(stage: str, rows_in: int, **parts: int) -> dict:
    """Check and print that every input row is accounted for: ``in = out + quarantined + merged``."""
    total = sum(parts.values())
    line = f"[{stage}] reconcile: in {rows_in} = " + " + ".join(f"{k} {v}" for k, v in parts.items())
    ok = total == rows_in
    print(line + ("  OK" if ok else f"  MISMATCH (accounted {total})"), file=sys.stderr)
    if not ok:
        raise AssertionError(f"{stage}: {rows_in} rows in but {total} accounted for: {parts}")
    return {"rows_in": rows_in, **parts}
