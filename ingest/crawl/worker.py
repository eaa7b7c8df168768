"""One crawl in this process: ``python -m ingest.crawl.worker`` reads its job as JSON on stdin.

Started by :func:`ingest.crawl.stage.crawl` (a fresh process per crawl: Twisted's reactor cannot be
restarted). The job names the params, the start URLs (already resolved), the origin alias, the run id
and where to write the result (counters and timing) as JSON.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time

from sluice.config import Params


def run_job(job: dict) -> dict:
    from ingest.crawl import revalidate
    from ingest.crawl.journal import Journal
    from ingest.crawl.sink import LakeSink
    from ingest.crawl.state import load_validators
    from ingest.crawl.urls import UrlAlias, crawl_domains
    from sluice.lake import Lake

    params = Params.model_validate(job["params"])
    p, run_id, land = params.crawl, job["run_id"], job["land"]
    started, rusage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    journal = Journal(p.job_dir, run_id) if p.job_dir and land else None
    box: dict = {}  # the Scrapy crawler, once there is one

    def stop(err: BaseException) -> None:  # called on the writer thread when a commit fails
        from scrapy.utils.defer import deferred_from_coro
        from twisted.internet import reactor

        crawler = box.get("crawler")
        if crawler is not None and crawler.engine is not None:
            reactor.callFromThread(lambda: deferred_from_coro(crawler.engine.close_spider_async(reason="lake_write_failed")))

    lake = Lake.from_params(params) if land else None
    sink = LakeSink(lake, p.source, run_id, p.batch_rows, journal, on_error=stop, batch_bytes=p.batch_bytes) if land else None
    validators = load_validators(lake) if land and p.incremental else {}
    alias = UrlAlias(job.get("live_origin"), job.get("canonical_origin"))
    revalidation, out = None, {"responses": 0, "items": 0, "budget_skipped": 0, "depth_limited_pages": 0,
                               "fresh_skipped": 0, "revalidated": 0, "handed_over": 0, "finish_reason": "finished"}
    # conditional GETs of the known site, without Scrapy (a url_list's images get theirs from the spider)
    if land and p.url_list is None and revalidate.applies(p, journal, validators):
        revalidation = revalidate.Revalidation(p, journal, validators, alias,
                                               crawl_domains(p.allowed_domains, job["start_urls"]), sink)
        revalidation.run(job["start_urls"])
        out.update(responses=revalidation.requests, budget_skipped=revalidation.budget_skipped,
                   fresh_skipped=revalidation.fresh_skipped, revalidated=len(revalidation.settled),
                   handed_over=len(revalidation.handoff))
        if sink.error is not None:
            out["finish_reason"] = "lake_write_failed"
    if revalidation is None or (sink.error is None and (revalidation.handoff or p.sitemap)):
        _scrapy(p, land, job, alias, sink, journal, validators, revalidation, out, box)
    counters = sink.close() if sink is not None else {}
    seconds = time.perf_counter() - started
    end = resource.getrusage(resource.RUSAGE_SELF)  # all threads: the lake writer's commits count too
    cpu_seconds = (end.ru_utime - rusage.ru_utime) + (end.ru_stime - rusage.ru_stime)
    if journal is not None:
        if out["finish_reason"] == "finished":
            journal.finish(run_id)
        journal.close()
    return {"counters": counters, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "resumed": bool(journal and journal.resumed), **out}


def _scrapy(p, land, job, alias, sink, journal, validators, revalidation, out: dict, box: dict) -> None:
    """Run the Scrapy crawl (imported only now); add its figures to ``out``."""
    _import_tls_quickly()
    from scrapy.crawler import CrawlerProcess

    from ingest.crawl.settings import scrapy_settings
    from ingest.crawl.spiders import CatalogueSpider

    process = CrawlerProcess(settings=scrapy_settings(p, land=land))
    # Scrapy filters LOG_LEVEL in its handler but leaves the loggers open: every debug line of every
    # request would be formatted into a record first. Filter at the logger instead.
    logging.getLogger("scrapy").setLevel(p.log_level)
    crawler = box["crawler"] = process.create_crawler(CatalogueSpider)
    process.crawl(crawler, params=p, start_urls=job["start_urls"], alias=alias, sink=sink, journal=journal,
                  validators=validators, revalidation=revalidation)
    process.start()
    stats, spider = crawler.stats.get_stats(), crawler.spider
    out["finish_reason"] = stats.get("finish_reason")
    out["responses"] += stats.get("downloader/response_count", 0)
    out["items"] += stats.get("item_scraped_count", 0) + stats.get("item_dropped_count", 0)
    out["budget_skipped"] += spider.budget_skipped
    out["depth_limited_pages"] += spider.depth_skipped
    out["fresh_skipped"] += spider.fresh_skipped


def _import_tls_quickly() -> None:
    """Import Scrapy's TLS modules with a cheap ``inspect.stack``: on import they build deprecated class
    aliases whose ``inspect.stack()`` reads the source of every frame and scans every loaded module for
    each (about half a second of CPU per crawl, only to name the alias's module)."""
    import inspect

    def caller_only(context: int = 1) -> list:  # what create_deprecated_class reads: [1][0], the module calling it
        return [None, (sys.modules[sys._getframe(2).f_globals["__name__"]],)]

    stack, inspect.stack = inspect.stack, caller_only
    try:
        import scrapy.core.downloader.contextfactory  # noqa: F401
        import scrapy.core.downloader.tls  # noqa: F401
    finally:
        inspect.stack = stack


def main() -> None:
    from sluice.stage import stage_main

    def go():
        job = json.load(sys.stdin)
        result = run_job(job)
        with open(job["result"], "w") as fh:
            json.dump(result, fh, default=str)

    stage_main(go)


if __name__ == "__main__":
    main()
