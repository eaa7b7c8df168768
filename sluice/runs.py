"""Run ids, stage manifests and reconciliation lines shared by every stage.

Manifests carry the identity of the lake they describe (``"lake": {"id", "root"}``): a stage refuses,
with one line, to build on an upstream manifest written for another lake, so running stages against
another lake from a project folder cannot silently mix the two (e.g. export taking the other lake's
mean/std).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sluice import paths
from sluice.errors import InputError

MANIFEST_DIR = Path(paths.MANIFESTS)
LAKE_ID_FILE = "_sluice_lake_id"  # at the lake root; created at the first manifest written for the lake


def new_run_id(stage: str) -> str:
    """A sortable, unique id for one execution of a stage: ``<stage>-<UTC time>-<random>``."""
    return f"{stage}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def lake_identity(lake, create: bool = False) -> dict:
    """``{"id", "root"}`` of a lake. A local lake's id is a UUID kept in ``<root>/_sluice_lake_id``
    (made when ``create``), so a lake moved or mounted elsewhere keeps it; an object-store lake's id is
    its root URI."""
    root = str(lake.root)
    if "://" in root and not root.startswith("file://"):
        return {"id": root, "root": root}
    marker = Path(root.removeprefix("file://")) / LAKE_ID_FILE
    if not marker.is_file():
        if not create:
            return {"id": None, "root": root}
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{uuid.uuid4().hex}")
        tmp.write_text(uuid.uuid4().hex + "\n")
        try:
            os.link(tmp, marker)  # first writer wins; a concurrent one keeps the winner's id
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return {"id": marker.read_text().strip(), "root": root}


def _manifest_dir(directory: Path | str | None, params) -> Path:
    if directory is not None:
        return Path(directory)
    return Path(params.paths.manifests) if params is not None else MANIFEST_DIR


def check_lake(path: Path, body: dict, lake) -> None:
    """Refuse a manifest written for another lake than ``lake`` (manifests without a lake record pass)."""
    recorded = (body.get("lake") or {}) if isinstance(body, dict) else {}
    if not recorded.get("id"):
        return
    here = lake_identity(lake)
    if recorded["id"] != here["id"]:
        raise InputError(f"{path}: written for the lake at {recorded.get('root')} (id {recorded['id']}), not the "
                         f"lake at {here['root']} (id {here['id']}); rerun the upstream stages against this lake "
                         "(dvc repro) or run from that lake's project folder")


def read_manifest(stage: str, lake, directory: Path | str | None = None) -> dict | None:
    """``<directory>/<stage>.json`` if it exists and belongs to ``lake``; None when absent or unreadable."""
    path = _manifest_dir(directory, None) / f"{stage}.json"
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    check_lake(path, body, lake)
    return body


def check_upstream(stage: str, lake, directory: Path | str | None = None) -> None:
    """Refuse (one line, exit 2) when a manifest ``stage`` builds on was written for another lake."""
    from sluice.pipeline import upstream_manifests

    for upstream in upstream_manifests(stage):
        body = read_manifest(upstream.removesuffix(".json"), lake, directory)
        if body and body.get("normalize") and "dataset" in (body.get("versions") or {}):
            recorded, current = body["versions"]["dataset"], lake.version("dataset")
            if recorded != current:
                raise InputError(f"{_manifest_dir(directory, None) / upstream}: mean/std were computed from dataset "
                                 f"version {recorded}, but the lake's dataset table is at version {current}; "
                                 "rerun the dataset stage (dvc repro dataset)")


def write_manifest(stage: str, body: dict, directory: Path | str | None = None, lake=None) -> Path:
    """Write ``<directory>/<stage>.json`` atomically (temp file + rename) and return its path.

    Manifests are what DVC tracks for stages whose real output lives in the lake: the Delta version of
    every table the stage wrote, its counts, and the lake's identity. ``directory`` defaults to
    ``paths.manifests`` and ``lake`` to the params' lake. The upstream manifests this stage read must
    belong to the same lake, or nothing is written.
    """
    params = None
    if directory is None or lake is None:
        from sluice.config import load_params
        from sluice.lake import Lake

        params = load_params()
        lake = lake or Lake.from_params(params)
    directory = _manifest_dir(directory, params)
    check_upstream(stage, lake, directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stage}.json"
    tmp = path.with_suffix(".json.tmp")
    body = {**body, "lake": lake_identity(lake, create=True)}
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
