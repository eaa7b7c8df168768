"""Landing SVHN's MATLAB files vs the same images as a folder of PNGs.

SVHN's shape: ``train_32x32.mat`` and ``test_32x32.mat`` (``X`` 32 x 32 x 3 x N bytes, ``y`` 1..10) with
colour digit-like images, and, as the named baseline, the class folders of PNGs the same images would be
in a user's folder (``train/<digit>/<n>.png``), each landed by ``sluice ingest`` (the ``svhn`` and
``image_folder`` connectors) into a fresh lake in the same run. Both end as rows of ``raw_images`` (a PNG
per image, its label and split), so the ratio is what reading the MATLAB arrays and encoding each image as
a PNG costs against listing and reading the small files already encoded. SVHN's full size is 73,257 +
26,032 images (``--train 73257 --test 26032``); the default is a quarter of it.

    python benchmarks/ingest_svhn.py [--train 20000] [--test 5000] [--repeat 2]
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


def digit(rng) -> np.ndarray:
    """A colour digit-like image: a few thick strokes of one colour on a background of another (house numbers
    on a wall), lightly noisy, as real photo crops compress."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (32, 32), tuple(rng.integers(0, 256, 3).tolist()))
    draw = ImageDraw.Draw(im)
    colour = tuple(rng.integers(0, 256, 3).tolist())
    for _ in range(int(rng.integers(2, 4))):
        draw.line([tuple(rng.integers(6, 26, 2).tolist()) for _ in range(3)], fill=colour, width=int(rng.integers(3, 6)))
    noisy = np.asarray(im).astype(np.int16) + rng.integers(-6, 7, (32, 32, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def write(root: Path, train: int, test: int) -> None:
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        images = np.stack([digit(rng) for _ in range(n)])
        labels = rng.integers(1, 11, n).astype(np.uint8)  # 10 is the digit 0
        (root / "svhn").mkdir(parents=True, exist_ok=True)
        savemat(root / "svhn" / f"{split}_32x32.mat", {"X": np.moveaxis(images, 0, 3), "y": labels.reshape(-1, 1)})
        for k in range(10):
            (root / "folder" / split / str(k)).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, "PNG", optimize=False)
            (root / "folder" / split / str(label % 10) / f"{i}.png").write_bytes(buf.getvalue())


def land(source: dict, lake: Path) -> int:
    from ingest import public
    from sluice.config import Params

    params = Params.model_validate({"lake": {"root": str(lake)}, "ingest": {"sources": [source]}})
    return public.run(params)["sources"][source["name"]]["inserted"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--test", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp, args.train, args.test)
        counts, lakes = {}, iter(range(1000))

        def run(kind: str) -> None:  # a fresh lake each time (a writer keeps its table's key index in memory)
            counts[kind] = land({"name": "s", "kind": kind, "path": str(tmp / ("svhn" if kind == "svhn" else "folder"))},
                                tmp / f"lake-{next(lakes)}")
        t_svhn = best_of(lambda: run("svhn"), args.repeat)
        t_folder = best_of(lambda: run("image_folder"), args.repeat)
    n = args.train + args.test
    assert counts == {"svhn": n, "image_folder": n}, counts
    print(f"{n:,} images of 32x32x3: SVHN .mat files {t_svhn:.2f}s, a folder of PNGs {t_folder:.2f}s")
    print(ratio_line("land SVHN's .mat files", t_svhn, "the same images as a folder of PNGs", t_folder))


if __name__ == "__main__":
    main()
