"""How each stage's time and memory grow with the number of images: ingest -> labels -> clean -> dedup
-> dataset -> export on synthetic but realistic image folders, at several sizes, on this machine.

The images: 10 classes of smooth random scenes, 24..160 px on a side (a few 640 px), saved as PNG,
JPEG, WebP and GIF; 4% are byte-exact copies of another image in another folder, 4% near copies
(re-encoded at another quality and size), 2% truncated files and 0.5% not images at all. Every stage
runs as its own process (``python -m <stage>``) exactly as ``dvc repro`` runs it, the lake in a
temporary folder; its wall time and peak RSS (the largest process of the stage, Dask workers included)
are measured, and the seconds between consecutive ingest commits (first vs last tenth of the run),
with the commit alone (key check, append, compaction: the ingest manifest's ``commits``) beside it.
The growth exponent k of time ~ N^k is the least-squares slope of log time on log N.
As the other benchmarks, the baseline is measured in the same run: the time to read every image
file's bytes (what any pipeline pays), next to ingest. The image files are evicted from the page cache
(written to disk, then ``posix_fadvise(DONTNEED)`` on each) before the baseline and again before ingest:
a user's image folder is read from disk, and at 100k the files freshly written would otherwise be read
from memory while at 1M they no longer fit there, so the exponent would measure the cache, not the code.

    python benchmarks/scale.py                     # 10k and 100k images
    python benchmarks/scale.py --sizes 10000 30000 # other sizes
    python benchmarks/scale.py --full              # 10k, 100k and 1M (~1.2 hours on 2 cores, ~50 GB of disk; not run by CI)
    python benchmarks/scale.py --markdown out.md   # also write the table as Markdown
    python benchmarks/scale.py --sizes 10000 --results r.json  # add (or replace) sizes in a results file
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = [("ingest", "ingest.public"), ("labels", "transform.labels"), ("clean", "transform.clean"),
          ("dedup", "transform.dedup"), ("dataset", "transform.dataset"), ("export", "transform.export")]
CHUNK = 5_000  # files a generating task writes
FORMATS = [("PNG", ".png", {}), ("JPEG", ".jpg", {"quality": 88}), ("WEBP", ".webp", {"quality": 80}),
           ("GIF", ".gif", {})]


def _scene(rng, side_h: int, side_w: int):
    from PIL import Image

    coarse = rng.integers(0, 256, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3), dtype=np.uint8)
    im = Image.fromarray(coarse).resize((side_w, side_h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (side_h, side_w, 3))
    return Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8))


def _write_chunk(job: tuple[Path, int, int, int]) -> dict:
    """Files ``start .. stop - 1``, drawn from their own seeded stream (the same files whatever the
    number of processes); copies take their originals from earlier files of the same chunk."""
    root, start, stop, seed = job
    rng = np.random.default_rng([seed, start])
    kinds = {"unique": 0, "exact_copy": 0, "near_copy": 0, "truncated": 0, "not_image": 0}
    recent: list[tuple[bytes, object]] = []  # (bytes, image) of earlier images, the copies' originals
    for i in range(start, stop):
        folder = root / f"class{i % 10}"
        u = rng.random()
        if u < 0.04 and recent:
            data, _ = recent[int(rng.integers(len(recent)))]
            kinds["exact_copy"] += 1
            (folder / f"{i:07d}.bin.png").write_bytes(data)
            continue
        if u < 0.08 and recent:
            _, im = recent[int(rng.integers(len(recent)))]
            scale = rng.uniform(0.7, 1.4)
            im = im.resize((max(16, int(im.width * scale)), max(16, int(im.height * scale))))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=int(rng.integers(60, 95)))
            kinds["near_copy"] += 1
            (folder / f"{i:07d}.jpg").write_bytes(buf.getvalue())
            continue
        if u < 0.085:
            kinds["not_image"] += 1
            (folder / f"{i:07d}.png").write_bytes(b"<html>not an image</html>" + rng.bytes(int(rng.integers(10, 500))))
            continue
        side = int(rng.integers(24, 161)) if rng.random() > 0.01 else 640
        h, w = side, int(side * rng.uniform(0.6, 1.6))
        im = _scene(rng, h, w)
        fmt, ext, opts = FORMATS[int(rng.choice(4, p=[0.4, 0.4, 0.15, 0.05]))]
        buf = io.BytesIO()
        (im.convert("P") if fmt == "GIF" else im).save(buf, fmt, **opts)
        data = buf.getvalue()
        if u < 0.105:
            data = data[: len(data) // 2]
            kinds["truncated"] += 1
        else:
            kinds["unique"] += 1
            if len(recent) < 512:
                recent.append((data, im))
            else:
                recent[int(rng.integers(512))] = (data, im)
        (folder / f"{i:07d}{ext}").write_bytes(data)
    return kinds


def make_images(root: Path, n: int, seed: int = 0) -> dict:
    """``n`` files under ``root/<class>/``, written by one process per core in chunks of
    ``CHUNK``; returns how many of each kind were written."""
    from multiprocessing import get_context

    for d in range(10):
        (root / f"class{d}").mkdir(parents=True, exist_ok=True)
    jobs = [(root, start, min(n, start + CHUNK), seed) for start in range(0, n, CHUNK)]
    kinds: dict[str, int] = {}
    with get_context("spawn").Pool(os.cpu_count()) as pool:
        for done, chunk in enumerate(pool.imap_unordered(_write_chunk, jobs), 1):
            for kind, count in chunk.items():
                kinds[kind] = kinds.get(kind, 0) + count
            if done % 20 == 0:
                print(f"  wrote {done * CHUNK:,} of {n:,} files", file=sys.stderr, flush=True)
    return kinds


def params_for(work: Path) -> dict:
    return {
        "lake": {"root": str(work / "lake")},
        "compute": {"n_workers": 2},
        "ingest": {"sources": [{"name": "synthetic", "kind": "image_folder", "path": str(work / "images")}]},
        "export": {"out_dir": str(work / "dataset")},
    }


def run_stage(module: str, work: Path, params_file: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB of the largest process) of ``python -m module``."""
    env = {**os.environ, "SLUICE_PARAMS": str(params_file), "PYTHONPATH": str(REPO)}
    log = open(work / f"{module}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if proc.returncode != 0:
        tail = (work / f"{module}.log").read_text()[-3000:]
        raise SystemExit(f"{module} failed ({proc.returncode}):\n{tail}")
    return wall, usage.ru_maxrss / 1024


def evict(root: Path) -> bool:
    """Drop the files under ``root`` from the page cache (synced first: dirty pages cannot be dropped);
    False where the system has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    os.sync()
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def read_all(root: Path) -> float:
    t0 = time.perf_counter()
    for path in root.rglob("*"):
        if path.is_file():
            path.read_bytes()
    return time.perf_counter() - t0


def measure(n: int, keep: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"sluice-scale-{n}-"))
    try:
        t0 = time.perf_counter()
        kinds = make_images(work / "images", n)
        print(f"[{n}] wrote {n} files in {time.perf_counter() - t0:.0f}s: {kinds}", file=sys.stderr)
        params_file = work / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_for(work)))
        cold = evict(work / "images")
        result = {"n": n, "kinds": kinds, "read_files_s": read_all(work / "images"), "files_cold": cold, "stages": {}}
        for name, module in STAGES:
            if name == "ingest":
                evict(work / "images")
            wall, rss = run_stage(module, work, params_file)
            result["stages"][name] = {"s": wall, "rss_mib": rss}
            print(f"[{n}] {name}: {wall:.1f}s, peak RSS {rss:.0f} MiB", file=sys.stderr)
        from sluice.lake import Lake

        lake = Lake(str(work / "lake"))
        result["rows"] = {t: lake.count(t) for t in ("raw_images", "images", "dataset", "quarantine")}
        result["ingest_commits"] = commit_times(lake.uri("raw_images"))
        print(f"[{n}] ingest commits: {result['ingest_commits']}", file=sys.stderr)
        ingest = work / "data" / "manifests" / "ingest_public.json"  # each commit alone, without the file reads
        if ingest.is_file():
            result["ingest_commit_only"] = json.loads(ingest.read_text())["sources"]["synthetic"].get("commits")
            print(f"[{n}] ingest commits alone: {result['ingest_commit_only']}", file=sys.stderr)
        dedup = work / "data" / "manifests" / "dedup.json"  # candidates, search plan, heavy-bucket cap hits
        if dedup.is_file():
            result["dedup_counts"] = json.loads(dedup.read_text()).get("counts")
            print(f"[{n}] dedup: {result['dedup_counts']}", file=sys.stderr)
        return result
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def commit_times(uri: str) -> dict:
    """Seconds between consecutive ingest commits of ``raw_images`` (a batch read, checked and
    committed, automatic compactions included), from the Delta log's commit timestamps: the median of
    the first and of the last tenth of the run, and their ratio."""
    from deltalake import DeltaTable

    stamps = sorted(h["timestamp"] for h in DeltaTable(uri).history() if h.get("operation") != "CREATE TABLE")
    gaps = np.diff(np.asarray(stamps, dtype=np.float64)) / 1000
    if len(gaps) < 10:
        return {"commits": len(stamps)}
    tenth = max(1, len(gaps) // 10)
    first, last = float(np.median(gaps[:tenth])), float(np.median(gaps[-tenth:]))
    return {"commits": len(stamps), "first_tenth_s": round(first, 4), "last_tenth_s": round(last, 4),
            "last_vs_first": round(last / first, 3)}


def exponent(ns: list[int], ts: list[float]) -> float:
    x, y = np.log(ns), np.log(np.maximum(ts, 1e-3))
    return float(np.polyfit(x, y, 1)[0]) if len(ns) > 1 else math.nan


def table(results: list[dict]) -> str:
    ns = [r["n"] for r in results]
    head = "| stage | " + " | ".join(f"{n:,} images: s / peak MiB" for n in ns) + " | k (time ~ N^k) |"
    lines = [head, "|" + "---|" * (len(ns) + 2)]
    names = [name for name, _ in STAGES]
    for name in names + ["total"]:
        if name == "total":
            ts = [sum(s["s"] for s in r["stages"].values()) for r in results]
            cells = [f"{t:.1f} / {max(s['rss_mib'] for s in r['stages'].values()):.0f}" for t, r in zip(ts, results)]
        else:
            ts = [r["stages"][name]["s"] for r in results]
            cells = [f"{r['stages'][name]['s']:.1f} / {r['stages'][name]['rss_mib']:.0f}" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {exponent(ns, ts):.2f} |")
    ts = [r["read_files_s"] for r in results]
    lines.append("| baseline: read every file's bytes | " + " | ".join(f"{t:.1f} / -" for t in ts)
                 + f" | {exponent(ns, ts):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--full", action="store_true", help="10k, 100k and 1M images (hours)")
    ap.add_argument("--keep", action="store_true", help="keep the work folders (printed)")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument("--results", type=Path, help="JSON file of earlier results: these sizes are added to it")
    args = ap.parse_args()
    sizes = [10_000, 100_000, 1_000_000] if args.full else sorted(args.sizes)
    earlier = json.loads(args.results.read_text()) if args.results and args.results.is_file() else []
    results = {r["n"]: r for r in earlier}
    for n in sizes:
        results[n] = measure(n, Path(".") if args.keep else None)
        print(f"[{n}] rows: {results[n]['rows']}", file=sys.stderr)
        if args.results:
            args.results.write_text(json.dumps(sorted(results.values(), key=lambda r: r["n"]), indent=1))
    out = table(sorted(results.values(), key=lambda r: r["n"]))
    print(out)
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.markdown:
        args.markdown.write_text(out + "\n")


if __name__ == "__main__":
    main()
