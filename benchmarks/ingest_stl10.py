"""Landing STL-10's binary files vs the same images as a folder of PNGs.

STL-10's shape: ``train_X.bin`` / ``test_X.bin`` (96 x 96 x 3 bytes an image, each channel column by column)
beside ``train_y.bin`` / ``test_y.bin`` (1..10), with photo-like images (smooth colour fields, an object-like
blob, sensor noise), and, as the named baseline, the class folders of PNGs the same images would be in a
user's folder (``train/<class>/<n>.png``), each landed by ``sluice ingest`` (the ``stl10`` and
``image_folder`` connectors) into a fresh lake in the same run. Both end as rows of ``raw_images`` (a PNG per
image, its label and split), so the ratio is what reading the raw arrays and encoding each image as a PNG
costs against listing and reading files already encoded. STL-10's labelled size is 5,000 + 8,000 images
(``--train 5000 --test 8000``); the default is smaller.

    python benchmarks/ingest_stl10.py [--train 3000] [--test 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line

NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def photo(rng) -> np.ndarray:
    """A photo-like 96 x 96 image: a colour gradient, a soft blob of another colour, sensor noise."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    a, b, c = (rng.integers(0, 256, 3) for _ in range(3))
    field = a * (1 - x[..., None]) + b * x[..., None] * (1 - y[..., None] / 2)
    cy, cx, r = rng.uniform(20, 76), rng.uniform(20, 76), rng.uniform(10, 30)
    blob = np.exp(-((y * 95 - cy) ** 2 + (x * 95 - cx) ** 2) / (2 * r * r))[..., None]
    image = field * (1 - blob) + c * blob + rng.normal(0, 4, (96, 96, 3))
    return image.clip(0, 255).astype(np.uint8)


def write(root: Path, train: int, test: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "stl10_binary").mkdir(parents=True)
    for split, n in (("train", train), ("test", test)):
        images = np.stack([photo(rng) for _ in range(n)])
        labels = rng.integers(1, 11, n).astype(np.uint8)
        (root / "stl10_binary" / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())
        (root / "stl10_binary" / f"{split}_y.bin").write_bytes(labels.tobytes())
        for name in NAMES:
            (root / "folder" / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, "PNG", optimize=False)
            (root / "folder" / split / NAMES[label - 1] / f"{i}.png").write_bytes(buf.getvalue())


def land(source: dict, lake: Path) -> int:
    from ingest import public
    from sluice.config import Params

    params = Params.model_validate({"lake": {"root": str(lake)}, "ingest": {"sources": [source]}})
    return public.run(params)["sources"][source["name"]]["inserted"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=3_000)
    ap.add_argument("--test", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.train, args.test)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            path = tmp / ("stl10_binary" if kind == "stl10" else "folder")
            counts[kind] = land({"name": "s", "kind": kind, "path": str(path)}, tmp / f"lake-{next(lakes)}")
        t_stl = best_of(lambda: run("stl10"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.train + args.test
    assert counts == {"stl10": n, "image_folder": n}, counts
    print(f"{n:,} images of 96x96x3: STL-10 .bin files {t_stl:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land STL-10's .bin files", t_stl, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
