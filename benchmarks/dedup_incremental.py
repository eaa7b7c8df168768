"""Dedup after a new batch lands: the incremental run (only pairs with a new image searched) vs a full pass.

A synthetic image folder of ``--images`` files (benchmarks/scale.py's scenes, copies, bad files) is
ingested, cleaned and deduplicated; then ``--new`` files land in it (a tenth of them re-encoded,
resized copies of earlier images, the rest new scenes), ingest and clean run again, and the dedup
stage runs twice on the same lake, each as its own process as ``dvc repro`` runs it: first
incremental (the default, building on the stored ``image_groups``), then the named baseline, a full
pass over every image (``dedup.incremental: false``). Both must give the same groups. Between them, the
incremental run again on the same stored groups with their window codes cleared: the incremental run as
it was before the codes were kept (every image's windows hashed), the baseline of the codes' figure.
Wall times, same run, same machine.

    python benchmarks/dedup_incremental.py                          # 30,000 images + 300 new
    python benchmarks/dedup_incremental.py --images 100000 --new 1000
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line  # noqa: E402
from scale import make_images, params_for, run_stage  # noqa: E402

COLUMNS = ["image_id", "dup_group", "is_canonical", "match_kind", "match_score", "match_with"]


def add_batch(images: Path, new: int, seed: int) -> int:
    """``new`` files into the folder: re-encoded copies of earlier images (a tenth) and new scenes."""
    rng = np.random.default_rng(seed)
    earlier = sorted(images.glob("*/*.png"))
    copies = 0
    for k in rng.permutation(len(earlier))[: new // 10]:
        try:
            im = Image.open(earlier[k]).convert("RGB")
        except OSError:
            continue  # a truncated or non-image file of the first batch
        buf = io.BytesIO()
        im.resize((max(16, int(im.width * 0.8)), max(16, int(im.height * 0.8)))).save(buf, "JPEG", quality=85)
        (earlier[k].parent / f"late-copy-{k}.jpg").write_bytes(buf.getvalue())
        copies += 1
    fresh = images.parent / "fresh"
    make_images(fresh, new - copies, seed=seed)
    for path in fresh.glob("*/*"):
        path.rename(images / path.parent.name / f"late-{path.name}")
    shutil.rmtree(fresh)
    return copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=30_000, help="images in the lake before the batch (default 30,000)")
    ap.add_argument("--new", type=int, default=300, help="images in the new batch (default 300)")
    ap.add_argument("--keep", type=Path, help="keep the work folder here")
    args = ap.parse_args()
    from sluice.lake import Lake

    work = Path(tempfile.mkdtemp(prefix="sluice-dedup-incremental-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        params = params_for(work)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        (work / "full.yaml").write_text(yaml.safe_dump({**params, "dedup": {"incremental": False}}))
        make_images(work / "images", args.images)
        for module in ("ingest.public", "transform.clean", "transform.dedup"):
            run_stage(module, work, work / "params.yaml")
        copies = add_batch(work / "images", args.new, seed=1)
        for module in ("ingest.public", "transform.clean"):
            run_stage(module, work, work / "params.yaml")
        lake = Lake(str(work / "lake"))
        stored = lake.read("image_groups")  # the first pass's groups and codes
        manifest = work / "data" / "manifests" / "dedup.json"
        t_inc, rss_inc = run_stage("transform.dedup", work, work / "params.yaml")
        inc = json.loads(manifest.read_text())["counts"]
        groups_inc = pl.from_arrow(lake.read("image_groups", columns=COLUMNS)).sort("image_id")
        lake.overwrite("image_groups", pl.from_arrow(stored).with_columns(
            window_codes=pl.lit(None, pl.Binary), probe_codes=pl.lit(None, pl.Binary)).to_arrow())
        t_hashed, _ = run_stage("transform.dedup", work, work / "params.yaml")
        same_hashed = pl.from_arrow(lake.read("image_groups", columns=COLUMNS)).sort("image_id").equals(groups_inc)
        t_full, rss_full = run_stage("transform.dedup", work, work / "full.yaml")
        full = json.loads(manifest.read_text())["counts"]
        groups_full = pl.from_arrow(lake.read("image_groups", columns=COLUMNS)).sort("image_id")
        same = groups_inc.equals(groups_full)
        print(f"lake: {full['images']:,} images after a batch of {args.new:,} files ({copies} re-encoded copies of "
              f"earlier images); incremental run: {inc['why']}")
        print(f"  incremental: {t_inc:.1f}s, peak RSS {rss_inc:.0f} MiB, {inc['near_candidates']:,} candidates, "
              f"{inc['near_pairs']:,} new near pairs")
        print(f"  full pass:   {t_full:.1f}s, peak RSS {rss_full:.0f} MiB, {full['near_candidates']:,} candidates, "
              f"{full['near_pairs']:,} near pairs")
        print(f"  incremental, every image's window codes hashed again (stored codes cleared): {t_hashed:.1f}s")
        print(f"  same groups, kinds, scores and partners: {same and same_hashed} ({full['groups_with_duplicates']:,} groups)")
        print(ratio_line("dedup after a new batch, incremental", t_inc, "a full dedup pass over the same lake", t_full))
        print(ratio_line("incremental dedup reading the stored window codes", t_inc,
                         "the same run hashing every image's windows", t_hashed))
        if not (same and same_hashed):
            raise SystemExit("the incremental run's groups differ from the full pass's")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f}s in all)", file=sys.stderr)
