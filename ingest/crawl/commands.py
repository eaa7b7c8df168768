"""``sluice crawl``: run the configured web crawl (the same as the DVC ``crawl`` stage)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "crawl", help="crawl the website configured in params.yaml (crawl:) and land its images",
        description="Crawl the site configured in the crawl section of params.yaml: images land in raw_images "
                    "(idempotent: a re-crawl adds nothing), every request and its outcome in crawl_log, rejected "
                    "responses in quarantine. A start URL '{demo_site}/' serves the demo site on a free loopback "
                    "port for the duration of the crawl. Options override params for this run only.")
    p.add_argument("--start-url", action="append", metavar="URL", help="crawl from this URL instead (repeatable)")
    p.add_argument("--max-pages", type=int, metavar="N", help="page budget for this run (0 = unlimited)")
    p.add_argument("--job-dir", metavar="DIR", help="resumable job directory (a killed crawl resumes from it)")
    p.add_argument("--manifest", action="store_true", help="also write data/manifests/crawl.json like the stage")
    p.set_defaults(func=_crawl)


def _crawl(args) -> int:
    from pydantic import ValidationError

    from ingest.crawl.stage import run
    from sluice.config import CrawlParams, load_params
    from sluice.errors import ConfigError

    params = load_params()
    overrides = {k: v for k, v in {"start_urls": args.start_url, "max_pages": args.max_pages,
                                   "job_dir": args.job_dir}.items() if v is not None}
    if overrides:
        try:
            crawl = CrawlParams.model_validate({**params.crawl.model_dump(mode="json"), **overrides})
        except ValidationError as err:
            first = err.errors()[0]
            raise ConfigError(f"command line: {'.'.join(map(str, first['loc']))}: {first['msg'].lower()}") from None
        params = params.model_copy(update={"crawl": crawl})
    summary = run(params)
    if args.manifest:
        from sluice.runs import write_manifest
        from sluice.stage import stage_logger

        stage_logger("crawl").info("manifest: %s", write_manifest("crawl", summary))
    return 0
