"""Shared fixtures: a throw-away lake and params built in tmp_path."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sluice.config import parse_params
from sluice.lake import Lake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def make_params(tmp_path):
    """Build validated Params from a dict, with the lake in tmp_path unless given."""

    def build(raw: dict | None = None):
        raw = dict(raw or {})
        raw.setdefault("lake", {"root": str(tmp_path / "lake")})
        return parse_params(raw, "test-params.yaml")

    return build


@pytest.fixture
def run_cli(tmp_path):
    """Run ``sluice ...`` (or ``python -m module``) in a subprocess with a params file; return the result."""

    def run(*args: str, params: dict | None = None, module: str | None = None, cwd: Path | None = None,
            env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        import yaml

        params_path = tmp_path / "params.yaml"
        if params is not None:
            params_path.write_text(yaml.safe_dump(params))
        full_env = {**os.environ, "SLUICE_PARAMS": str(params_path), **(env or {})}
        cmd = [sys.executable, "-m", module or "sluice.cli", *args]
        return subprocess.run(cmd, cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)

    return run


CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own services, which it calls on start-up whatever the page (component and extension
# updates, network time, sign-in) even with the flags below; a page's requests are everything else.
BROWSER_SERVICES = {"update.googleapis.com", "accounts.google.com", "clients2.google.com",
                    "optimizationguide-pa.googleapis.com", "safebrowsingohttpgateway.googleapis.com"}


def _host(request_line: str) -> str:
    """The host of a proxy request line (``CONNECT h:443 HTTP/1.1`` or ``GET http://h/path HTTP/1.1``)."""
    parts = request_line.split()
    target = parts[1] if len(parts) > 1 else ""
    return target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


class _RequestTrap:
    """A loopback 'proxy' that answers 403 to everything and records what was asked: with Chromium
    pointed at it (loopback included), every request the page makes that is not a local file lands
    here, so an empty list means nothing left the machine."""

    def __init__(self):
        import socket
        import threading

        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket

        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    line = "<unreadable>"
                if line:  # Chromium may open a spare connection to the proxy and close it unused
                    self.requests.append(line)

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def offline_chromium(tmp_path):
    """``render(page) -> (dom, requests)``: the DOM headless Chromium built from a local HTML file
    (after its scripts ran) and the request lines that tried to leave the machine (the proxy trap's),
    less those of Chromium's own services (``BROWSER_SERVICES``)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium: run scripts/ensure-chromium.sh")
    trap = _RequestTrap()

    def render(page: Path, budget_ms: int = 5000) -> tuple[str, list[str]]:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-first-run",
               "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
               f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
               f"--user-data-dir={tmp_path / 'chromium'}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
               Path(page).absolute().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, [r for r in trap.requests if _host(r) not in BROWSER_SERVICES]

    yield render
    trap.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def s3(monkeypatch):
    """A real S3-compatible server (moto) on loopback with one bucket; the AWS environment pointing at it."""
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="snapshots")
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
