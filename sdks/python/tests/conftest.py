from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import track
from track import _http

from fakeserver import FakeServer
from server_fixture import SHAPES, ClusterProcess, ServerProcess, require_binary, storage_env

ENV_VARS = ("TRACKSTACK_URL", "TRACKSTACK_MODE", "TRACKSTACK_DIR", "TRACKSTACK_API_KEY")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's TRACKSTACK_* settings or leaves a current run behind."""
    for name in (*ENV_VARS, "TRACKSTACK_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKSTACK_DIR", str(tmp_path / "spool"))
    # A 415 seen by one test (an "old server") must not switch later tests to JSON.
    monkeypatch.setattr(_http, "_json_only_ingest", set())
    yield
    if track.run is not None:
        track.run.finish(timeout=5)


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def settings() -> track.Settings:
    """Short timings so that retry and spool paths run in milliseconds."""
    return track.Settings(
        flush_interval=0.02,
        retry_budget=0.2,
        replay_interval=0.05,
        spool_flush_interval=0.02,
        finish_timeout=10,
        init_timeout=0.5,
    )


@pytest.fixture
def spool_root(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture(scope="session", params=SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test runs against each storage shape."""
    return str(request.param)


def deployment(shape: str, data_dir: Path) -> ServerProcess | ClusterProcess:
    binary = require_binary()
    if shape == "cluster":
        return ClusterProcess(binary, data_dir, storage_env(shape))
    return ServerProcess(binary, data_dir, storage_env=storage_env(shape))


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, shape: str
) -> Iterator[ServerProcess | ClusterProcess]:
    """One deployment per shape, shared by the end-to-end tests that do not restart it."""
    proc = deployment(shape, tmp_path_factory.mktemp(f"server-{shape}") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def own_server(tmp_path: Path, shape: str) -> Iterator[ServerProcess | ClusterProcess]:
    """A deployment for one test, not started yet: tests start, stop and restart it."""
    proc = deployment(shape, tmp_path / "server-data")
    yield proc
    proc.stop()
