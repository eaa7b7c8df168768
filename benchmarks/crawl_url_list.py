"""Landing a list of image URLs (``crawl.url_list``) vs crawling one listing page of the same images, same run.

Serves N generated PNGs on 127.0.0.1 with one page linking them all (a directory listing), writes a CSV of
their URLs and labels, and per round lands them twice on fresh lakes through the crawl stage: from the CSV
(``url_list``, labels from its column) and from the page (``start_urls``, labels from each image URL: the
baseline, the crawl as it was). Each is the whole ``crawl()`` call (worker start-up, robots.txt, every
request, the checks at the door, batched landing), best of the rounds; the ratio is images/s of the list
over the page crawl. Target: >= 0.9x (the list costs a CSV read where the crawl parses a page).

    python benchmarks/crawl_url_list.py            # 2,000 images, 2 rounds
    python benchmarks/crawl_url_list.py --quick    # 500 images, 1 round
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ratio_line  # noqa: E402
from crawl import build_site  # noqa: E402 - the crawl benchmark's flat listing site

from ingest.crawl.server import SiteServer  # noqa: E402
from ingest.crawl.stage import crawl  # noqa: E402
from sluice.config import parse_params  # noqa: E402


def _params(lake: Path, listing: Path | None):
    common = {"source": "bench", "autothrottle": False, "concurrency": 16, "concurrency_per_domain": 16,
              "batch_rows": 500, "max_pages": 0}
    if listing is None:
        section = {**common, "start_urls": ["{demo_site}/"], "images": "img.photo",
                   "label": {"source": "url_regex", "on": "image", "pattern": r"/images/(\d)/"}}
    else:
        section = {**common, "start_urls": [], "url_list": {"path": str(listing)}, "label": {"source": "column"}}
    return parse_params({"lake": {"root": str(lake)}, "crawl": section}, "bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="500 images, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds = 500, 1
    n, best = args.images, {"list": float("inf"), "page": float("inf")}
    with tempfile.TemporaryDirectory(prefix="sluice-bench-urls-") as tmp:
        tmp = Path(tmp)
        build_site(tmp / "site", n, flat=True)
        with SiteServer(tmp / "site") as site:
            listing = tmp / "images.csv"
            paths = sorted(p.relative_to(tmp / "site").as_posix() for p in (tmp / "site" / "images").rglob("*.png"))
            listing.write_text("url,label\n" + "".join(f"{site.origin}/{p},{p.split('/')[1]}\n" for p in paths))
            for r in range(args.rounds):
                for mode in ("page", "list"):
                    params = _params(tmp / f"lake-{mode}-{r}", listing if mode == "list" else None)
                    begun = time.perf_counter()
                    counters = crawl(params, site=site)["counters"]
                    wall = time.perf_counter() - begun
                    if (counters["new_images"], counters["unlabelled"]) != (n, 0):
                        raise SystemExit(f"{mode}: landed {counters['new_images']} of {n}, {counters['unlabelled']} "
                                         "unlabelled")
                    print(f"round {r + 1} {mode}: {n / wall:7.1f} images/s ({wall:.2f} s)", file=sys.stderr)
                    best[mode] = min(best[mode], wall)
    print(ratio_line(f"url_list crawl of {n} listed images (labels from the CSV)", best["list"],
                     "crawling one page linking them (labels from the URLs)", best["page"], target=0.9))


if __name__ == "__main__":
    main()
