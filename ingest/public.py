"""Public-dataset connectors: CIFAR (pickle and binary layouts), image folders and Parquet.

Each connector streams ``Record`` objects; :func:`land` groups them into batches of
``ingest.batch_rows`` rows and merge-inserts them into ``raw_images`` (a rerun adds nothing), with
rejected inputs written to ``quarantine`` with their reason. Memory stays bounded by one batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from PIL import Image

from ingest.safe_pickle import load_untrusted
from sluice.config import CifarSource, ImageFolderSource, ParquetSource
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.progress import progress
from sluice.runs import utcnow

SPLIT_DIRS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
IMAGE_EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


@dataclass
class Record:
    """One input item: either image bytes to land or a rejection to quarantine."""

    uri: str
    content: bytes | None = None
    label: str | None = None
    split_hint: str | None = None
    extra: str | None = None
    reject: str | None = None  # reason code when the item cannot be landed
    details: str | None = None


@dataclass
class IngestStats:
    seen: int = 0
    inserted: int = 0
    already_present: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"seen": self.seen, "inserted": self.inserted, "already_present": self.already_present,
                "quarantined": self.quarantined, "quarantine_reasons": dict(self.reasons)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------- image folders
def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise InputError(f"{path}: {what} must be a folder")


def read_image_folder(src: ImageFolderSource, max_bytes: int) -> Iterator[Record]:
    """``root/<class>/<file>``, optionally ``root/<split>/<class>/<file>``; any format Pillow reads."""
    root = Path(src.path)
    _require_dir(root, f"image folder of source '{src.name}'")
    top = sorted(p for p in root.iterdir() if p.is_dir())
    split_level = bool(top) and all(p.name.lower() in SPLIT_DIRS for p in top)
    class_dirs = [(SPLIT_DIRS[s.name.lower()], c) for s in top for c in sorted(s.iterdir()) if c.is_dir()] \
        if split_level else [(None, c) for c in top]
    if not class_dirs:
        raise InputError(f"{root}: no class folders found (expected {root}/<class>/<image> or {root}/train/<class>/<image>)")
    found = False
    for split, class_dir in class_dirs:
        for path in sorted(class_dir.rglob("*")):
            if path.is_dir():
                continue
            found = True
            uri = path.as_posix()
            if not path.is_file():  # broken symlink, socket, fifo: never silently skipped
                yield Record(uri, reject="unreadable", details="not a regular file (broken link or special file)")
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                yield Record(uri, reject="not_an_image_extension", details=f"extension '{path.suffix}' is not an image format")
                continue
            try:
                size = path.stat().st_size
                if size > max_bytes:
                    yield Record(uri, reject="too_large", details=f"{size} bytes > ingest.max_file_bytes {max_bytes}")
                    continue
                content = path.read_bytes()
            except OSError as err:
                yield Record(uri, reject="unreadable", details=f"{err.__class__.__name__}: {err.strerror or err}")
                continue
            if not content:
                yield Record(uri, reject="empty_file", details="0 bytes")
                continue
            yield Record(uri, content, label=class_dir.name, split_hint=split)
    if not found:
        raise InputError(f"{root}: image folder of source '{src.name}' contains no files")


# ---------------------------------------------------------------------------- CIFAR
_CIFAR_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta"},
}


def _cifar_batches(root: Path, variant: str, suffix: str) -> list[tuple[str, Path]]:
    files = _CIFAR_FILES[variant]
    found = [(split, root / f"{name}{suffix}") for split in ("train", "test") for name in files[split]
             if (root / f"{name}{suffix}").is_file()]
    if not found:
        expected = ", ".join(f"{n}{suffix}" for s in ("train", "test") for n in files[s])
        raise InputError(f"{root}: no {variant} batch files found (expected some of: {expected})")
    return found


def _cifar_label_names(root: Path, src: CifarSource) -> list[str] | None:
    if src.layout == "binary":
        name = "batches.meta.txt" if src.variant == "cifar10" else f"{src.label_level}_label_names.txt"
        path = root / name
        return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else None
    path = root / _CIFAR_FILES[src.variant]["meta"]
    if not path.is_file():
        return None
    meta = load_untrusted(path)
    key = b"label_names" if src.variant == "cifar10" else f"{src.label_level}_label_names".encode()
    names = meta.get(key) if isinstance(meta, dict) else None
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None


def read_cifar(src: CifarSource, max_bytes: int) -> Iterator[Record]:
    root = Path(src.path)
    _require_dir(root, f"CIFAR folder of source '{src.name}'")
    names = _cifar_label_names(root, src)
    suffix = ".bin" if src.layout == "binary" else ""
    for split, path in _cifar_batches(root, src.variant, suffix):
        if src.layout == "binary":
            images, labels = _read_cifar_binary(path, src)
        else:
            images, labels = _read_cifar_pickle(path, src)
        for i, (img, lab) in enumerate(zip(images, labels)):
            label = names[lab] if names is not None and 0 <= lab < len(names) else str(int(lab))
            yield Record(f"{path.as_posix()}#{i}", png_bytes(img), label=label, split_hint=split)


def _read_cifar_pickle(path: Path, src: CifarSource) -> tuple[np.ndarray, np.ndarray]:
    batch = load_untrusted(path)
    label_key = b"labels" if src.variant == "cifar10" else f"{src.label_level}_labels".encode()
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise InputError(f"{path}: not a {src.variant} batch (needs keys 'data' and '{label_key.decode()}')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise InputError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(batch[label_key], dtype=np.int64)


def _read_cifar_binary(path: Path, src: CifarSource) -> tuple[np.ndarray, np.ndarray]:
    label_bytes = 1 if src.variant == "cifar10" else 2
    rec = label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % rec:
        raise InputError(f"{path}: size {raw.size} is not a multiple of the {rec}-byte {src.variant} record")
    raw = raw.reshape(-1, rec)
    label_col = 0 if src.variant == "cifar10" or src.label_level == "coarse" else 1
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, label_col].astype(np.int64)


# ---------------------------------------------------------------------------- Parquet
def read_parquet(src: ParquetSource, max_bytes: int, batch_rows: int = 1000) -> Iterator[Record]:
    """Parquet files with an image column: raw bytes, or a Hugging Face ``{bytes, path}`` struct."""
    root = Path(src.path)
    if not root.exists():
        raise InputError(f"{root}: Parquet path of source '{src.name}' does not exist")
    try:
        dataset = ds.dataset(root, format="parquet")
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{root}: cannot read as Parquet ({err})") from None
    wanted = [c for c in (src.image_column, src.label_column, src.path_column, src.split_column) if c]
    for column in wanted:
        if column not in dataset.schema.names:
            raise InputError(f"{root}: Parquet has no column '{column}' (columns: {', '.join(dataset.schema.names)}); "
                             f"set ingest.sources[{src.name}] columns")
    names = src.class_names or _hf_class_names(dataset.schema, src.label_column)
    for fragment in dataset.get_fragments():
        offset = 0
        for batch in fragment.to_batches(columns=wanted, batch_size=batch_rows):
            cols = {c: batch.column(c).to_pylist() for c in wanted}
            for i, image in enumerate(cols[src.image_column]):
                uri = f"{Path(fragment.path).as_posix()}#{offset + i}"
                path_in_row = None
                if isinstance(image, dict):  # Hugging Face Image feature
                    path_in_row = image.get("path")
                    image = image.get("bytes")
                if src.path_column:
                    path_in_row = cols[src.path_column][i]
                label = cols[src.label_column][i] if src.label_column else None
                if isinstance(label, int) and names is not None and 0 <= label < len(names):
                    label = names[label]
                split = cols[src.split_column][i] if src.split_column else None
                extra = json.dumps({"path": path_in_row}) if path_in_row else None
                if not image:
                    yield Record(uri, reject="missing_image_bytes", details=f"column '{src.image_column}' is empty")
                elif len(image) > max_bytes:
                    yield Record(uri, reject="too_large", details=f"{len(image)} bytes > ingest.max_file_bytes {max_bytes}")
                else:
                    yield Record(uri, bytes(image), label=None if label is None else str(label),
                                 split_hint=split, extra=extra)
            offset += batch.num_rows


def _hf_class_names(schema: pa.Schema, label_column: str | None) -> list[str] | None:
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta or not label_column:
        return None
    try:
        feature = json.loads(meta)["info"]["features"][label_column]
        return list(feature["names"]) if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError):
        return None


READERS = {"image_folder": read_image_folder, "cifar": read_cifar, "parquet": read_parquet}


# ---------------------------------------------------------------------------- landing
def _raw_batch(records: list[Record], source, run_id: str, now) -> pa.Table:
    return pa.table({
        "image_id": [sha256(r.content) for r in records],
        "content": pa.array([r.content for r in records], pa.binary()),
        "source": [source.name] * len(records),
        "source_uri": [r.uri for r in records],
        "source_label": [r.label for r in records],
        "split_hint": [r.split_hint for r in records],
        "license": [source.license] * len(records),
        "extra": [r.extra for r in records],
        "fetched_at": pa.array([now] * len(records), pa.timestamp("us", tz="UTC")),
        "run_id": [run_id] * len(records),
    })


def quarantine_rows(records: list[Record], source_table: str, stage: str, run_id: str, now) -> pa.Table:
    return pa.table({
        "source_table": [source_table] * len(records),
        "row_key": [r.uri for r in records],
        "stage": [stage] * len(records),
        "check": [r.reject for r in records],
        "reason": [r.reject for r in records],
        "details": [r.details for r in records],
        "run_id": [run_id] * len(records),
        "quarantined_at": pa.array([now] * len(records), pa.timestamp("us", tz="UTC")),
    })


def land(lake: Lake, source, records: Iterator[Record], run_id: str, batch_rows: int) -> IngestStats:
    """Write ``records`` to ``raw_images`` (and rejections to ``quarantine``) in batches."""
    stats = IngestStats()
    good: list[Record] = []
    bad: list[Record] = []

    def flush():
        now = utcnow()
        if good:
            inserted = lake.merge_insert("raw_images", _raw_batch(good, source, run_id, now), run_id=run_id)
            stats.inserted += inserted
            stats.already_present += len(good) - inserted
            good.clear()
        if bad:
            lake.merge_insert("quarantine", quarantine_rows(bad, f"source:{source.name}", "ingest", run_id, now), run_id=run_id)
            bad.clear()

    bar = progress(desc=f"ingest {source.name}", unit="img")
    for record in records:
        stats.seen += 1
        bar.update()
        if record.reject:
            stats.quarantined += 1
            stats.reasons[record.reject] += 1
            bad.append(record)
        else:
            good.append(record)
        if len(good) + len(bad) >= batch_rows:
            flush()
    flush()
    bar.close()
    return stats


def ingest_source(lake: Lake, source, run_id: str, batch_rows: int, max_bytes: int) -> IngestStats:
    reader = READERS[source.kind]
    return land(lake, source, reader(source, max_bytes), run_id, batch_rows)


def check_sources_exist(sources) -> None:
    """Fail fast, before anything is written, when a configured source path is missing."""
    for src in sources:
        if not os.path.exists(src.path):
            raise InputError(f"{src.path}: path of ingest source '{src.name}' does not exist")


def run(params, only: str | None = None) -> dict:
    """Ingest every configured public source (or just ``only``) and return the stage summary."""
    from sluice.runs import new_run_id, reconcile

    sources = [s for s in params.ingest.sources if only is None or s.name == only]
    if only is not None and not sources:
        names = ", ".join(s.name for s in params.ingest.sources) or "none configured"
        raise InputError(f"no ingest source named '{only}' in params.yaml (sources: {names})")
    check_sources_exist(sources)
    lake = Lake.from_params(params)
    run_id = new_run_id("ingest")
    summary = {}
    for src in sources:
        stats = ingest_source(lake, src, run_id, params.ingest.batch_rows, params.ingest.max_file_bytes)
        summary[src.name] = stats.as_dict() | {"reconcile": reconcile(
            f"ingest:{src.name}", stats.seen, new=stats.inserted, already_present=stats.already_present,
            quarantined=stats.quarantined)}
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.reasons.items())) or "none"
        print(f"[ingest] {src.name}: seen {stats.seen}, new {stats.inserted}, already present {stats.already_present}, "
              f"quarantined {stats.quarantined} ({reasons})")
    return {"run_id": run_id, "sources": summary,
            "versions": {t: lake.version(t) for t in ("raw_images", "quarantine")},
            "rows": {t: lake.count(t) for t in ("raw_images", "quarantine")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage("ingest_public", run)


if __name__ == "__main__":
    main()
