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
from sluice.errors import ConfigError, InputError, QualityGateFailed, SluiceError
from sluice.runs import new_run_id
from sluice.stage import run_stage, stage_logger, stage_record

PLACEHOLDER = "{demo_site}"
log = stage_logger("crawl")


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
    if p.url_list is not None:  # its columns, here: a user's mistake is one line, not a failed crawl worker
        from ingest.crawl.url_list import read_rows

        next(iter(read_rows(p.url_list, p.label.source == "column")), None)
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
    """Log the counters (and the image reconciliation); return the stage manifest."""
    from sluice.lake import Lake  # here, not at the top: the parent stays light while the child crawls
    p, c = params.crawl, result["counters"]
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(c["dropped"].items())) or "none"
    log.info("%s: requests %d, pages %d, images %d (new %d, already present %d), not modified %d images / %d pages, "
             "redirects %d, errors %d, dropped %d (%s); %.1fs%s%s", p.source, c["requests"], c["pages"], c["images"],
             c["new_images"], c["already_present"], c["not_modified"], c["pages_not_modified"], c["redirects"],
             c["errors"], sum(c["dropped"].values()), dropped,
             result["seconds"], ", resumed" if result["resumed"] else "",
             ", page budget reached" if result["budget_skipped"] else "")
    record = stage_record("crawl", Lake.from_params(params), ("raw_images", "crawl_log", "quarantine"),
                          c["images"] + c["quarantined"], run_id=result["run_id"], new=c["new_images"],
                          already_present=c["already_present"], quarantined=c["quarantined"])
    check_labels(p, c)
    return {**record, "source": p.source, "finish_reason": result["finish_reason"], "resumed": result["resumed"],
            "counters": c, "budget_skipped_pages": result["budget_skipped"], "seconds": round(result["seconds"], 3)}


def check_labels(p, counters: dict) -> None:
    """Report images that landed without a label; above ``label.max_unlabelled_share`` the stage fails.

    A source declared unlabelled (``label.source: none``) is not checked. The images have landed
    either way (they are valid images); what fails is the promise that they carry labels.
    """
    images, unlabelled = counters["images"], counters.get("unlabelled", 0)
    if p.label.source == "none" or not unlabelled:
        return
    share, limit = unlabelled / images, p.label.max_unlabelled_share
    message = (f"{unlabelled} of {images} images ({share:.1%}) landed without a label from label.source "
               f"'{p.label.source}' (label.on '{p.label.on}')")
    if share <= limit:
        log.warning("%s; within crawl.label.max_unlabelled_share %s", message, limit)
        return
    raise QualityGateFailed(f"crawl: {message}, above crawl.label.max_unlabelled_share {limit}; fix crawl.label "
                            f"(label.on: image reads each image's URL or element), raise the share, or declare the "
                            f"source unlabelled with label.source: none")


def run(params) -> dict:
    return summarize(params, crawl(params))


def main() -> None:
    run_stage("crawl", run)
