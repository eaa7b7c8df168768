"""Landing TFRecord files of images vs the same images as a folder of files.

TensorFlow Datasets' prepared shape: ``<name>-train.tfrecord-0000N-of-0000M`` shards of ``tf.train.Example`` records
(``image``: the encoded PNG, ``label``, ``id``) and, as the named baseline, the class folders the same PNG files would
be in a user's folder (``train/<class>/<n>.png``), each landed by ``sluice ingest`` (the ``tfrecord`` and
``image_folder`` connectors) into a fresh lake in the same run. Both land the same bytes with their labels, so the
ratio is what decoding the records' framing and protobuf in Python costs against listing and reading files (the
folder's reads run on threads; the records are read in order by one).

    python benchmarks/ingest_tfrecord.py [--rows 10000] [--shards 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line
from ingest_pixel_csv import digit, land
from tests.ingest.sources.test_tfrecord import serialize, write as write_records


def write(root: Path, rows: int, shards: int) -> None:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    records = [[] for _ in range(shards)]
    for k in range(10):
        (root / "folder" / "train" / str(k)).mkdir(parents=True)
    for i in range(rows):
        label = int(rng.integers(0, 10))
        buf = io.BytesIO()
        Image.fromarray(digit(rng)).save(buf, format="PNG", optimize=False)
        (root / "folder" / "train" / str(label) / f"{i}.png").write_bytes(buf.getvalue())
        records[i % shards].append(serialize({"id": [str(i).encode()], "image": [buf.getvalue()], "label": [label]}))
    for n, shard in enumerate(records):
        write_records(root / "tfds" / f"digits-train.tfrecord-{n:05d}-of-{shards:05d}", shard)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.rows, args.shards)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            path = tmp / ("tfds" if kind == "tfrecord" else "folder")
            counts[kind] = land({"name": "s", "kind": kind, "path": str(path)}, tmp / f"lake-{next(lakes)}")
        t_records = best_of(lambda: run("tfrecord"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.rows
    assert counts == {"tfrecord": n, "image_folder": n}, counts
    print(f"{n:,} PNG images of 28x28 in {args.shards} shards: TFRecord {t_records:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land TFRecord files of images", t_records, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
