"""Landing a NumPy archive of images vs the same images as a folder of PNGs.

Keras' ``mnist.npz`` shape: ``x_train`` (N x 28 x 28 bytes, digit-like strokes) and ``y_train`` and, as the named
baseline, the class folders of PNGs the same images would be in a user's folder (``train/<digit>/<n>.png``), each
landed by ``sluice ingest`` (the ``npz`` and ``image_folder`` connectors) into a fresh lake in the same run. Both
end as rows of ``raw_images`` (a PNG per image, its label and split), so the ratio is what encoding each array
as a PNG costs against listing and reading files already encoded. Keras' file holds 60,000 + 10,000 images;
the default is smaller.

    python benchmarks/ingest_npz.py [--rows 10000] [--repeat 2]
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
    from PIL import Image

    rng = np.random.default_rng(0)
    images = np.stack([digit(rng) for _ in range(rows)])
    labels = rng.integers(0, 10, rows).astype(np.uint8)
    (root / "npz").mkdir(parents=True)
    np.savez(root / "npz" / "mnist.npz", x_train=images, y_train=labels)
    for k in range(10):
        (root / "folder" / "train" / str(k)).mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / "folder" / "train" / str(label) / f"{i}.png", optimize=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.rows)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            path = tmp / ("npz" / Path("mnist.npz") if kind == "npz" else "folder")
            counts[kind] = land({"name": "s", "kind": kind, "path": str(path)}, tmp / f"lake-{next(lakes)}")
        t_npz = best_of(lambda: run("npz"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.rows
    assert counts == {"npz": n, "image_folder": n}, counts
    print(f"{n:,} images of 28x28: a NumPy archive {t_npz:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land a NumPy archive of images", t_npz, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
