"""Decoding photos that embed a Display P3 profile (converted to sRGB) vs the same photos without a profile.

Phones write Display P3, so a real photo collection carries ICC profiles, and clean converts each such image's pixels
to sRGB (``sluice/colour.py``: LittleCMS through Pillow, one cached transform a profile). ``--photos`` photo-like
JPEGs (``--side`` px on the long edge, sensor noise) are decoded by ``sluice.imaging.decode`` to 224 px, once tagged
with a Display P3 profile and once bare (the named baseline, the same bytes of pixels), in one process, best of
``--repeat``. The profile is built by the tests' ``rgb_profile`` (``tests/sluice/test_colour.py``: no ICC file ships).

    python benchmarks/colour.py [--photos 200] [--side 1600] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests" / "sluice"))
from _common import ratio_line


def photos(count: int, side: int, profile: bytes | None) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(count):
        y, x = np.mgrid[0:side * 3 // 4, 0:side].astype(np.float32) / side
        scene = np.stack([120 + 90 * np.sin(6 * x + k), 110 + 80 * np.cos(5 * y - k), 90 + 60 * np.sin(4 * (x + y))], -1)
        scene += rng.normal(0, 6, scene.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8)).save(
            buf, "JPEG", quality=90, **({"icc_profile": profile} if profile else {}))
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--side", type=int, default=1600)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from sluice.imaging import Geometry, Limits, decode
    from test_colour import rgb_profile

    tagged, bare = photos(args.photos, args.side, rgb_profile("Display P3")), photos(args.photos, args.side, None)
    geometry = Geometry(224, 224)

    def run(files):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            out = [decode(f, geometry, Limits()).pixels for f in files]
            best = min(best, time.process_time() - started)
        return best, out

    t_tagged, a = run(tagged)
    t_bare, b = run(bare)
    moved = float(np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b)]))
    print(f"{args.photos} JPEGs of {args.side}x{args.side * 3 // 4} to 224 px: Display P3 tagged {t_tagged:.2f} CPU s, "
          f"bare {t_bare:.2f} CPU s; the conversion moved pixels by {moved:.1f} grey levels on average")
    print(ratio_line("decode photos tagged Display P3, converted to sRGB", t_tagged,
                     "the same photos without a profile", t_bare, target=0.8))


if __name__ == "__main__":
    main()
