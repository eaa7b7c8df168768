"""The ``crawl`` stage: serve the demo site if asked, run the crawl in a child process, report.

``crawl.start_urls`` may contain ``{demo_site}``: the stage then serves ``crawl.demo_site_dir`` on a
free 127.0.0.1 port for the duration of the crawl, substitutes that origin, and records URLs under the
canonical origin ``http://demo-site.invalid`` so a re-crawl on another port is recognised as the same
site (and adds nothing).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from ingest.crawl.server import CANONICAL_ORIGIN as DEMO_ORIGIN, SiteServer
from sluice.errors import ConfigError, InputError, SluiceError
from sluice.lake import Lake
from sluice.runs import new_run_id, reconcile

PLACEHOLDER = "{demo_site}"


class CrawlFailed(SluiceError):
    """The crawl process died or failed; its own messages are above."""


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the stage dies (so a killed stage leaves no orphan crawler)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def check_start_urls(urls: list[str]) -> None:
    for i, url in enumerate(urls):
        parts = urlsplit(url.replace(PLACEHOLDER, "http://127.0.0.1:1"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"crawl.start_urls[{i}]: '{url}' is not an http(s) URL (or '{PLACEHOLDER}/...')")


def crawl(params, land: bool = True, site: SiteServer | None = None) -> dict:
    """Run one crawl as configured by ``params.crawl``; return the worker's result (counters, timing).

    ``site`` serves the ``{demo_site}`` placeholder when given (tests, benchmark); otherwise the stage
    serves ``crawl.demo_site_dir`` itself when a start URL uses the placeholder.
    """
    p = params.crawl
    check_start_urls(p.start_urls)
    with ExitStack() as stack:
        live = None
        if any(PLACEHOLDER in u for u in p.start_urls):
            if site is None:
                site_dir = Path(p.demo_site_dir)
                if not (site_dir / "index.html").is_file():
                    raise InputError(f"{site_dir}: demo site not found (crawl.demo_site_dir); run `sluice demo` first")
                site = stack.enter_context(SiteServer(site_dir))
            live = site.origin
        start_urls = [u.replace(PLACEHOLDER, live) if live else u for u in p.start_urls]
        run_id = new_run_id("crawl")
        result_file = stack.enter_context(tempfile.TemporaryDirectory(prefix="sluice-crawl-")) + "/result.json"
        job = {"params": {"lake": params.lake.model_dump(mode="json"), "crawl": p.model_dump(mode="json")},
               "start_urls": start_urls, "run_id": run_id, "land": land,
               "live_origin": live, "canonical_origin": DEMO_ORIGIN if live else None, "result": result_file}
        proc = subprocess.run([sys.executable, "-m", "ingest.crawl.worker"], input=json.dumps(job), text=True,
                              preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0 or not Path(result_file).is_file():
            raise CrawlFailed(f"crawl of '{p.source}' failed (worker exit code {proc.returncode}); see the messages above")
        result = json.loads(Path(result_file).read_text())
    result["run_id"] = run_id
    return result


def summarize(params, result: dict) -> dict:
    """Print the counters (and the image reconciliation); return the stage manifest."""
    p, c = params.crawl, result["counters"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(c["dropped"].items())) or "none"
    print(f"[crawl] {p.source}: requests {c['requests']}, pages {c['pages']}, images {c['images']} "
          f"(new {c['new_images']}, already present {c['already_present']}), redirects {c['redirects']}, "
          f"errors {c['errors']}, dropped {sum(c['dropped'].values())} ({dropped}); "
          f"{result['seconds']:.1f}s{', resumed' if result['resumed'] else ''}"
          f"{', page budget reached' if result['budget_skipped'] else ''}")
    image_responses = c["images"] + c["quarantined"]
    recon = reconcile("crawl", image_responses, new=c["new_images"], already_present=c["already_present"],
                      quarantined=c["quarantined"])
    lake = Lake.from_params(params)
    tables = ("raw_images", "crawl_log", "quarantine")
    return {"run_id": result["run_id"], "source": p.source, "finish_reason": result["finish_reason"],
            "resumed": result["resumed"], "counters": c, "reconcile": recon,
            "budget_skipped_pages": result["budget_skipped"], "seconds": round(result["seconds"], 3),
            "versions": {t: lake.version(t) for t in tables}}


def run(params) -> dict:
    return summarize(params, crawl(params))


def main() -> None:
    from sluice.stage import stage_main
    from sluice.config import load_params
    from sluice.runs import write_manifest

    def go():
        summary = run(load_params())
        print(f"[crawl] manifest: {write_manifest('crawl', summary)}")

    stage_main(go)
