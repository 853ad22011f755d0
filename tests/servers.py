"""Real servers for the tests, on 127.0.0.1: moto's S3 server and Debian's Prometheus (and a
stand-in that refuses every query)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it dies."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not come up within {timeout} s: {log.read_text()}")


@contextmanager
def running(command: list[str], ready_url: str, env: dict | None = None) -> Iterator[None]:
    """Run a server process until the block ends (TERM, then KILL after 10 s). Its output
    goes to a temporary file: a pipe nobody reads would block the server once full."""
    with tempfile.NamedTemporaryFile(prefix="server-", suffix=".log") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_http(ready_url, process, Path(log.name))
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def moto_server(auth: bool = False) -> Iterator[str]:
    """moto's S3 HTTP server; yields its endpoint URL. With `auth`, it checks credentials."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    env = None
    if auth:  # every request must be signed by an access key moto knows (none exist)
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    with running([str(moto), "-H", LOOPBACK, "-p", str(port)], f"{endpoint}/moto-api/", env):
        yield endpoint


def prometheus_binary() -> str:
    """Debian's `prometheus`; the tests fail, not skip, where it is missing."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus is not installed: apt-get install prometheus")
    return binary


@contextmanager
def prometheus_server(workdir: Path, scrape_config: dict) -> Iterator[str]:
    """A Prometheus scraping every 250 ms with one scrape config; yields its base URL."""
    port = free_port()
    every = {"scrape_interval": "250ms", "scrape_timeout": "250ms"}
    config = {"global": every, "scrape_configs": [scrape_config]}
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    url = f"http://{LOOPBACK}:{port}"
    command = [
        prometheus_binary(),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={LOOPBACK}:{port}",
    ]
    with running(command, f"{url}/-/ready"):
        yield url


def prometheus_query(url: str, query: str) -> list[dict]:
    """The result of an instant query."""
    params = urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


class _FlakyHandler(BaseHTTPRequestHandler):
    """Forwards to the upstream, but fails every third request: 503 SlowDown, 500, or a
    dropped connection, in turn."""

    protocol_version = "HTTP/1.1"
    FAULTS = ("503 SlowDown", "500 InternalError", "drop")

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: FlakyProxy = self.server  # type: ignore[assignment]
        fault = server.next_fault()
        if fault == "drop":
            self.close_connection = True
            return
        if fault:
            status, code = fault.split()
            payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            self.send_response(int(status))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(*server.upstream, timeout=60)
        upstream.request(self.command, self.path, body, dict(self.headers))
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else len(data)
        self.send_header("Content-Length", str(length or 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


class FlakyProxy(ThreadingHTTPServer):
    """An HTTP proxy on 127.0.0.1 in front of `endpoint` that injects transient faults."""

    daemon_threads = True

    def __init__(self, endpoint: str):
        super().__init__((LOOPBACK, 0), _FlakyHandler)
        host, port = endpoint.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.requests = 0
        self.faults_injected = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self.requests % 3:
                return None
            self.faults_injected += 1
            return _FlakyHandler.FAULTS[self.faults_injected % 3]


class _RefusingPrometheus(BaseHTTPRequestHandler):
    """Answers every query as Prometheus answers a PromQL syntax error."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "error", "error": "1:5: parse error"}).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def refusing_prometheus() -> Iterator[str]:
    """The URL of a Prometheus API that refuses every query (HTTP 400, a parse error)."""
    server = ThreadingHTTPServer((LOOPBACK, 0), _RefusingPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
