"""Landing WebDataset shards of images vs the same images as a folder of files.

img2dataset's / timm's shape: ``<name>-train-000N.tar`` shards of samples (``<key>.png`` beside ``<key>.cls``) and,
as the named baseline, the class folders the same PNG files would be in a user's folder (``train/<class>/<n>.png``),
each landed by ``sluice ingest`` (the ``webdataset`` and ``image_folder`` connectors) into a fresh lake in the same
run. Both land the same bytes with their labels, so the ratio is what streaming a few tar files costs against
listing and opening many small files (the folder's reads run on threads; a shard is read in order by one).

    python benchmarks/ingest_webdataset.py [--rows 10000] [--shards 4] [--repeat 2]
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
from tests.ingest.sources.test_webdataset import shard


def write(root: Path, rows: int, shards: int) -> None:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    members: list[list] = [[] for _ in range(shards)]
    for k in range(10):
        (root / "folder" / "train" / str(k)).mkdir(parents=True)
    for i in range(rows):
        label = int(rng.integers(0, 10))
        buf = io.BytesIO()
        Image.fromarray(digit(rng)).save(buf, format="PNG", optimize=False)
        (root / "folder" / "train" / str(label) / f"{i}.png").write_bytes(buf.getvalue())
        members[i % shards] += [(f"{i:07d}.png", buf.getvalue()), (f"{i:07d}.cls", str(label).encode())]
    for n, part in enumerate(members):
        shard(root / "wds" / f"digits-train-{n:04d}.tar", part)


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
            path = tmp / ("wds" if kind == "webdataset" else "folder")
            counts[kind] = land({"name": "s", "kind": kind, "path": str(path)}, tmp / f"lake-{next(lakes)}")
        t_shards = best_of(lambda: run("webdataset"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.rows
    assert counts == {"webdataset": n, "image_folder": n}, counts
    print(f"{n:,} PNG images of 28x28 in {args.shards} shards: WebDataset {t_shards:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land WebDataset shards of images", t_shards, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
