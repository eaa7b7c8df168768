"""`dvc repro` with nothing changed: an image folder tracked by its digest (stage list_sources) vs by DVC.

Two throwaway DVC projects over the same folder: in one a stage depends on the folder itself (what
Sluice's pipeline did before: DVC hashes and stats every file through its state database); in the
other an ``always_changed`` stage writes the folder's digest (``ingest/source_listing.py``) and the
stage depends on that file. Each is reproduced once (cold: every file hashed), then ``dvc repro``
is timed with nothing changed (warm, best of 3), and once more after every file's mtime moved (a
copy or restore: DVC rehashes, so does the listing; neither reruns the stage). Whole commands, the
interpreter and DVC start included: what a user waits for. The folder is CIFAR-10 when present
(``--folder``), otherwise ``--files`` synthetic JPEGs.

    python benchmarks/source_listing.py [--folder ~/data/cifar10] [--files 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line  # noqa: E402

from sluice import paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).parent / "dvc"
def synthetic(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:06d}.jpg", quality=90)
    return root


def project(root: Path, folder: Path, by_listing: bool) -> Path:
    root.mkdir(parents=True)
    run = lambda *a: subprocess.run(a, cwd=root, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run(str(DVC), "init", "-q")
    stages = {"use": {"cmd": "echo used > used.txt", "outs": ["used.txt"],
                      "deps": [paths.SOURCE_LISTING if by_listing else str(folder)]}}
    if by_listing:  # the real stage, reading its folder from a params.yaml as in a project
        stages["list_sources"] = {"cmd": f"{sys.executable} -m ingest.source_listing", "params": ["ingest.sources"],
                                  "outs": [paths.SOURCE_LISTING], "always_changed": True}
        source = {"name": "photos", "kind": "image_folder", "path": str(folder)}
        (root / "params.yaml").write_text(yaml.safe_dump({"ingest": {"sources": [source]}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return root


def repro(root: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    res = subprocess.run([str(DVC), "repro"], cwd=root, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"dvc repro failed in {root}: {res.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path.home() / "data" / "cifar10")
    ap.add_argument("--files", type=int, default=20000, help="synthetic files when --folder is absent")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.folder if args.folder.is_dir() else synthetic(tmp / "photos", args.files)
        n = sum(len(f) for _, _, f in os.walk(folder))
        print(f"folder: {folder} ({n:,} files)")
        dvc_side, ours = project(tmp / "by_dvc", folder, False), project(tmp / "by_listing", folder, True)
        cold = repro(dvc_side), repro(ours)
        warm = min(repro(dvc_side) for _ in range(3)), min(repro(ours) for _ in range(3))
        for path in folder.rglob("*"):
            os.utime(path)
        touched = repro(dvc_side), repro(ours)
        for p in (dvc_side, ours):
            shutil.rmtree(p, ignore_errors=True)
    print(ratio_line("first dvc repro (every file hashed)", cold[1], "DVC hashing the folder", cold[0]))
    print(ratio_line("dvc repro, nothing changed", warm[1], "DVC's state over the folder", warm[0]))
    print(ratio_line("dvc repro after every mtime moved", touched[1], "DVC rehashing the folder", touched[0]))


if __name__ == "__main__":
    main()
