"""Runs the real ``trackstack`` server binary for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 20.0


def find_binary() -> Path | None:
    """``$TRACKSTACK_BIN``, else ``$CARGO_TARGET_DIR/debug/trackstack``, else ``<repo>/target``."""
    candidates = []
    if os.environ.get("TRACKSTACK_BIN"):
        candidates.append(Path(os.environ["TRACKSTACK_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "trackstack")
    candidates.append(REPO / "target" / "debug" / "trackstack")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


def require_binary() -> Path:
    binary = find_binary()
    if binary is None:
        reason = (
            "trackstack server binary not found: set TRACKSTACK_BIN, or build it with "
            "`cargo build -p trackstack-server` (looked in $CARGO_TARGET_DIR/debug and "
            f"{REPO / 'target' / 'debug'})"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server on a fixed port and data dir; ``stop()`` and ``start()`` restart it in place."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        port: int | None = None,
        storage_env: dict[str, str] | None = None,
        roles: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.storage_env = storage_env or {}
        self.roles = roles
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        # The server reads TRACKSTACK_* as configuration; keep the test's settings out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSTACK_")}
        env.setdefault("RUST_LOG", "info")
        env.update(self.storage_env)
        return env

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [
            str(self.binary),
            "server",
            "--data-dir",
            str(self.data_dir),
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        for role in self.roles:
            cmd += ["--role", role]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"trackstack server exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"trackstack server did not answer /api/v1/health within {START_TIMEOUT}s:\n"
                    f"{self.output()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Abrupt stop, like a crash or ``kill -9``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return "(no server output)"


SHAPES = ("all-in-one", "cluster")


def storage_env(shape: str) -> dict[str, str]:
    """Server settings for a storage shape.

    ``all-in-one`` is the embedded default. ``cluster`` puts metadata in Postgres, series in
    ClickHouse and blobs in S3 (the services ``make test`` starts), each deployment in a fresh
    schema, database and bucket prefix of its own.
    """
    if shape == "all-in-one":
        return {}
    postgres = os.environ.get("TRACKSTACK_TEST_POSTGRES_URL")
    clickhouse = os.environ.get("TRACKSTACK_TEST_CLICKHOUSE_URL")
    s3 = os.environ.get("TRACKSTACK_TEST_S3_URL")
    if not postgres or not clickhouse or not s3:
        reason = (
            "TRACKSTACK_TEST_POSTGRES_URL, TRACKSTACK_TEST_CLICKHOUSE_URL and "
            "TRACKSTACK_TEST_S3_URL are needed for the external-storage shape "
            "(`make test` starts the services)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"sdk_e2e_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres else "?"
    host = clickhouse.removeprefix("http://").rstrip("/")
    secret = os.environ.get("TRACKSTACK_TEST_S3_SECRET_ACCESS_KEY", "")
    test_env = os.environ.get
    return {
        "TRACKSTACK_STORAGE__METADATA": f"{postgres}{separator}schema={name}",
        "TRACKSTACK_STORAGE__SERIES": f"clickhouse://{host}/{name}",
        "TRACKSTACK_STORAGE__BLOBS": f"{s3.rstrip('/')}/{name}",
        "TRACKSTACK_STORAGE__S3__ENDPOINT": test_env("TRACKSTACK_TEST_S3_ENDPOINT", ""),
        "TRACKSTACK_STORAGE__S3__REGION": test_env("TRACKSTACK_TEST_S3_REGION", "us-east-1"),
        "TRACKSTACK_STORAGE__S3__ACCESS_KEY_ID": test_env("TRACKSTACK_TEST_S3_ACCESS_KEY_ID", ""),
        "TRACKSTACK_STORAGE__S3__SECRET_ACCESS_KEY": secret,
        "TRACKSTACK_STORAGE__S3__ALLOW_HTTP": "true",
    }


class _Router(BaseHTTPRequestHandler):
    """A load balancer in miniature: the write path to the ingest process, the rest to the api."""

    protocol_version = "HTTP/1.1"
    api_url = ""
    ingest_url = ""

    def _target(self) -> str:
        path = self.path.split("?", 1)[0]
        is_upload = path.startswith("/api/v1/blobs/") and self.command in ("PUT", "HEAD")
        if path == "/api/v1/ingest" or is_upload:
            return self.ingest_url
        return self.api_url

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            upstream = httpx.request(
                self.command,
                self._target() + self.path,
                content=body,
                headers=headers,
                timeout=60,
            )
        except httpx.HTTPError:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(upstream.status_code)
        for key, value in upstream.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        content = upstream.content
        declared = upstream.headers.get("content-length", str(len(content)))
        self.send_header(
            "Content-Length", declared if self.command == "HEAD" else str(len(content))
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        return


class ClusterProcess:
    """The cluster shape: ingest, api and processor as separate processes behind one routing front.

    It offers the interface of ``ServerProcess`` so the same tests run against it.
    """

    def __init__(self, binary: Path, data_dir: Path, storage_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.roles = {
            role: ServerProcess(binary, data_dir / role, storage_env=storage_env, roles=(role,))
            for role in ("api", "ingest", "processor")
        }
        self._front: ThreadingHTTPServer | None = None

    def start(self) -> None:
        for process in self.roles.values():
            process.start()
        if self._front is None:
            handler = type(
                "Router",
                (_Router,),
                {"api_url": self.roles["api"].url, "ingest_url": self.roles["ingest"].url},
            )
            self._front = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
            threading.Thread(target=self._front.serve_forever, daemon=True).start()

    def _stop_front(self) -> None:
        if self._front is not None:
            self._front.shutdown()
            self._front.server_close()
            self._front = None

    def stop(self) -> None:
        self._stop_front()
        for process in self.roles.values():
            process.stop()

    def kill(self) -> None:
        self._stop_front()
        for process in self.roles.values():
            process.kill()

    def output(self) -> str:
        return "\n".join(f"--- {role} ---\n{p.output()}" for role, p in self.roles.items())
