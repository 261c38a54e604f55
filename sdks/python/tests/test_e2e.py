"""End to end against the real ``trackstack`` server binary (see server_fixture.py).

Skipped when the binary is missing, unless ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import gzip
import hashlib
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
from track import errors

from server_fixture import ClusterProcess, ServerProcess, require_binary, storage_env

pytestmark = pytest.mark.e2e


def fast() -> track.Settings:
    return track.Settings(
        flush_interval=0.05,
        retry_budget=0.5,
        replay_interval=0.2,
        spool_flush_interval=0.05,
        finish_timeout=30,
    )


def start(server: ServerProcess, **kwargs: Any) -> track.Run:
    kwargs.setdefault("project", "e2e")
    kwargs.setdefault("settings", fast())
    return track.init(url=server.url, **kwargs)


def counts(api: track.Api, run_id: str) -> dict[str, int]:
    return {m["key"]: m["count"] for m in api.run(run_id).metrics()}


# -- the SDK round trip --------------------------------------------------------------------------


def test_full_round_trip(server: ServerProcess, tmp_path: Path) -> None:
    single = tmp_path / "model.pt"
    single.write_bytes(os.urandom(2 << 20) + b"tail")
    folder = tmp_path / "data"
    (folder / "split" / "deep").mkdir(parents=True)
    (folder / "train.csv").write_text("a,b\n1,2\n")
    (folder / "split" / "deep" / "x.bin").write_bytes(os.urandom(70_000))
    (folder / "split" / "copy.csv").write_text("a,b\n1,2\n")
    (folder / "empty").write_bytes(b"")

    run = start(
        server,
        name="round trip",
        config={"lr": 0.001, "opt": {"name": "adam", "betas": [0.9, 0.99]}},
        tags=["baseline", "e2e"],
        group="g1",
        job_type="train",
        notes="hello",
    )
    for step in range(100):
        run.log({"train": {"loss": 1 / (step + 1)}, "lr": 0.001})
    run.log({"weird/nan": math.nan, "weird/inf": math.inf, "weird/ninf": -math.inf})
    run.config["batch_size"] = 64
    run.summary["best_acc"] = 0.93
    run.tags = [*run.tags, "extra"]
    run.log_artifact(single, type="model", aliases=["best"], metadata={"epoch": 3})
    run.log_artifact(folder, name="dataset", type="dataset")
    result = run.finish()
    assert result.ok, result
    assert result.accepted_points == 203

    api = track.Api(server.url)
    got = api.run(f"e2e/{run.id}")
    assert got.state == "finished"
    assert got.exit_code == 0
    assert got.ended_at is not None
    assert got.name == "round trip"
    assert got.group == "g1"
    assert got.job_type == "train"
    assert got.notes == "hello"
    assert got.tags == ["baseline", "e2e", "extra"]
    assert got.config == {
        "lr": 0.001,
        "opt": {"name": "adam", "betas": [0.9, 0.99]},
        "batch_size": 64,
    }
    assert got.summary["best_acc"] == 0.93
    assert got.summary["train/loss"] == 0.01
    assert math.isnan(got.summary["weird/nan"])
    assert got.summary["weird/inf"] == math.inf
    assert got.metadata["pid"] == os.getpid()
    assert got.metadata["python"]

    history = got.history()
    assert [r["_step"] for r in history] == list(range(101))
    assert history[7] == {"_step": 7, "train/loss": 1 / 8, "lr": 0.001}
    last = history[100]
    assert math.isnan(last["weird/nan"])
    assert last["weird/inf"] == math.inf
    assert last["weird/ninf"] == -math.inf
    assert counts(api, run.id) == {
        "lr": 100,
        "train/loss": 100,
        "weird/inf": 1,
        "weird/nan": 1,
        "weird/ninf": 1,
    }
    buckets = got.scan("train/loss", buckets=10)
    assert sum(b["count"] for b in buckets) == 100
    assert buckets[0]["max"] == 1.0
    nan_bucket = got.scan("weird/nan", buckets=1)[0]
    assert nan_bucket["min"] is None
    assert math.isnan(nan_bucket["last"])

    arts = {a.name: a for a in got.artifacts()}
    assert set(arts) == {"model.pt", "dataset"}
    model = arts["model.pt"]
    assert model.version == "v0"
    assert model.type == "model"
    assert "best" in model.aliases
    assert model.metadata == {"epoch": 3}
    assert model.size == single.stat().st_size
    out = Path(model.download(tmp_path / "dl-model"))
    assert (out / "model.pt").read_bytes() == single.read_bytes()

    dataset = api.artifact("e2e/dataset:latest")
    assert {f.path for f in dataset.files} == {
        "train.csv",
        "split/deep/x.bin",
        "split/copy.csv",
        "empty",
    }
    out = Path(dataset.download(tmp_path / "dl-data"))
    for f in dataset.files:
        assert (out / f.path).read_bytes() == (folder / f.path).read_bytes()
    assert api.artifact("e2e/model.pt:best").digest == model.digest

    # Logging unchanged content again makes no new version; changed content makes v1.
    again = start(server, id=run.id, resume="must")
    again.log_artifact(folder, name="dataset", type="dataset")
    assert again.finish().ok
    assert api.artifact("e2e/dataset:latest").version == "v0"
    (folder / "train.csv").write_text("a,b\n3,4\n")
    again = start(server, id=run.id, resume="must")
    again.log_artifact(folder, name="dataset", type="dataset")
    assert again.finish().ok
    assert api.artifact("e2e/dataset:latest").version == "v1"
    assert api.artifact("e2e/dataset:v0").digest == dataset.digest


def test_history_follows_series_pages(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from track import api as api_module

    run = start(server)
    for i in range(50):
        run.log({"a": float(i), **({"b": float(-i)} if i % 3 == 0 else {})})
    assert run.finish().ok
    monkeypatch.setattr(api_module, "_SERIES_PAGE", 7)
    got = track.Api(server.url).run(run.id)
    rows = got.history()
    assert [r["_step"] for r in rows] == list(range(50))
    assert [r["_step"] for r in rows if "b" in r] == list(range(0, 50, 3))
    assert len(got.points("a", start=10, end=29)) == 20


def test_auto_step_and_commit_false(server: ServerProcess) -> None:
    run = start(server)
    run.log({"a": 1.0}, commit=False)
    run.log({"a": 2.0, "b": 1.0}, commit=False)  # same row: a is overwritten
    run.log({"c": 1.0})  # commits row 0
    run.log({"a": 3.0})  # row 1
    run.log({"x": 5.0}, step=10)
    run.log({"y": 6.0})  # joins row 10, commits it
    run.log({"z": 7.0})  # row 11
    assert run.finish().ok
    rows = track.Api(server.url).run(run.id).history()
    assert rows == [
        {"_step": 0, "a": 2.0, "b": 1.0, "c": 1.0},
        {"_step": 1, "a": 3.0},
        {"_step": 10, "x": 5.0, "y": 6.0},
        {"_step": 11, "z": 7.0},
    ]


def test_lower_step_is_written(server: ServerProcess) -> None:
    run = start(server)
    for i in range(20):
        run.log({"m": float(i)})
    run.log({"m": -1.0}, step=3)
    assert run.finish().ok
    rows = track.Api(server.url).run(run.id).history()
    assert len(rows) == 20
    assert rows[3] == {"_step": 3, "m": -1.0}


def test_with_block_exception_marks_failed(server: ServerProcess) -> None:
    with pytest.raises(RuntimeError, match="boom"), start(server) as run:
        run.log({"a": 1.0})
        raise RuntimeError("boom")
    got = track.Api(server.url).run(run.id)
    assert got.state == "failed"
    assert got.exit_code == 1


def test_resume_continues_the_step(server: ServerProcess) -> None:
    first = start(server, config={"epochs": 1})
    for i in range(5):
        first.log({"loss": float(i)})
    assert first.finish().ok
    again = start(server, id=first.id, resume="must", config={"epochs": 2})
    assert again.step == 5
    assert again.config.as_dict() == {"epochs": 2}
    again.log({"loss": 5.0})
    assert again.finish().ok
    got = track.Api(server.url).run(first.id)
    assert [r["_step"] for r in got.history()] == list(range(6))
    assert got.config == {"epochs": 2}
    assert got.state == "finished"
    with pytest.raises(errors.NotFoundError):
        start(server, id="doesnotexist42", resume="must")
    with pytest.raises(errors.AlreadyExistsError):
        start(server, id=first.id, project="another-project")


def test_runs_pagination(server: ServerProcess) -> None:
    project = "paginate"
    with httpx.Client(base_url=server.url) as client:
        for i in range(250):
            r = client.post(
                f"/api/v1/projects/{project}/runs",
                json={"id": f"page{i:04d}", "name": f"run {i}", "tags": ["odd"] if i % 2 else []},
            )
            assert r.status_code == 201, r.text
    api = track.Api(server.url)
    ids = [r.id for r in api.runs(project)]
    assert len(ids) == 250
    assert len(set(ids)) == 250
    assert len(list(api.runs(project, per_page=7, limit=30))) == 30
    assert len(list(api.runs(project, limit=120))) == 120
    assert sum(1 for _ in api.runs(project, filter={"tag": "odd"})) == 125
    names = [r.name for r in api.runs(project, order="name", filter={"name": "RUN 24"})]
    assert names == sorted(names)
    assert len(names) == 11  # "run 24" and "run 240".."run 249"
    assert [r.id for r in api.runs(project, order="created_at", limit=1)] == ["page0000"]


def test_runs_filtered_with_the_query_language(server: ServerProcess) -> None:
    for seed, lr in enumerate([0.1, 0.01, 0.001]):
        run = start(server, project="ql", config={"lr": lr, "seed": seed}, tags=["sweep"])
        run.log({"val/acc": 0.5 + lr})
        run.finish()
    api = track.Api(server.url)
    found = list(
        api.runs("ql", filter="config.lr < 0.05 and summary.val/acc > 0.505", order="created_at")
    )
    assert [r.config["lr"] for r in found] == [0.01]
    assert len(list(api.runs("ql", filter="tags contains sweep", per_page=1))) == 3
    with pytest.raises(errors.InvalidArgumentError, match="at position 11: expected a number"):
        list(api.runs("ql", filter="config.lr >"))
    by_acc = [r.config["lr"] for r in api.runs("ql", order="-summary.val/acc", per_page=2)]
    assert by_acc == [0.1, 0.01, 0.001]
    with pytest.raises(errors.InvalidArgumentError, match="sort"):
        list(api.runs("ql", order="-tags"))
    groups = api.group_runs("ql", ["config.seed"], ["summary.val/acc"], filter="config.lr < 0.05")
    assert [g["key"] for g in groups] == [[1], [2]]
    assert groups[0]["columns"]["summary.val/acc"]["mean"] == pytest.approx(0.51)


def test_project_retention_round_trips(server: ServerProcess) -> None:
    api = track.Api(server.url)
    start(server, project="retained").finish()
    project = api.set_retention("retained", points_days=30)
    assert project.retention == track.api.Retention(runs_days=None, points_days=30)
    assert api.project("retained").retention.points_days == 30
    with pytest.raises(track.errors.InvalidArgumentError, match=r"retention\.runs_days"):
        api.set_retention("retained", runs_days=0)
    assert api.set_retention("retained").retention == track.api.Retention()


def test_refused_points_are_counted_on_the_run(server: ServerProcess) -> None:
    run = start(server, project="refusals")
    with httpx.Client(base_url=server.url) as client:
        points = [{"key": "k" * 300, "step": 0, "value": 1.0}]
        r = client.post("/api/v1/ingest", json={"run_id": run.id, "metrics": points})
        assert r.status_code == 400, r.text
    run.finish()
    fetched = track.Api(server.url).run(f"refusals/{run.id}")
    assert fetched.rejected_points == 1
    assert fetched.last_rejection is not None and "256" in fetched.last_rejection


# -- offline and sync ----------------------------------------------------------------------------


def test_offline_then_sync_twice(server: ServerProcess, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(300_000))
    run = track.init(project="offline", mode="offline", dir=spool, config={"k": 1}, tags=["off"])
    for i in range(300):
        run.log({"loss": 1 / (i + 1), "bad": math.nan if i % 10 == 0 else float(i)})
    run.summary["final"] = 1.0
    run.log_artifact(artifact)
    result = run.finish()
    assert result.ok
    assert result.spooled_batches > 0

    def sync() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TRACKSTACK_URL": server.url}
        return subprocess.run(
            [sys.executable, "-m", "track.cli", "sync", str(spool)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    first = sync()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 run(s) synced" in first.stdout
    api = track.Api(server.url)
    got = api.run(f"offline/{run.id}")
    assert got.state == "finished"
    assert got.config == {"k": 1}
    assert got.tags == ["off"]
    assert got.summary["final"] == 1.0
    assert counts(api, run.id) == {"bad": 300, "loss": 300}
    (art,) = got.artifacts()
    assert art.version == "v0"
    out = Path(art.download(tmp_path / "dl"))
    assert (out / "weights.bin").read_bytes() == artifact.read_bytes()
    before = got.raw

    second = sync()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already synced" in second.stdout
    again = api.run(run.id)
    assert counts(api, run.id) == {"bad": 300, "loss": 300}
    assert [a.version for a in again.artifacts()] == ["v0"]
    assert again.raw == before
    assert len(list(api.runs("offline"))) == 1


def test_track_entry_point_exists() -> None:
    exe = Path(sys.executable).parent / "track"
    if not exe.exists():
        pytest.skip("the `track` console script is not installed in this environment")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "trackstack" in out.stdout


# -- outages -------------------------------------------------------------------------------------


def test_server_started_late(own_server: ServerProcess, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = start(own_server, dir=tmp_path / "spool", config={"late": True})
        for i in range(200):
            run.log({"v": float(i)})
        own_server.start()
        result = run.finish()
    assert result.ok, result
    api = track.Api(own_server.url)
    got = api.run(run.id)
    assert got.state == "finished"
    assert got.config == {"late": True}
    assert counts(api, run.id) == {"v": 200}
    assert [r["v"] for r in got.history()] == [float(i) for i in range(200)]


def test_server_restarted_mid_run(own_server: ServerProcess, tmp_path: Path) -> None:
    own_server.start()
    run = start(own_server, dir=tmp_path / "spool")
    stop_logging = threading.Event()
    logged: list[int] = []

    def train() -> None:
        i = 0
        while not stop_logging.is_set():
            run.log({"loss": 1 / (i + 1), "i": float(i)})
            logged.append(i)
            i += 1
            time.sleep(0.002)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = threading.Thread(target=train)
        t.start()
        time.sleep(0.5)
        own_server.kill()  # like a crash: no graceful shutdown
        time.sleep(1.5)  # longer than the retry budget: batches go to the spool
        own_server.start()
        time.sleep(0.5)
        own_server.stop()  # and once more, gracefully this time
        time.sleep(0.3)
        own_server.start()
        time.sleep(0.3)
        stop_logging.set()
        t.join()
        result = run.finish()
    assert result.ok, result
    n = len(logged)
    api = track.Api(own_server.url)
    assert counts(api, run.id) == {"i": n, "loss": n}
    rows = api.run(run.id).history()
    assert [r["_step"] for r in rows] == list(range(n))
    assert all(r["i"] == float(r["_step"]) for r in rows)


def test_restart_keeps_all_data(own_server: ServerProcess, tmp_path: Path) -> None:
    own_server.start()
    art = tmp_path / "a.txt"
    art.write_text("persist me")
    run = start(own_server, config={"a": 1}, tags=["keep"])
    for i in range(1000):
        run.log({"x": float(i)})
    run.summary["s"] = "v"
    run.log_artifact(art)
    assert run.finish().ok
    api = track.Api(own_server.url)
    before = api.run(run.id)
    own_server.stop()
    own_server.start()
    after = api.run(run.id)
    assert after.raw == before.raw
    assert counts(api, run.id) == {"x": 1000}
    assert len(after.history()) == 1000
    out = Path(after.artifacts()[0].download(tmp_path / "dl"))
    assert (out / "a.txt").read_text() == "persist me"
    own_server.kill()
    own_server.start()
    assert counts(api, run.id) == {"x": 1000}


# -- the contract for bad input (raw HTTP) -------------------------------------------------------


@pytest.fixture
def raw(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.url + "/api/v1", timeout=60) as client:
        yield client


@pytest.fixture
def fresh_run(raw: httpx.Client) -> str:
    run_id = "raw" + hashlib.sha256(os.urandom(8)).hexdigest()[:10]
    r = raw.post("/projects/rawtests/runs", json={"id": run_id, "config": {"keep": 1}})
    assert r.status_code == 201, r.text
    return run_id


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    return body["error"]


def assert_nothing_written(raw: httpx.Client, run_id: str) -> None:
    assert raw.get(f"/runs/{run_id}/metrics").json() == {"metrics": []}
    run = raw.get(f"/runs/{run_id}").json()
    assert run["config"] == {"keep": 1}
    assert run["tags"] == []
    assert run["summary"] == {}


def good_points(n: int = 10) -> list[dict[str, Any]]:
    return [{"key": "good", "step": i, "value": float(i)} for i in range(n)]


def test_malformed_json_is_400(raw: httpx.Client, fresh_run: str) -> None:
    r = raw.post(
        "/ingest",
        content=b'{"run_id": "x", "metrics": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert error_of(r)["code"] == "malformed_request"
    point = b'{"key": "a", "step": 0, "value": NaN}'
    bare_nan = b'{"run_id": "' + fresh_run.encode() + b'", "metrics": [' + point + b"]}"
    r = raw.post("/ingest", content=bare_nan, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["code"] == "malformed_request"
    r = raw.post(
        "/ingest",
        content=b"not gzip at all",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400
    assert error_of(r)["code"] == "malformed_request"
    assert_nothing_written(raw, fresh_run)


def test_unknown_run_is_404(raw: httpx.Client) -> None:
    r = raw.post("/ingest", json={"run_id": "no-such-run-xyz", "metrics": good_points(1)})
    assert r.status_code == 404
    assert error_of(r)["code"] == "not_found"
    r = raw.get("/runs/no-such-run-xyz")
    assert r.status_code == 404
    assert error_of(r)["code"] == "not_found"
    r = raw.get("/no/such/route")
    assert r.status_code == 404
    assert error_of(r)["code"] == "not_found"


def test_wrong_method_is_405(raw: httpx.Client) -> None:
    r = raw.delete("/ingest")
    assert r.status_code == 405
    assert error_of(r)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"key": "k" * 257, "step": 0, "value": 1.0}, "metrics[10].key"),
        ({"key": "_step", "step": 0, "value": 1.0}, "metrics[10].key"),
        ({"key": "ok", "step": "NaN", "value": 1.0}, "metrics[10].step"),
        ({"key": "ok", "step": 1.5, "value": 1.0}, "metrics[10].step"),
        ({"key": "ok", "step": -1, "value": 1.0}, "metrics[10].step"),
        ({"key": "ok", "step": 2**53, "value": 1.0}, "metrics[10].step"),
        ({"key": "ok", "step": 0, "value": "nan"}, "metrics[10].value"),
        ({"key": "ok", "step": 0, "value": None}, "metrics[10].value"),
    ],
)
def test_bad_point_rejects_the_whole_batch(
    raw: httpx.Client, fresh_run: str, bad: dict[str, Any], field: str
) -> None:
    body = {
        "run_id": fresh_run,
        "metrics": [*good_points(10), bad],
        "config": {"keep": 2, "new": 1},
        "tags": ["t"],
        "summary": {"s": 1},
    }
    r = raw.post("/ingest", json=body)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["code"] == "invalid_argument", err
    assert err.get("field") == field, err
    assert err["message"]
    assert_nothing_written(raw, fresh_run)


def test_too_many_points_is_400(raw: httpx.Client, fresh_run: str) -> None:
    body = {
        "run_id": fresh_run,
        "metrics": [{"key": "k", "step": i, "value": 0} for i in range(100_001)],
    }
    r = raw.post("/ingest", json=body)
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "invalid_argument"
    assert err.get("field") == "metrics"
    assert_nothing_written(raw, fresh_run)


def test_oversize_body_is_413(raw: httpx.Client, fresh_run: str) -> None:
    big = json.dumps({"run_id": fresh_run, "config": {"blob": "x" * (33 << 20)}}).encode()
    r = raw.post("/ingest", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"
    # The limit applies after decompression: a small gzip body that inflates past 32 MiB.
    bomb = gzip.compress(b'{"run_id": "' + fresh_run.encode() + b'"' + b" " * (40 << 20) + b"}")
    r = raw.post(
        "/ingest",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"
    assert_nothing_written(raw, fresh_run)


def test_wrong_content_type_is_415(raw: httpx.Client, fresh_run: str) -> None:
    r = raw.post("/ingest", content=b"run_id=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert error_of(r)["code"] == "unsupported_media_type"


def test_blob_digest_mismatch_and_missing_blob(raw: httpx.Client, fresh_run: str) -> None:
    data = b"some bytes"
    wrong = hashlib.sha256(b"other").hexdigest()
    r = raw.put(
        f"/blobs/{wrong}", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "invalid_argument"
    assert err.get("field") == "digest"
    assert raw.head(f"/blobs/{wrong}").status_code == 404
    missing = hashlib.sha256(b"never uploaded " + os.urandom(8)).hexdigest()
    r = raw.post(
        f"/runs/{fresh_run}/artifacts",
        json={"name": "a", "files": [{"path": "f", "digest": missing, "size": 1}]},
    )
    assert r.status_code == 400
    assert error_of(r).get("field") == "files[0].digest"


def test_idempotent_replay_of_one_batch(raw: httpx.Client, fresh_run: str) -> None:
    body = {
        "run_id": fresh_run,
        "metrics": [*good_points(5), {"key": "n", "step": 0, "value": "NaN"}],
        "config": {"b": 2},
    }
    for _ in range(3):
        r = raw.post("/ingest", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted_points": 6}
    metrics = {m["key"]: m for m in raw.get(f"/runs/{fresh_run}/metrics").json()["metrics"]}
    assert metrics["good"]["count"] == 5
    assert metrics["n"]["last_value"] == "NaN"
    assert metrics["n"]["min"] is None


def test_cluster_roles_serve_only_their_routes(tmp_path: Path) -> None:
    """In the cluster shape each process runs one role; the routing front hides that."""
    cluster = ClusterProcess(require_binary(), tmp_path / "cluster", storage_env("cluster"))
    cluster.start()
    try:
        check_role_routes(cluster)
    finally:
        cluster.stop()


def check_role_routes(cluster: ClusterProcess) -> None:
    roles = cluster.roles
    ingest, api, processor = roles["ingest"].url, roles["api"].url, roles["processor"].url
    assert httpx.get(f"{ingest}/api/v1/projects").status_code == 404
    # The ingest process routes ingest (the run is unknown, so `run_id` is named); the processor
    # has no such route at all.
    unknown_run = httpx.post(f"{ingest}/api/v1/ingest", json={"run_id": "nope"}).json()
    assert unknown_run["error"]["field"] == "run_id"
    assert "field" not in httpx.post(f"{processor}/api/v1/ingest", json={}).json()["error"]
    assert httpx.get(f"{processor}/api/v1/health").json()["status"] == "ok"
    assert httpx.get(f"{api}/api/v1/projects").status_code == 200


def test_cluster_live_updates_cross_processes(tmp_path: Path) -> None:
    """A write through the ingest process reaches an event stream held open on the api process."""
    cluster = ClusterProcess(require_binary(), tmp_path / "cluster", storage_env("cluster"))
    cluster.start()
    heard = threading.Event()
    try:
        api, ingest = cluster.roles["api"].url, cluster.roles["ingest"].url
        created = httpx.post(f"{api}/api/v1/projects/live/runs", json={"id": "live-run"})
        assert created.status_code == 201, created.text
        batch = {"run_id": "live-run", "metrics": [{"key": "loss", "step": 3, "value": 0.5}]}

        def write_until_heard() -> None:
            # The api process listens in the background; the write is idempotent, so repeat it.
            for _ in range(30):
                if heard.is_set():
                    return
                httpx.post(f"{ingest}/api/v1/ingest", json=batch)
                time.sleep(0.5)

        with httpx.stream("GET", f"{api}/api/v1/events?project=live", timeout=20) as events:
            assert events.status_code == 200
            threading.Thread(target=write_until_heard, daemon=True).start()
            line = next(line for line in events.iter_lines() if line.startswith("data: "))
            heard.set()
        received = json.loads(line.removeprefix("data: "))
        assert received["type"] == "points"
        assert (received["run_id"], received["keys"]) == ("live-run", ["loss"])
        assert received["max_step"] == 3
    finally:
        heard.set()
        cluster.stop()


def test_cluster_ingest_url_sends_writes_to_the_ingest_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TRACKSTACK_INGEST_URL the SDK talks to the api and ingest processes directly."""
    cluster = ClusterProcess(require_binary(), tmp_path / "cluster", storage_env("cluster"))
    cluster.start()
    try:
        api, ingest = cluster.roles["api"].url, cluster.roles["ingest"].url
        monkeypatch.setenv("TRACKSTACK_INGEST_URL", ingest)
        weights = tmp_path / "weights.bin"
        weights.write_bytes(os.urandom(10_000))
        run = track.init(project="direct", url=api, config={"lr": 0.1})
        for step in range(20):
            run.log({"loss": 1 / (step + 1)})
        run.log_artifact(weights, type="model")
        result = run.finish()
        assert result.ok, result
        # Writes went to the ingest process: its request counter saw them.
        metrics = httpx.get(f"{ingest}/metrics").text
        assert 'route="/api/v1/ingest",status="200"' in metrics
        assert 'route="/api/v1/blobs/{digest}"' in metrics
        got = track.Api(api).run(run.id)
        assert [row["_step"] for row in got.history()] == list(range(20))
        (artifact,) = got.artifacts()
        out = Path(artifact.download(tmp_path / "out"))
        assert (out / "weights.bin").read_bytes() == weights.read_bytes()
    finally:
        cluster.stop()
