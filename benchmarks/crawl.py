"""Crawl landing overhead: images landed per second vs the same crawl with items discarded.

Serves a generated catalogue of >= 2,000 item pages (one image each, plus paginated category pages)
on 127.0.0.1 and crawls it twice per round with identical settings: once with the full pipeline
(check at the door, GPS strip, batched merge-insert into raw_images + crawl_log on a fresh lake) and
once with every item discarded (Scrapy alone, the baseline). Rounds alternate the order; the best of
each mode is compared. Target (DESIGN.md): landing costs <= 20% over the baseline, i.e. ratio >= 0.8.

Wall-clock rates swing with whatever else the machine runs, so the crawl process's CPU time (all
threads, the lake writer included) is measured too: images per CPU-second is the same comparison made
robust to a shared, busy machine.

    python benchmarks/crawl.py            # 2,000 pages, 2 rounds
    python benchmarks/crawl.py --quick    # 500 pages, 1 round
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.crawl.server import SiteServer  # noqa: E402
from demo.site import SiteItem, write_catalogue  # noqa: E402
from ingest.crawl.stage import crawl  # noqa: E402
from sluice.config import parse_params  # noqa: E402


def build_site(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
        items.append(SiteItem(str(i % 10), f"/images/{i % 10}/{i:05d}.png", buf.getvalue(), f"digit {i % 10}"))
    write_catalogue(root, items, per_page=50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=2000, help="item pages (one image each); default 2000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="500 pages, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.pages, args.rounds = 500, 1
    with tempfile.TemporaryDirectory(prefix="sluice-bench-crawl-") as tmp:
        tmp = Path(tmp)
        build_site(tmp / "site", args.pages)
        best = {"discard": 0.0, "land": 0.0}
        best_cpu = {"discard": 0.0, "land": 0.0}
        with SiteServer(tmp / "site") as site:
            for r in range(args.rounds):
                for mode in (("discard", "land") if r % 2 == 0 else ("land", "discard")):
                    params = parse_params({"lake": {"root": str(tmp / f"lake-{r}-{mode}")},
                                           "crawl": {"source": "bench", "start_urls": ["{demo_site}/"],
                                                     "images": "img.photo", "follow": {"pagination": "a.next"},
                                                     "autothrottle": False, "concurrency": 16,
                                                     "concurrency_per_domain": 16, "batch_rows": 500,
                                                     "max_pages": 0}}, "bench")
                    result = crawl(params, land=mode == "land", site=site)
                    rate, cpu_rate = args.pages / result["seconds"], args.pages / result["cpu_seconds"]
                    landed = result["counters"].get("new_images", "-")
                    print(f"round {r + 1} {mode:7s}: {result['seconds']:6.2f}s  {rate:7.1f} images/s  "
                          f"{result['cpu_seconds']:6.2f} CPU-s  {cpu_rate:7.1f} images/CPU-s  landed {landed}",
                          file=sys.stderr)
                    if mode == "land" and landed != args.pages:
                        raise SystemExit(f"landed {landed} of {args.pages} images")
                    best[mode] = max(best[mode], rate)
                    best_cpu[mode] = max(best_cpu[mode], cpu_rate)
    ratio = best["land"] / best["discard"]
    cpu_ratio = best_cpu["land"] / best_cpu["discard"]
    print(f"crawl landing: {best['land']:.0f} images/s landed vs {best['discard']:.0f} images/s with items discarded "
          f"(Scrapy alone), {args.pages} pages on loopback: ratio {ratio:.2f}x, overhead {100 * (1 - ratio):.0f}%; "
          f"per CPU-second {best_cpu['land']:.0f} vs {best_cpu['discard']:.0f}: ratio {cpu_ratio:.2f}x, "
          f"overhead {100 * (1 - cpu_ratio):.0f}% (target <= 20%)")


if __name__ == "__main__":
    main()
