"""The crawl stage on small loopback sites: labels read from image URLs, the unlabelled-image check,
drops that keep their HTTP status and details, and progress lines when stderr is not a terminal."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from ingest.crawl.stage import crawl, summarize
from sluice.config import parse_params
from sluice.errors import QualityGateFailed
from sluice.lake import Lake

LABELS = ["airplane", "cat", "dog"]


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class FlatListing(BaseHTTPRequestHandler):
    """A directory listing page linking ``<label>/<n>.png`` (like ``python -m http.server``), plus an
    oversized image sent without Content-Length and a redirect to another domain."""

    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no Content-Length needed
    files = {f"/{label}/{n:04d}.png": _png(n) for n, label in enumerate(LABELS * 2)}

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self) -> None:
        if self.path == "/":
            links = "".join(f'<li><a href="{p[1:]}">{p.rsplit("/", 1)[1]}</a></li>' for p in self.files)
            body = f'<html><body><ul>{links}<li><a href="big.png">big</a></li><li><a href="away.png">away</a></li>' \
                   '</ul></body></html>'.encode()
            self._send(200, "text/html", body, length=True)
        elif self.path in self.files:
            self._send(200, "image/png", self.files[self.path], length=True)
        elif self.path == "/big.png":
            self._send(200, "image/png", b"\x89PNG" + bytes(5000), length=False)
        elif self.path == "/away.png":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/x.png")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"not found", length=True)

    def _send(self, status: int, ctype: str, body: bytes, length: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def flat_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlatListing)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _params(tmp_path, origin: str, label: dict):
    crawl_section = {"source": "flat", "start_urls": [origin + "/"], "images": "a[href$='.png']",
                     "image_attr": "href", "label": label, "max_bytes": 2000, "batch_rows": 5, "autothrottle": False}
    return parse_params({"lake": {"root": str(tmp_path / "lake")}, "crawl": crawl_section}, "test-params.yaml")


def test_labels_from_the_image_url_drops_with_status_and_progress_lines(tmp_path, flat_site, monkeypatch, capfd):
    monkeypatch.setenv("SLUICE_PROGRESS_EVERY", "0")  # a progress line per fetch (stderr is not a terminal here)
    params = _params(tmp_path, flat_site, {"source": "url_regex", "on": "image",
                                           "pattern": r"/(?P<label>[a-z]+)/\d+\.png$"})
    summary = summarize(params, crawl(params))
    lake = Lake(str(tmp_path / "lake"))
    landed = {r["source_uri"].rsplit("/", 2)[1]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert landed == {label: label for label in LABELS}
    assert summary["counters"]["unlabelled"] == 0 and summary["counters"]["images"] == 2 * len(LABELS)

    log = {r["url"].rsplit("/", 1)[1]: r for r in lake.read("crawl_log").to_pylist()}
    big, away = log["big.png"], log["away.png"]
    assert (big["outcome"], big["status"]) == ("dropped:too_large", 200)
    assert "without a Content-Length" in big["error"] and "crawl.max_bytes 2000" in big["error"]
    assert (away["outcome"], away["status"]) == ("dropped:offsite_redirect", 302)
    [q] = [r for r in lake.read("quarantine").to_pylist() if r["row_key"].endswith("/big.png")]
    assert q["check"] == "too_large" and "without a Content-Length" in q["details"]
    err = capfd.readouterr().err
    assert "[crawl] progress: " in err and " requests (" in err and "images " in err


def test_images_without_a_label_fail_the_stage_unless_declared_unlabelled(tmp_path, flat_site, capfd):
    page_regex = {"source": "url_regex", "pattern": r"/(?P<label>[a-z]+)/\d+\.png$"}  # on the page URL: no match
    params = _params(tmp_path, flat_site, page_regex)
    result = crawl(params)
    assert result["counters"]["unlabelled"] == result["counters"]["images"] == 2 * len(LABELS)
    with pytest.raises(QualityGateFailed, match=r"6 of 6 images \(100.0%\) landed without a label.*label.on"):
        summarize(params, result)

    tolerant = _params(tmp_path, flat_site, {**page_regex, "max_unlabelled_share": 1.0})
    summarize(tolerant, result)
    assert "6 of 6 images (100.0%) landed without a label" in capfd.readouterr().err
    declared = _params(tmp_path, flat_site, {"source": "none"})
    assert summarize(declared, result)["counters"]["unlabelled"] == 6
    assert "without a label" not in capfd.readouterr().err
