"""A crash-safe crawl frontier in the job directory, so a killed crawl resumes where it stopped.

Scrapy's own ``JOBDIR`` keeps its request queue and seen-set in files that are only consistent after
a clean shutdown: after a SIGKILL they lose requests, and the pages that linked to them are already
"seen", so a resume silently misses part of the site. This journal is append-only JSON lines, flushed
per line (a kill loses at most the line being written, which is ignored on load):

- ``{"links": page, "children": [request, ...]}`` when a page has been parsed;
- ``{"done": [url, ...]}`` once a URL's outcome is committed to the lake (after its batch commits);
- ``{"finished": run_id}`` when a crawl ends normally (the next crawl then starts afresh);
- ``{"known": page, "children": [...]}``: what a page linked to in an earlier, finished crawl. A
  finished journal is compacted to these lines, so a re-crawl can ask for each such page with a
  conditional GET and, on 304, follow the links it had (:attr:`Journal.known`) without the body.

The frontier to resume is every child of a parsed page that is not done, plus unfinished start URLs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

JOURNAL = "journal.jsonl"


class Journal:
    def __init__(self, job_dir: str | Path, run_id: str):
        self.dir = Path(job_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / JOURNAL
        self.done: set[str] = set()
        self.children: dict[str, dict] = {}  # url -> request spec, first seen wins
        self.known: dict[str, list[dict]] = {}  # page -> its children when last parsed
        self.resumed = False
        finished = False
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # a line torn by a kill
                    continue
                if "links" in entry:
                    self.known[entry["links"]] = entry["children"]
                    for child in entry["children"]:
                        self.children.setdefault(child["url"], child)
                elif "known" in entry:
                    self.known[entry["known"]] = entry["children"]
                elif "done" in entry:
                    self.done.update(entry["done"])
                elif "finished" in entry:
                    finished = True
        if finished or not (self.done or self.children):
            self.done.clear()
            self.children.clear()
            self.path.write_text("".join(json.dumps({"known": page, "children": children}, separators=(",", ":")) + "\n"
                                         for page, children in self.known.items()))
        else:
            self.resumed = True
        self._lock = threading.Lock()
        self._fh = self.path.open("a", encoding="utf-8")
        self._write({"run": run_id, "resumed": self.resumed})

    def _write(self, entry: dict) -> None:
        with self._lock:
            self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._fh.flush()

    def pending(self) -> list[dict]:
        """Children of parsed pages whose outcome is not committed yet (the frontier to resume)."""
        return [c for url, c in self.children.items() if url not in self.done]

    def links(self, page_url: str, children: list[dict]) -> None:
        self._write({"links": page_url, "children": children})

    def mark_done(self, urls: list[str]) -> None:
        if urls:
            self.done.update(urls)
            self._write({"done": urls})

    def finish(self, run_id: str) -> None:
        self._write({"finished": run_id})

    def close(self) -> None:
        with self._lock:
            self._fh.close()
