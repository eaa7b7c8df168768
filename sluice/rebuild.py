"""``sluice dataset rebuild``: rebuild a snapshot from the lake by Delta time travel, from its manifest alone.

Everything a rebuild needs is in the snapshot manifest: the Delta version of ``dataset`` and
``images`` that were read, the class order, the image shape and the shard size. The rebuild reads
those versions and lays the rows out in the snapshot format (:mod:`sluice.snapshot`): per split,
the ``dataset`` rows that have pixels of the recorded shape, sorted by ``image_id``. It does not run
the export stage and does not consult params, so a rebuild checks the export independently: equal
content hashes mean the lake still holds exactly the data the snapshot was made from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.errors import InputError
from sluice.lake_health import require_readable
from sluice.snapshot import SPLITS, SplitArrays, write_snapshot

# manifest keys the snapshot writer computes itself; every other key is carried over as recorded
_COMPUTED = {"format", "classes", "splits", "image_shape", "content_hash"}


def rebuild(lake, manifest: dict, out_dir: Path | str) -> dict:
    """Write the snapshot ``manifest`` describes into ``out_dir`` and return the new manifest."""
    versions = manifest.get("table_versions") or {}
    if versions.get("dataset") is None or versions.get("images") is None:
        raise InputError("manifest has no table_versions for dataset and images (not written by the export stage?)")
    shape = tuple(int(x) for x in manifest.get("image_shape") or ())
    classes = manifest.get("classes") or []
    if len(shape) != 3 or not classes:
        raise InputError("manifest has no image_shape or classes (not written by the export stage?)")
    for table in ("dataset", "images"):
        require_readable(lake, table, int(versions[table]))
    members = lake.read("dataset", ["image_id", "split", "class_index", "weight"], version=int(versions["dataset"]))
    pixels = _pixels(lake, int(versions["images"]), members.column("image_id"), int(np.prod(shape)))
    splits = {}
    for split in SPLITS:
        rows = members.filter(pc.equal(members.column("split"), split))
        rows = rows.filter(pc.is_in(rows.column("image_id").cast(pa.string()), value_set=pa.array(sorted(pixels))))
        rows = rows.sort_by("image_id")
        if rows.num_rows == 0 and split != "train":
            continue
        ids = rows.column("image_id").cast(pa.string()).to_pylist()
        images = np.frombuffer(b"".join(pixels[i] for i in ids), np.uint8).reshape(len(ids), *shape)
        splits[split] = SplitArrays(images, rows.column("class_index").to_numpy().astype(np.int64),
                                    rows.column("weight").to_numpy().astype(np.float32), ids)
    shard_rows = int(((manifest.get("params") or {}).get("export") or {}).get("shard_rows") or 8192)
    extra = {k: v for k, v in manifest.items() if k not in _COMPUTED}
    return write_snapshot(out_dir, splits, classes, extra, shard_rows=shard_rows)


def _pixels(lake, version: int, wanted_ids: pa.ChunkedArray, nbytes: int) -> dict[str, bytes]:
    """image_id -> pixel bytes of the wanted images whose pixels have the recorded size, in bounded batches."""
    from sluice.membership import Members

    wanted = Members(wanted_ids.cast(pa.string()).to_pylist())
    found: dict[str, bytes] = {}
    for batch in lake.batches("images", ["image_id", "pixels"], 4096, version):
        ids = batch.column("image_id").cast(pa.string())
        keep = pc.and_(wanted.mask(ids), pc.equal(pc.binary_length(batch.column("pixels")), nbytes))
        found.update(zip(ids.filter(keep).to_pylist(), batch.column("pixels").filter(keep).to_pylist()))
    return found
