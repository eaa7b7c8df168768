"""Landing an HDF5 file of images vs the same images as a folder of PNGs.

PatchCamelyon's / Galaxy10's shape: a dataset ``x`` of N x 28 x 28 bytes (digit-like strokes) beside ``y`` in one
``.h5`` file, chunked by image as h5py writes such sets, and, as the named baseline, the class folders of PNGs the
same images would be in a user's folder, each landed by ``sluice ingest`` (the ``hdf5`` and ``image_folder``
connectors) into a fresh lake in the same run. Both end as rows of ``raw_images`` (a PNG per image, its label and
split), so the ratio is what reading blocks of the dataset and encoding each image costs against listing and
reading files already encoded (as ``benchmarks/ingest_npz.py`` measures for NumPy archives); and the same PNG
files' bytes packed one an item into a variable-length dataset (``images`` beside ``labels``), landed as they are.

    python benchmarks/ingest_hdf5.py [--rows 10000] [--repeat 2]
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


def write(root: Path, rows: int) -> None:
    import h5py
    from PIL import Image

    rng = np.random.default_rng(0)
    images = np.stack([digit(rng) for _ in range(rows)])
    labels = rng.integers(0, 10, rows).astype(np.uint8)
    (root / "h5").mkdir(parents=True)
    with h5py.File(root / "h5" / "digits_train.h5", "w") as f:
        f.create_dataset("x", data=images, chunks=(1, *images.shape[1:]))
        f.create_dataset("y", data=labels)
    for k in range(10):
        (root / "folder" / "train" / str(k)).mkdir(parents=True)
    encoded = []
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / "folder" / "train" / str(label) / f"{i}.png", optimize=False)
        encoded.append((root / "folder" / "train" / str(label) / f"{i}.png").read_bytes())
    (root / "h5enc").mkdir()
    with h5py.File(root / "h5enc" / "digits_train.h5", "w") as f:  # the same PNG files' bytes, an item each
        data = f.create_dataset("images", (rows,), dtype=h5py.vlen_dtype(np.uint8))
        for i, raw in enumerate(encoded):
            data[i] = np.frombuffer(raw, np.uint8)
        f.create_dataset("labels", data=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.rows)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str, folder: str) -> None:  # a fresh lake each time (a writer keeps its key index in memory)
            counts[folder] = land({"name": "s", "kind": kind, "path": str(tmp / folder)}, tmp / f"lake-{next(lakes)}")
        t_h5 = best_of(lambda: run("hdf5", "h5"), args.repeat)
        t_enc = best_of(lambda: run("hdf5", "h5enc"), args.repeat)
        t_folder = best_of(lambda: run("image_folder", "folder"), args.repeat)
    n = args.rows
    assert counts == {"h5": n, "h5enc": n, "folder": n}, counts
    print(f"{n:,} images of 28x28: an HDF5 file of arrays {t_h5:.2f}s, of encoded PNGs {t_enc:.2f}s, "
          f"a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land an HDF5 file of images", t_h5, "the same images as a folder of PNGs", t_folder))
    print(ratio_line("land an HDF5 file of encoded PNGs", t_enc, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
