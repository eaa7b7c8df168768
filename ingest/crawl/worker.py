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
    from scrapy.crawler import CrawlerProcess

    from ingest.crawl.journal import Journal
    from ingest.crawl.settings import scrapy_settings
    from ingest.crawl.sink import LakeSink
    from ingest.crawl.spiders import CatalogueSpider
    from ingest.crawl.spiders.catalogue import UrlAlias
    from ingest.crawl.state import load_validators
    from sluice.lake import Lake

    params = Params.model_validate(job["params"])
    p, run_id, land = params.crawl, job["run_id"], job["land"]
    journal = Journal(p.job_dir, run_id) if p.job_dir and land else None
    process = CrawlerProcess(settings=scrapy_settings(p, land=land))
    # Scrapy filters LOG_LEVEL in its handler but leaves the loggers open: every debug line of every
    # request would be formatted into a record first. Filter at the logger instead.
    logging.getLogger("scrapy").setLevel(p.log_level)
    crawler = process.create_crawler(CatalogueSpider)

    def stop(err: BaseException) -> None:  # called on the writer thread when a commit fails
        from scrapy.utils.defer import deferred_from_coro
        from twisted.internet import reactor

        if crawler.engine is not None:
            reactor.callFromThread(lambda: deferred_from_coro(crawler.engine.close_spider_async(reason="lake_write_failed")))

    lake = Lake.from_params(params) if land else None
    sink = LakeSink(lake, p.source, run_id, p.batch_rows, journal, on_error=stop) if land else None
    validators = load_validators(lake) if land and p.incremental else {}
    alias = UrlAlias(job.get("live_origin"), job.get("canonical_origin"))
    started, rusage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    process.crawl(crawler, params=p, start_urls=job["start_urls"], alias=alias, sink=sink, journal=journal,
                  validators=validators)
    process.start()
    counters = sink.close() if sink is not None else {}
    seconds = time.perf_counter() - started
    end = resource.getrusage(resource.RUSAGE_SELF)  # all threads: the lake writer's commits count too
    cpu_seconds = (end.ru_utime - rusage.ru_utime) + (end.ru_stime - rusage.ru_stime)
    stats = crawler.stats.get_stats()
    reason = stats.get("finish_reason")
    if journal is not None:
        if reason == "finished":
            journal.finish(run_id)
        journal.close()
    spider = crawler.spider
    return {"counters": counters, "seconds": seconds, "cpu_seconds": cpu_seconds, "finish_reason": reason,
            "resumed": bool(journal and journal.resumed),
            "responses": stats.get("downloader/response_count", 0),
            "items": stats.get("item_scraped_count", 0) + stats.get("item_dropped_count", 0),
            "budget_skipped": spider.budget_skipped, "depth_limited_pages": spider.depth_skipped,
            "fresh_skipped": spider.fresh_skipped}


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
