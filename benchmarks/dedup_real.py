"""Dedup on real photographs, no edits made up: precision by a bound that needs no labelling.

CIFAR-10's 60,000 photos (``~/data/cifar10``, the layout of the CIFAR-10-images repository:
``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``) hold real near-duplicates (the same photo shifted,
cropped, recoloured, mirrored, squashed; frames of one series) and many look-alikes (ships on a flat sea,
planes on one runway). A pair whose two images carry different classes is certainly two different
photographs (CIFAR's own wrong labels aside, well under 1%), so the share of such pairs among the accepted
ones is a floor under the share of false pairs, measured without looking at a single image.

Sluice's near-duplicate pass at the params.yaml defaults (thumbnails, both hash signals, search, pixel
check: the stage's ``near_edges``) against the named baseline, ``imagehash.phash`` + brute-force Hamming
at the smallest threshold that accepts at least as many pairs; for each: pairs, pairs joining two classes,
test images paired with a training image. Skipped, with a line saying so, when the photos are absent.

    python benchmarks/dedup_real.py [--root ~/data/cifar10] [--limit 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def load(root: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3, class index, is-test) of every JPEG under root/{train,test}/<class>/."""
    from PIL import Image

    files = sorted(root.glob("*/*/*.jpg"))
    if limit:
        files = [files[k] for k in np.linspace(0, len(files) - 1, limit).astype(int)]
    classes = sorted({f.parent.name for f in files})
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32))) for f in files])
    label = np.array([classes.index(f.parent.name) for f in files])
    return images, label, np.array([f.parent.parent.name == "test" for f in files])


def describe(name: str, i: np.ndarray, j: np.ndarray, label: np.ndarray, test: np.ndarray) -> float:
    two = label[i] != label[j]
    crossing = test[i] != test[j]
    leaked = len(np.unique(np.where(test[i], i, j)[crossing]))
    share = two.mean() if len(i) else 0.0
    print(f"  {name}: {len(i):,} pairs, {int(two.sum()):,} join two classes ({share:.2%}); "
          f"{leaked:,} test images paired with a training image")
    return float(share)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(os.path.expanduser("~/data/cifar10")))
    ap.add_argument("--limit", type=int, default=None, help="evenly spaced photos to use (default: all)")
    args = ap.parse_args()
    if not (args.root / "train").is_dir():
        print(f"skipped: no CIFAR-10 photos at {args.root} (see ../shared/DATASETS.md)")
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from dedup import _baseline, _ours

    from sluice.config import DedupParams

    images, label, test = load(args.root, args.limit)
    print(f"dedup on {len(images):,} real photos ({args.root}): pairs joining two classes are certainly false")
    t0 = time.perf_counter()
    i, j, _, _ = _ours(images, DedupParams())
    ours_s = time.perf_counter() - t0
    ours = describe("sluice dedup (params.yaml defaults)", i, j, label, test)
    t0 = time.perf_counter()
    bi, bj, dist, _ = _baseline(images, 16)
    base_s = time.perf_counter() - t0
    bits = next((b for b in range(17) if (dist <= b).sum() >= len(i)), 16)
    if bits:
        describe(f"imagehash.phash + brute force, Hamming <= {bits - 1} (fewer pairs)", bi[dist < bits],
                 bj[dist < bits], label, test)
    keep = dist <= bits
    base = describe(f"imagehash.phash + brute force, Hamming <= {bits} (the least reaching as many pairs)",
                    bi[keep], bj[keep], label, test)
    ratio = f"{base / ours:.1f}x" if ours else "sluice: none"
    print(f"pairs joining two classes, share: baseline / sluice = {ratio} (higher: sluice accepts fewer certain "
          f"mistakes); wall {ours_s:.0f} s vs {base_s:.0f} s")


if __name__ == "__main__":
    main()
