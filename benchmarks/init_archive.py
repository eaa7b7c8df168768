"""Extracting an archived image folder for ``sluice init`` (checked, budgeted) vs GNU tar, a bare zipfile and py7zr.

Imagenette's / Food-101's shape: class folders of JPEG photos in a ``.tar.gz`` and the same folder in a ``.zip``
and a ``.7z`` (Kaggle's CIFAR-10 ships ``train.7z``).
``sluice.init_archive.extract`` (every member through the ``data`` filter, sizes counted against the disk's free
space, a progress line every 20,000 files) against, as named baselines in the same run, ``tar -xzf`` (GNU tar, no
Python) for the ``.tar.gz``, ``zipfile.ZipFile.extractall`` (no checks) for the ``.zip`` and a bare
``py7zr.SevenZipFile.extractall`` for the ``.7z``; and the ``.7z`` against the ``.tar.gz`` through ``sluice init``
(what the format costs). Best of ``--repeat``,
each into a fresh folder.

    python benchmarks/init_archive.py [--files 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def write(root: Path, files: int) -> tuple[Path, Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    members = {}
    for i in range(files):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(out, "JPEG", quality=85)
        members[f"imagenette/train/n{i % 10:08d}/{i:06d}.JPEG"] = out.getvalue()
    with tarfile.open(root / "imagenette.tgz", "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "imagenette.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    import py7zr

    with py7zr.SevenZipFile(root / "imagenette.7z", "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return root / "imagenette.tgz", root / "imagenette.zip", root / "imagenette.7z"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from contextlib import redirect_stdout

    from sluice.init_archive import extract

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tgz, zipped, seven = write(tmp, args.files)
        runs = iter(range(10_000))

        def ours(archive: Path) -> None:
            with redirect_stdout(io.StringIO()):
                folder = extract(archive, tmp / f"proj{next(runs)}", archive.name)
            assert sum(1 for p in folder.rglob("*.JPEG")) == args.files
            shutil.rmtree(folder.parent.parent)

        def gnu_tar() -> None:
            dest = tmp / f"tar{next(runs)}"
            dest.mkdir()
            subprocess.run(["tar", "-xzf", str(tgz), "-C", str(dest)], check=True)
            shutil.rmtree(dest)

        def bare_zip() -> None:
            dest = tmp / f"zip{next(runs)}"
            with zipfile.ZipFile(zipped) as zf:
                zf.extractall(dest)
            shutil.rmtree(dest)

        def bare_7z() -> None:
            import py7zr

            dest = tmp / f"7z{next(runs)}"
            with py7zr.SevenZipFile(seven) as z:
                z.extractall(dest)
            shutil.rmtree(dest)

        t_tgz, t_tar = best_of(lambda: ours(tgz), args.repeat), best_of(gnu_tar, args.repeat)
        t_7z, t_bare7 = best_of(lambda: ours(seven), args.repeat), best_of(bare_7z, args.repeat)
        t_zip, t_bare = best_of(lambda: ours(zipped), args.repeat), best_of(bare_zip, args.repeat)
        mb = tgz.stat().st_size / 1e6
    print(f"{args.files:,} JPEGs in class folders ({mb:.0f} MB as .tar.gz)")
    print(ratio_line("sluice init extracting the .tar.gz", t_tgz, "tar -xzf", t_tar))
    print(ratio_line("sluice init extracting the .zip", t_zip, "zipfile.extractall without checks", t_bare))
    print(ratio_line("sluice init extracting the .7z", t_7z, "py7zr extractall without checks", t_bare7))
    print(ratio_line("sluice init extracting the .7z", t_7z, "sluice init extracting the .tar.gz", t_tgz))


if __name__ == "__main__":
    main()
