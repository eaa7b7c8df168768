"""A static-site HTTP server on 127.0.0.1: the crawl stage serves a local folder with it (``{demo_site}``).

Serves a folder of files on a free loopback port from a background thread, and records every request
it receives (time, path, headers) so tests can prove what was — and was never — requested. A site may
carry a ``_routes.json`` (never served, like every name starting with ``_``) with behaviour a plain
folder cannot express::

    {"redirects": {"/old.html": [301, "/new.html"], "/partner": [302, "{other_origin}/x"]},
     "headers":   {"/images/bomb.png": {"Content-Encoding": "gzip"}}}

``{origin}`` is this server, ``{other_origin}`` the same server under ``localhost`` (another domain
for the crawler). Tests can add a ``hook(handler) -> (status, headers, body) | None`` for dynamic
behaviour (slow answers, 429 with ``Retry-After``...). Files carry ``ETag`` and ``Last-Modified``, and
conditional GETs (``If-None-Match`` / ``If-Modified-Since``) are answered 304 like a real web server.
"""

from __future__ import annotations

import email.utils
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

Reply = tuple[int, dict[str, str], bytes]

# The origin a crawl records for a site served here (so a re-crawl on another port is the same site).
# demo.site.DEMO_ORIGIN names the same origin in the demo's inventory (tests/demo checks they agree).
CANONICAL_ORIGIN = "http://demo-site.invalid"


@dataclass(frozen=True)
class Hit:
    at: float  # time.monotonic() when the request arrived
    path: str
    user_agent: str | None
    host: str | None
    conditional: bool = False  # sent If-None-Match or If-Modified-Since


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    # Buffered: status line, headers and body leave in one write (flushed after each request), as a real
    # server sends them; unbuffered, the body waited for the client's delayed ACK (~40 ms per response).
    wbufsize = 1 << 16

    def log_message(self, *args) -> None:  # quiet: the crawl log is the record
        pass

    def do_GET(self) -> None:
        site = self.server.site
        path = unquote(urlsplit(self.path).path)
        site.hits.append(Hit(time.monotonic(), path, self.headers.get("User-Agent"), self.headers.get("Host"),
                             "If-None-Match" in self.headers or "If-Modified-Since" in self.headers))
        try:
            reply = site.hook(self) if site.hook else None
            if reply is None:
                reply = site.resolve(path)
            status, headers, body = not_modified(self.headers, *reply)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: "SiteServer"

    def handle_error(self, request, client_address) -> None:
        """Quiet: a crawler aborting an oversized download resets the connection, which is expected."""


class SiteServer:
    """``with SiteServer(folder) as site: crawl(site.origin + "/")``; ``site.hits`` lists the requests."""

    def __init__(self, root: str | Path | None = None, hook: Callable[[BaseHTTPRequestHandler], Reply | None] | None = None):
        self.root = Path(root).resolve() if root else None
        self.hook = hook
        self.hits: list[Hit] = []
        routes_file = self.root / "_routes.json" if self.root else None
        self.routes = json.loads(routes_file.read_text()) if routes_file and routes_file.is_file() else {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same server under another host name: a different domain for the crawler."""
        return f"http://localhost:{self.port}"

    def start(self) -> "SiteServer":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.site = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="site-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "SiteServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def paths(self) -> list[str]:
        return [h.path for h in self.hits]

    def _expand(self, text: str) -> str:
        return text.replace("{origin}", self.origin).replace("{other_origin}", self.other_origin)

    def resolve(self, path: str) -> Reply:
        """The static answer for ``path``: a route, a file, or 404."""
        if path in self.routes.get("redirects", {}):
            status, location = self.routes["redirects"][path]
            return status, {"Location": self._expand(location)}, b""
        if self.root is None:
            return _not_found()
        rel = path.lstrip("/")
        target = (self.root / rel).resolve()
        if target.is_dir():
            target = target / "index.html"
        inside = target == self.root or self.root in target.parents
        if not inside or any(part.startswith("_") for part in target.relative_to(self.root).parts) or not target.is_file():
            return _not_found()
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        stat = target.stat()
        headers = {"Content-Type": ctype, "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
                   "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True)}
        headers.update(self.routes.get("headers", {}).get(path, {}))
        return 200, headers, target.read_bytes()


def not_modified(request_headers, status: int, headers: dict[str, str], body: bytes) -> Reply:
    """Answer a conditional GET like a static web server: 304 with no body when the validators match.

    ``If-None-Match`` wins over ``If-Modified-Since`` (RFC 9110 13.2.2); dates compare to the second.
    """
    if status != 200:
        return status, headers, body
    etag, inm = headers.get("ETag"), request_headers.get("If-None-Match")
    if inm is not None:
        match = etag is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")])
    else:
        ims, modified = request_headers.get("If-Modified-Since"), headers.get("Last-Modified")
        try:
            match = bool(ims and modified) and email.utils.parsedate_to_datetime(modified) <= email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            match = False
    if not match:
        return status, headers, body
    kept = {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "Cache-Control", "Expires")}
    return 304, kept, b""


def _not_found() -> Reply:
    return 404, {"Content-Type": "text/html; charset=utf-8"}, b"<!doctype html><title>404</title><h1>Not Found</h1>\n"
