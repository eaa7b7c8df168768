"""Face anonymisation (transform/faces.py): recall and false-positive rate on real photos that ship with
installed packages, and what ``privacy.faces: blur`` costs the clean stage against ``keep``.

Photos (nothing is downloaded):

- positives: the 100 faces of scikit-image's ``lfw_subset`` (Labeled Faces in the Wild crops, 25x25 grey:
  the low-resolution case, scaled up to be looked at), and the two
  whole photos with a person in scikit-image's data (``astronaut``: frontal; ``camera``: the cameraman,
  turned to the side, behind his camera);
- negatives: the 100 non-face crops of ``lfw_subset`` and every other photo bundled in scikit-image's
  data folder and scikit-learn's ``china.jpg`` / ``flower.jpg`` (cat, coffee, rocket, motorcycle, coins,
  text, microscopy, ...).

Each image goes through ``clean_batch`` exactly as the stage runs it and counts as detected when
``faces_blurred`` > 0. Recall = detected positives / positives; false-positive rate = detected
negatives / negatives; measured for ``haar`` at ``clean.size`` 32 (the demo's: the cameraman's face is
then below ``privacy.face_min_px`` and not looked for) and 128 (also with ``face_min_px`` 6), and for
``haar_frontal`` at 128. The cost
of ``blur`` against ``keep`` at size 32 (per-image clean time, best of 3, same images, same run) is
printed as a ratio.

    python benchmarks/faces.py            # 3 timing repeats
    python benchmarks/faces.py --quick    # 1 repeat
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of  # noqa: E402


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def photo_sets() -> tuple[dict[str, dict[str, bytes]], dict[str, dict[str, bytes]]]:
    """(positives, negatives), each {subset: {name: encoded bytes}}."""
    try:
        import skimage.data
    except ImportError:
        sys.exit("benchmarks/faces.py needs scikit-image (pip install -r requirements.lock): it ships the photos")
    import sklearn.datasets

    lfw = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)
    folder = Path(skimage.data.__file__).parent
    people = {"astronaut", "camera"}
    photos = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg")}
    extra = Path(sklearn.datasets.__file__).parent / "images"
    positives = {"lfw faces 25x25": {f"lfw-face-{k}": png(a) for k, a in enumerate(lfw[:100])},
                 "whole photos with a person": {n: b for n, b in photos.items() if Path(n).stem in people}}
    negatives = {"lfw non-faces 25x25": {f"lfw-other-{k}": png(a) for k, a in enumerate(lfw[100:])},
                 "whole photos without a face": {**{n: b for n, b in photos.items() if Path(n).stem not in people},
                                                 **{p.name: p.read_bytes() for p in sorted(extra.glob("*.jpg"))}}}
    return positives, negatives


def detected(items: dict[str, bytes], params) -> set[str]:
    from transform.clean import clean_batch

    table, rejects = clean_batch(list(items), list(items.values()), params.clean, params.privacy)
    rows = table.select(["image_id", "faces_blurred"]).to_pylist()
    return {r["image_id"] for r in rows if r["faces_blurred"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timing repeat")
    args = parser.parse_args()
    from sluice.config import parse_params

    positives, negatives = photo_sets()
    print("face detection at clean time: recall / false-positive rate on photos bundled with scikit-image and "
          "scikit-learn (faces under face_min_px silver pixels are not looked for)")
    for name, size, min_px in (("haar", 32, 4), ("haar", 128, 4), ("haar", 128, 6), ("haar_frontal", 128, 4)):
        p = parse_params({"clean": {"size": size}, "privacy": {"faces": "blur", "face_detector": name,
                                                               "face_min_px": min_px}}, "bench.yaml")
        found_pos = {s: detected(items, p) for s, items in positives.items()}
        found_neg = {s: detected(items, p) for s, items in negatives.items()}
        n_pos = sum(len(v) for v in positives.values())
        n_neg = sum(len(v) for v in negatives.values())
        tp, fp = sum(len(v) for v in found_pos.values()), sum(len(v) for v in found_neg.values())
        print(f"  {name:13s} clean.size {size:3d} face_min_px {min_px}: recall {tp}/{n_pos} = {tp / n_pos:.3f}   false-positive rate "
              f"{fp}/{n_neg} = {fp / n_neg:.3f}")
        for subset, items in positives.items():
            missed = sorted(set(items) - found_pos[subset])
            print(f"    recall  {subset:28s} {len(found_pos[subset])}/{len(items)}"
                  + (f"  missed: {', '.join(missed)}" if 0 < len(missed) <= 3 else ""))
        for subset, items in negatives.items():
            print(f"    FPR     {subset:28s} {len(found_neg[subset])}/{len(items)}"
                  + (f"  hits: {', '.join(sorted(found_neg[subset]))}" if found_neg[subset] else ""))

    # cost: the same images cleaned with keep and with blur (whole photos + LFW crops, as a crawl mixes them)
    items = {k: v for group in (*positives.values(), *negatives.values()) for k, v in group.items()}
    from transform.clean import clean_batch

    repeat = 1 if args.quick else 3
    seconds = {}
    for mode in ("keep", "blur"):
        p = parse_params({"clean": {"size": 32}, "privacy": {"faces": mode}}, "bench.yaml")
        clean_batch(list(items)[:2], list(items.values())[:2], p.clean, p.privacy)  # load the detector first
        seconds[mode] = best_of(lambda: clean_batch(list(items), list(items.values()), p.clean, p.privacy), repeat)
    n = len(items)
    print(f"clean_batch on {n} images: keep {1000 * seconds['keep'] / n:.2f} ms/img, blur (haar) "
          f"{1000 * seconds['blur'] / n:.2f} ms/img")
    print(f"blur vs keep: {seconds['blur'] / seconds['keep']:.2f}x the clean time of keep (same images, same run; "
          "> 1 is slower)")


if __name__ == "__main__":
    main()
