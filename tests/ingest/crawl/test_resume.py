"""SIGKILL in mid-crawl, then a rerun with the same job directory: every page, no duplicate rows."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from ingest.crawl.server import SiteServer
from demo.site import SiteItem, write_catalogue
from sluice.lake import Lake

N_ITEMS = 150


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_sigkill_then_resume_reaches_every_page_without_duplicates(tmp_path):
    root = tmp_path / "site"
    items = [SiteItem(str(i % 5), f"/images/{i}.png", _png(i), f"digit {i % 5}") for i in range(N_ITEMS)]
    written = write_catalogue(root, items, per_page=10)
    job_dir = tmp_path / "job"
    slow = lambda handler: time.sleep(0.01)  # noqa: E731  (a little latency so the kill lands mid-crawl)
    with SiteServer(root, hook=slow) as site:
        params = {"lake": {"root": str(tmp_path / "lake")},
                  "crawl": {"source": "resume-test", "start_urls": [site.origin + "/"], "images": "img.photo",
                            "follow": {"pagination": "a.next"}, "batch_rows": 10, "job_dir": str(job_dir),
                            "autothrottle": False, "concurrency_per_domain": 2}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env = {**os.environ, "SLUICE_PARAMS": str(tmp_path / "params.yaml")}
        cmd = [sys.executable, "-m", "ingest.crawl"]

        first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        journal = job_dir / "journal.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = journal.read_text().splitlines() if journal.is_file() else []
            if sum('"done"' in line for line in lines) >= 3:
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        time.sleep(1.0)  # the crawl child got SIGKILL with its parent (PR_SET_PDEATHSIG)
        hits_after_kill = len(site.hits)
        time.sleep(0.5)
        assert len(site.hits) == hits_after_kill, "the crawl process outlived its stage"
        lake = Lake(str(tmp_path / "lake"))
        landed_before = lake.count("raw_images")
        assert 0 < landed_before < N_ITEMS

        second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr
        second_image_hits = [h for h in site.hits[hits_after_kill:] if h.path.startswith("/images/")]
        origin = site.origin

    assert "resumed" in second.stderr  # the stage summary is a log line (stderr)
    rows = lake.read("raw_images", columns=["image_id", "source_uri"]).to_pylist()
    assert len(rows) == N_ITEMS
    assert len({(r["image_id"], r["source_uri"]) for r in rows}) == N_ITEMS  # 0 duplicate rows
    pages = {r["url"] for r in lake.read("crawl_log").to_pylist() if r["outcome"] == "page"}
    assert pages == {origin + p for p in written["pages"]}  # every page reached across the two runs
    assert len(second_image_hits) <= N_ITEMS - landed_before + 2 * 10  # resumed: landed images not fetched again
    manifest = json.loads((tmp_path / "data/manifests/crawl.json").read_text())
    assert manifest["resumed"] is True and manifest["finish_reason"] == "finished"
