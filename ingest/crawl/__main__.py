"""``python -m ingest.crawl``: the DVC ``crawl`` stage."""

from ingest.crawl.stage import main

main()
