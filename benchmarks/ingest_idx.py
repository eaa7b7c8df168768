"""Landing MNIST-style IDX files vs the same images as a folder of PNGs.

MNIST's shape by default: 60,000 training and 10,000 test images of 28x28 grey levels with their labels,
written as gzipped IDX files (``train-images-idx3-ubyte.gz`` ...) and, as the named baseline, as the
class folders of PNGs the same images would be in a user's folder (``train/<label>/<n>.png``), each
landed by ``sluice ingest`` (the ``idx`` and ``image_folder`` connectors) into a fresh lake in the same
run. Both end as rows of ``raw_images`` (a PNG per image, its label and split), so the ratio is what
reading the IDX files and encoding each image as a PNG costs against listing and reading 70,000 small
files already encoded. The images are digit-like strokes on black (see :func:`strokes`).

    python benchmarks/ingest_idx.py [--train 60000] [--test 10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()


def strokes(rng) -> np.ndarray:
    """A digit-like image: a few bright strokes on black (as MNIST's, mostly zeros; PNG and gzip compress
    them as they do real digits, unlike random levels, which cost the PNG encoder ~3x more)."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (28, 28))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 5))):
        draw.line([tuple(rng.integers(4, 24, 2).tolist()) for _ in range(3)], fill=int(rng.integers(180, 256)),
                  width=int(rng.integers(2, 4)))
    return np.asarray(im)


def write(root: Path, train: int, test: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for prefix, split, n in (("train", "train", train), ("t10k", "test", test)):
        images = np.stack([strokes(rng) for _ in range(n)])
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (root / "idx").mkdir(parents=True, exist_ok=True)
        (root / "idx" / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images), 6))
        (root / "idx" / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels), 6))
        for k in range(10):
            (root / "folder" / split / str(k)).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, "PNG", optimize=False)
            (root / "folder" / split / str(label) / f"{i}.png").write_bytes(buf.getvalue())


def land(source: dict, lake: Path) -> int:
    from ingest import public
    from sluice.config import Params

    params = Params.model_validate({"lake": {"root": str(lake)}, "ingest": {"sources": [source]}})
    return public.run(params)["sources"][source["name"]]["inserted"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=60_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.train, args.test)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            counts[kind] = land({"name": "m", "kind": kind, "path": str(tmp / ("idx" if kind == "idx" else "folder"))},
                                tmp / f"lake-{next(lakes)}")
        t_idx = best_of(lambda: run("idx"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.train + args.test
    assert counts == {"idx": n, "image_folder": n}, counts
    print(f"{n:,} images of 28x28: IDX files {t_idx:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land MNIST-style IDX files", t_idx, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
