"""Retries, the on-disk spool, ordering, offline mode, `track sync`, artifacts (fake server)."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

import track
from track import _spool
from track._http import JSON, TRANSIENT, RetryPolicy, with_retry

from fakeserver import FakeServer
from protowire import decode_ingest


def start(fake: FakeServer, settings: track.Settings, **kwargs: Any) -> track.Run:
    kwargs.setdefault("project", "proj")
    return track.init(settings=settings, _transport=fake.transport, **kwargs)


def spooled(path: Path) -> list[tuple[str, Any]]:
    """Each pending entry's kind and body (a protobuf ingest body as its JSON equivalent)."""
    out = []
    for entry in _spool.Spool(path).entries():
        raw = gzip.decompress(entry.path.read_bytes())
        if entry.path.name.endswith(".pb.gz"):
            out.append((entry.kind, decode_ingest(raw)))
        else:
            out.append((entry.kind, json.loads(raw)))
    return out


def wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_server_down_at_init_spools_everything_then_replays(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    fake.down = True
    with pytest.warns(track.TrackstackWarning, match="cannot reach"):
        run = start(fake, settings, config={"lr": 0.1}, tags=["t"])
    spool_dir = spool_root / f"run-{run.id}"
    meta = json.loads((spool_dir / "run.json").read_text())
    assert meta["created"] is False and meta["project"] == "proj"
    assert meta["create"]["id"] == run.id and meta["create"]["config"] == {"lr": 0.1}
    for i in range(200):
        run.log({"loss": float(i)})
    wait_until(lambda: _spool.Spool(spool_dir).pending_count() > 0)
    fake.down = False
    result = run.finish()
    assert result.ok, result
    assert result.spooled_batches == 0
    assert fake.history(run.id) == {i: {"loss": float(i)} for i in range(200)}
    assert fake.runs[run.id]["state"] == "finished"
    assert fake.runs[run.id]["config"] == {"lr": 0.1}
    assert (spool_dir / "synced").exists()
    assert _spool.Spool(spool_dir).pending_count() == 0


def test_outage_mid_run_keeps_order(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    settings.replay_interval = 60  # no replay until finish
    run = start(fake, settings)
    run.config["version"] = 0
    run.log({"m": 0.0})
    wait_until(lambda: any("config" in b for b in fake.ingests()))
    fake.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in range(1, 4):
            run.config["version"] = v
            run.log({"m": float(v)})
            time.sleep(0.3)  # > retry budget: each batch ends in the spool
    fake.down = False
    # The server is back, but newer batches must queue behind the spooled ones.
    for v in range(4, 7):
        run.config["version"] = v
        run.log({"m": float(v)})
        time.sleep(0.05)
    spool_dir = spool_root / f"run-{run.id}"
    assert _spool.Spool(spool_dir).pending_count() >= 4
    versions_sent_before = [b["config"]["version"] for b in fake.ingests() if "config" in b]
    assert versions_sent_before == [0]
    result = run.finish()
    assert result.ok, result
    versions = [b["config"]["version"] for b in fake.ingests() if "config" in b]
    assert versions == sorted(versions) and versions[-1] == 6
    assert fake.runs[run.id]["config"] == {"version": 6}
    assert fake.history(run.id) == {i: {"m": float(i)} for i in range(7)}
    seqs = [m for m, p, b in fake.requests if p == "/api/v1/ingest"]
    assert len(seqs) == len(fake.ingests())


def test_spool_replays_in_the_background(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    fake.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = start(fake, settings)
    for i in range(10):
        run.log({"x": float(i)})
    time.sleep(0.2)
    fake.down = False
    wait_until(lambda: len(fake.history(run.id)) == 10)
    wait_until(lambda: _spool.Spool(spool_root / f"run-{run.id}").pending_count() == 0)
    run.log({"x": 10.0})
    assert run.finish().ok


def test_transient_errors_are_retried_with_retry_after(
    fake: FakeServer, settings: track.Settings
) -> None:
    settings.retry_budget = 3
    failures = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/v1/ingest" and failures["n"] < 3:
            failures["n"] += 1
            if failures["n"] == 1:
                return httpx.Response(429, headers={"Retry-After": "0.1"})
            if failures["n"] == 2:
                return httpx.Response(
                    503, json={"error": {"code": "unavailable", "message": "busy"}}
                )
            raise httpx.ReadTimeout("slow", request=request)
        return None

    fake.intercept = flaky
    run = start(fake, settings)
    run.log({"a": 1.0})
    result = run.finish()
    assert result.ok and result.spooled_batches == 0 and result.spool_dir is None
    assert failures["n"] == 3
    assert fake.history(run.id) == {0: {"a": 1.0}}


def _busy(retry_after: str) -> httpx.Response:
    err = {"error": {"code": "unavailable", "message": "saturated"}}
    return httpx.Response(503, headers={"Retry-After": retry_after}, json=err)


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    stamps: list[float] = []

    def send() -> httpx.Response:
        stamps.append(time.monotonic())
        if len(stamps) <= 2:
            return _busy("0.3")
        if len(stamps) <= 4:
            return _busy("0")  # "now" still waits for the backoff, which keeps growing
        return httpx.Response(200, json={"accepted_points": 1})

    out = with_retry(send, RetryPolicy(budget=10, initial=0.2, maximum=2.0))
    assert out.ok and len(stamps) == 5
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.3
    # The jittered delays are drawn from [d/2, d] with d = 0.2, 0.4, 0.8, 1.6.
    assert gaps[2] >= 0.4 and gaps[3] >= 0.8


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    calls = []

    def send() -> httpx.Response:
        calls.append(1)
        return _busy("30")

    t0 = time.monotonic()
    out = with_retry(send, RetryPolicy(budget=1))
    assert time.monotonic() - t0 < 0.5 and len(calls) == 1
    assert out.kind == TRANSIENT and out.retry_after == 30.0


def test_saturated_server_503_retry_after_is_waited_for(
    fake: FakeServer, settings: track.Settings
) -> None:
    settings.retry_budget = 3
    stamps: list[float] = []

    def saturated(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/v1/ingest":
            stamps.append(time.monotonic())
            if len(stamps) <= 2:
                return _busy("0.3")
        return None

    fake.intercept = saturated
    run = start(fake, settings)
    for i in range(100):
        run.log({"a": float(i)})
    result = run.finish()
    assert result.ok and result.spooled_batches == 0 and result.spool_dir is None
    assert stamps[1] - stamps[0] >= 0.3 and stamps[2] - stamps[1] >= 0.3
    assert fake.history(run.id) == {i: {"a": float(i)} for i in range(100)}


def test_long_retry_after_spools_and_the_replay_waits_for_it(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    settings.retry_budget = 0.2  # shorter than Retry-After: straight to the spool
    settings.replay_interval = 0.05
    busy = threading.Event()
    busy.set()
    stamps: list[float] = []

    def saturated(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/v1/ingest":
            stamps.append(time.monotonic())
            if busy.is_set():
                return _busy("1")
        return None

    fake.intercept = saturated
    run = start(fake, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.log({"a": 1.0})
        wait_until(lambda: len(stamps) == 1)
        time.sleep(0.5)
        # Replays are due every 0.05 s, but not before the server's Retry-After.
        assert len(stamps) == 1
        assert _spool.Spool(spool_root / f"run-{run.id}").pending_count() == 1
        busy.clear()
        run.log({"a": 2.0})
        wait_until(lambda: len(fake.history(run.id)) == 2)
    assert stamps[1] - stamps[0] >= 1.0
    result = run.finish()
    assert result.ok and result.spooled_batches == 0
    assert fake.history(run.id) == {0: {"a": 1.0}, 1: {"a": 2.0}}


def test_old_json_spool_entries_replay_next_to_protobuf_ones(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline")
    run.log({"a": math.nan})
    result = run.finish()
    spool = _spool.Spool(spool_root / f"offline-run-{run.id}")
    types = [e.content_type for e in spool.entries()]
    assert types and set(types) == {"application/x-protobuf"}
    assert all(e.path.name.endswith(".ingest.pb.gz") for e in spool.entries())
    # An entry as an SDK from before protobuf wrote it.
    old = {"run_id": run.id, "metrics": [{"key": "b", "step": 7, "value": "Infinity"}]}
    (spool.batches / "0000000099.ingest.json.gz").write_bytes(
        gzip.compress(json.dumps(old).encode())
    )
    assert [e.content_type for e in spool.entries()] == [*types, JSON]
    report = track.sync(spool_root, _transport=fake.transport)
    assert report.ok and report.runs[0].sent == len(types) + 1 and result.ok
    assert fake.history(run.id) == {0: {"a": "NaN"}, 7: {"b": "Infinity"}}
    assert [t for t, _ in fake.ingest_encodings] == [*types, JSON]


def test_protobuf_spool_syncs_to_a_server_without_protobuf(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline", config={"lr": 0.5}, tags=["t"])
    for i in range(300):
        run.log({"loss": 1 / (i + 1), "inf": -math.inf})
    run.config["bs"] = 8
    assert run.finish().ok
    fake.protobuf = False
    report = track.sync(spool_root, _transport=fake.transport)
    assert report.ok, report
    hist = fake.history(run.id)
    assert len(hist) == 300 and hist[299] == {"loss": 1 / 300, "inf": "-Infinity"}
    assert fake.runs[run.id]["config"] == {"lr": 0.5, "bs": 8}
    assert fake.runs[run.id]["tags"] == ["t"] and fake.runs[run.id]["state"] == "finished"
    # The first entry was refused as protobuf and resent as JSON; the rest went as JSON directly.
    types = [t for t, _ in fake.ingest_encodings]
    assert types[:2] == ["application/x-protobuf", JSON] and set(types[2:]) == {JSON}


def test_permanent_rejection_is_dropped_and_reported(
    fake: FakeServer, settings: track.Settings
) -> None:
    calls = {"n": 0}

    def reject_first(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/v1/ingest" and calls["n"] == 0:
            calls["n"] += 1
            err = {"code": "invalid_argument", "message": "bad", "field": "metrics[0].key"}
            return httpx.Response(400, json={"error": err})
        return None

    fake.intercept = reject_first
    run = start(fake, settings)
    with pytest.warns(track.TrackstackWarning, match="invalid_argument"):
        run.log({"a": 1.0})
        time.sleep(0.2)
        run.log({"a": 2.0})
        result = run.finish()
    assert calls["n"] == 1, "a 4xx is not retried"
    assert not result.ok and result.rejected_batches == 1
    assert any("metrics[0].key" in w for w in result.warnings)
    assert fake.history(run.id) == {1: {"a": 2.0}}


def test_persistent_5xx_goes_to_the_spool(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    fake.intercept = lambda r: (
        httpx.Response(500, json={"error": {"code": "internal", "message": "disk"}})
        if r.url.path == "/api/v1/ingest"
        else None
    )
    run = start(fake, settings)
    run.log({"a": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run.finish(timeout=1)
    assert not result.ok
    assert result.spooled_batches >= 1
    assert result.spool_dir == str(spool_root / f"run-{run.id}")
    assert any("track sync" in w for w in result.warnings)
    kinds = [k for k, _ in spooled(Path(result.spool_dir))]
    assert set(kinds) == {"ingest"}
    # The leftover spool uploads with `track sync` once the server is healthy.
    fake.intercept = None
    report = track.sync(spool_root, _transport=fake.transport)
    assert report.ok
    assert fake.history(run.id) == {0: {"a": 1.0}}
    assert fake.runs[run.id]["state"] == "finished"


def test_finish_timeout_bounds_the_wait(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    settings.retry_budget = 30
    fake.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = start(fake, settings, id="slowfin1")  # spooled from the start
    fake.down = False
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response | None:
        release.wait(2)
        raise httpx.ConnectError("still down", request=request)

    fake.intercept = hang
    run.log({"a": 1.0})
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run.finish(timeout=0.5)
    release.set()
    assert time.monotonic() - t0 < 4
    assert not result.ok and result.spooled_batches >= 1


def test_offline_run_then_sync_twice(
    fake: FakeServer, settings: track.Settings, spool_root: Path, tmp_path: Path
) -> None:
    data = tmp_path / "model.bin"
    data.write_bytes(os.urandom(3 << 20))
    run = start(fake, settings, mode="offline", config={"lr": 0.5}, tags=["off"])
    for i in range(50):
        run.log({"loss": 1 / (i + 1), "nan": float("nan")})
    run.summary["best"] = 1.0
    run.log_artifact(data, aliases=["best"])
    run.log({"after": 1.0})
    result = run.finish()
    assert result.ok and result.spooled_batches >= 2 and fake.requests == []
    spool_dir = spool_root / f"offline-run-{run.id}"
    assert result.spool_dir == str(spool_dir)
    kinds = [k for k, _ in spooled(spool_dir)]
    assert "artifact" in kinds and kinds[-1] == "ingest"
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert (spool_dir / "artifacts" / "blobs" / digest).exists()

    report = track.sync(spool_root, _transport=fake.transport)
    assert report.ok and len(report.runs) == 1 and report.runs[0].sent == len(kinds)
    assert len(fake.history(run.id)) == 51
    assert fake.runs[run.id]["state"] == "finished"
    assert fake.runs[run.id]["config"] == {"lr": 0.5}
    assert fake.runs[run.id]["summary"] == {"best": 1.0}
    assert fake.blobs[digest] == data.read_bytes()
    assert fake.artifacts[0]["name"] == "model.bin" and fake.artifacts[0]["aliases"] == ["best"]
    assert (spool_dir / "synced").exists() and not (spool_dir / "artifacts" / "blobs").exists()

    n = len(fake.requests)
    again = track.sync(spool_root, _transport=fake.transport)
    assert again.ok and again.runs[0].skipped == "already synced"
    assert len(fake.requests) == n, "a second sync sends nothing"


def test_offline_resume_continues_the_step(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings, mode="offline", id="offres01")
    run.log({"a": 1.0})
    run.log({"a": 2.0})
    run.finish()
    again = start(fake, settings, mode="offline", id="offres01", resume="allow")
    assert again.step == 2
    again.log({"a": 3.0})
    again.finish()
    assert track.sync(_transport=fake.transport).ok
    assert fake.history("offres01") == {0: {"a": 1.0}, 1: {"a": 2.0}, 2: {"a": 3.0}}


def test_sync_marks_an_abandoned_spool_crashed(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline")
    run.log({"a": 1.0})
    # Simulate a process killed before finish(): the sender wrote its batch, nobody finished.
    wait_until(lambda: _spool.Spool(spool_root / f"offline-run-{run.id}").pending_count() > 0)
    run._sender._closing.set()  # type: ignore[union-attr]
    run._sender.wake.set()  # type: ignore[union-attr]
    run._sender._thread.join()  # type: ignore[union-attr]
    spool_dir = spool_root / f"offline-run-{run.id}"
    _spool.Spool(spool_dir).update_meta(finished=False)
    report = track.sync(spool_dir, _transport=fake.transport)
    assert report.ok
    assert fake.runs[run.id]["state"] == "crashed"
    assert fake.history(run.id) == {0: {"a": 1.0}}


def test_sync_skips_a_spool_in_use(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline")
    run.log({"a": 1.0})
    report = track.sync(spool_root, _transport=fake.transport)
    assert report.runs[0].skipped == "in use by a running process"
    assert fake.requests == []
    run.finish()
    assert track.sync(spool_root, _transport=fake.transport).ok


def test_sync_failure_keeps_entries(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline")
    run.log({"a": 1.0})
    run.finish()
    fake.down = True
    report = track.sync(spool_root, retry_budget=0.1, _transport=fake.transport)
    assert not report.ok and report.runs[0].error
    spool_dir = spool_root / f"offline-run-{run.id}"
    assert _spool.Spool(spool_dir).pending_count() >= 1
    fake.down = False
    assert track.sync(spool_root, _transport=fake.transport).ok


def test_sync_rejected_entries_are_kept_aside(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, mode="offline")
    run.log({"a": 1.0})
    run.finish()
    fake.intercept = lambda r: (
        httpx.Response(400, json={"error": {"code": "invalid_argument", "message": "no"}})
        if r.url.path == "/api/v1/ingest"
        else None
    )
    report = track.sync(spool_root, _transport=fake.transport)
    assert not report.ok and report.runs[0].rejected
    spool_dir = spool_root / f"offline-run-{run.id}"
    assert list((spool_dir / "rejected").iterdir())
    assert _spool.Spool(spool_dir).pending_count() == 0


def test_artifacts_online_file_and_directory(
    fake: FakeServer, settings: track.Settings, tmp_path: Path
) -> None:
    single = tmp_path / "weights v1.pt"
    single.write_bytes(b"w" * 1000)
    folder = tmp_path / "dataset"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    (folder / "sub" / "same.txt").write_text("alpha")  # same content: one blob
    (folder / "empty.bin").write_bytes(b"")
    run = start(fake, settings)
    run.log({"step0": 1.0})
    assert run.log_artifact(single) == "weights_v1.pt"
    assert run.log_artifact(folder, name="ds", type="dataset", metadata={"rows": 2}) == "ds"
    run.log_artifact(folder, name="ds", type="dataset")  # unchanged: no new version
    result = run.finish()
    assert result.ok, result
    names = [(a["name"], a["version"]) for a in fake.artifacts]
    assert names == [("weights_v1.pt", "v0"), ("ds", "v0")]
    files = {f["path"]: f for f in fake.artifacts[1]["files"]}
    assert set(files) == {"a.txt", "empty.bin", "sub/b.txt", "sub/same.txt"}
    assert files["a.txt"]["digest"] == files["sub/same.txt"]["digest"]
    assert fake.artifacts[1]["metadata"] == {"rows": 2} and fake.artifacts[1]["type"] == "dataset"
    puts = [p for m, p, _ in fake.requests if m == "PUT"]
    assert len(puts) == len(set(puts)) == 4  # weights, alpha, beta, empty
    # Order: the metric logged before the artifact was sent before it.
    paths = [p for _, p, _ in fake.requests]
    assert paths.index("/api/v1/ingest") < paths.index(f"/api/v1/runs/{run.id}/artifacts")


def test_artifact_problems_warn_instead_of_raising(
    fake: FakeServer, settings: track.Settings, tmp_path: Path
) -> None:
    run = start(fake, settings)
    with pytest.warns(track.TrackstackWarning, match="no such file"):
        assert run.log_artifact(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    with pytest.warns(track.TrackstackWarning, match="no files"):
        assert run.log_artifact(tmp_path / "empty") is None
    with pytest.raises(ValueError):
        run.log_artifact(__file__, name="bad name")
    gone = tmp_path / "gone.txt"
    gone.write_text("x")
    run.log_artifact(gone)
    gone.unlink()  # removed before the sender read it (likely; either outcome is handled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run.finish()
    assert result.rejected_batches in (0, 1)


def test_artifact_spooled_when_server_down(
    fake: FakeServer, settings: track.Settings, tmp_path: Path, spool_root: Path
) -> None:
    f = tmp_path / "ckpt.bin"
    f.write_bytes(b"c" * 5000)
    fake.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = start(fake, settings)
        run.log_artifact(f)
        time.sleep(0.1)
    fake.down = False
    result = run.finish()
    assert result.ok, result
    assert fake.artifacts and fake.blobs[fake.artifacts[0]["files"][0]["digest"]] == b"c" * 5000


def test_cli_sync_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "TRACKSTACK_URL": "http://127.0.0.1:9"}
    empty = subprocess.run(
        [sys.executable, "-m", "track.cli", "sync", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert empty.returncode == 0 and "nothing to sync" in empty.stdout
    run = track.init(project="p", mode="offline", dir=tmp_path)
    run.log({"a": 1.0})
    run.finish()
    failed = subprocess.run(
        [sys.executable, "-m", "track.cli", "sync", str(tmp_path), "--retry-timeout", "0.3"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 failed" in failed.stdout


def test_leftover_spool_of_the_same_run_is_replayed_first(
    fake: FakeServer, settings: track.Settings, spool_root: Path
) -> None:
    run = start(fake, settings, id="leftov01")
    fake.down = True
    run.config["version"] = 1
    run.log({"a": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run.finish(timeout=0.3)
    assert result.spooled_batches >= 1
    fake.down = False
    again = start(fake, settings, id="leftov01", resume="allow")
    assert again.step == 1, "the spooled step 0 counts as logged"
    again.config["version"] = 2
    again.log({"a": 2.0})
    assert again.finish().ok
    versions = [b["config"]["version"] for b in fake.ingests() if "version" in b.get("config", {})]
    assert versions == [1, 2]
    assert fake.runs["leftov01"]["config"] == {"version": 2}
    assert (spool_root / "run-leftov01" / "synced").exists()
