"""The read API against the in-memory fake server, and error mapping."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

import track
from track import api as api_module
from track import errors

from fakeserver import FakeServer


@pytest.fixture
def api(fake: FakeServer) -> track.Api:
    return track.Api(url="http://fake", _transport=fake.transport)


def make_run(fake: FakeServer, settings: track.Settings, **kwargs: object) -> track.Run:
    return track.init(settings=settings, _transport=fake.transport, **kwargs)  # type: ignore[arg-type]


def test_runs_follow_every_page(fake: FakeServer, api: track.Api) -> None:
    for i in range(250):
        fake.runs[f"r{i:04d}"] = {
            "id": f"r{i:04d}",
            "project": "big",
            "name": f"run-{i}",
            "tags": ["even"] if i % 2 == 0 else [],
            "state": "finished" if i % 3 == 0 else "running",
            "_seq": i,
        }
    seen = [r.id for r in api.runs("big")]
    assert len(seen) == 250 and len(set(seen)) == 250
    assert seen[0] == "r0249", "default order is newest first"
    pages = [p for m, p, _ in fake.requests if p == "/api/v1/projects/big/runs"]
    assert len(pages) == 3
    assert len(list(api.runs("big", limit=120))) == 120
    assert len(list(api.runs("big", per_page=1000))) == 250
    assert sum(1 for _ in api.runs("big", filter={"tag": "even"})) == 125
    assert sum(1 for _ in api.runs("big", filter={"state": "finished"})) == 84
    assert [r.name for r in api.runs("big", filter={"name": "RUN-24"}, order="name")] == [
        "run-24",
        *[f"run-{i}" for i in range(240, 250)],
    ]
    with pytest.raises(ValueError, match="filter"):
        list(api.runs("big", filter={"colour": "red"}))


def test_run_history_scan_and_metrics(
    fake: FakeServer, api: track.Api, settings: track.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_module, "_SERIES_PAGE", 7)  # force several pages per key
    run = make_run(fake, settings, project="hist", config={"lr": 0.1}, tags=["x"])
    for i in range(30):
        row = {"loss": 1.0 / (i + 1)}
        if i % 2 == 0:
            row["even"] = float(i)
        run.log(row)
    run.log({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    run.finish()

    got = api.run(f"hist/{run.id}")
    assert got.project == "hist" and got.state == "finished" and got.config == {"lr": 0.1}
    assert got.tags == ["x"]
    assert got.created_at is not None and got.created_at.year == 2026
    history = got.history()
    assert [r["_step"] for r in history] == list(range(31))
    assert history[0] == {"_step": 0, "loss": 1.0, "even": 0.0}
    assert history[1] == {"_step": 1, "loss": 0.5}
    last = history[30]
    assert math.isnan(last["nan"]) and last["inf"] == math.inf and last["ninf"] == -math.inf
    only = got.history(keys=["even"])
    assert [r["_step"] for r in only] == list(range(0, 30, 2))
    metrics = {m["key"]: m for m in got.metrics()}
    assert metrics["loss"]["count"] == 30 and math.isnan(metrics["nan"]["last_value"])
    buckets = got.scan("loss", buckets=3)
    assert sum(b["count"] for b in buckets) == 30
    assert buckets[0]["first_step"] == 0 and buckets[-1]["last_step"] == 29
    assert got.scan("nan", buckets=1)[0]["min"] is None
    assert math.isnan(got.scan("nan", buckets=1)[0]["last"])


def test_run_lookup_errors(fake: FakeServer, api: track.Api, settings: track.Settings) -> None:
    run = make_run(fake, settings, project="one")
    run.finish()
    with pytest.raises(errors.NotFoundError) as info:
        api.run("nosuchrun")
    assert info.value.code == "not_found" and info.value.status == 404
    with pytest.raises(errors.NotFoundError):
        api.run(f"other/{run.id}")
    assert api.run(run.id).id == run.id
    assert [p.name for p in api.projects()] == ["one"]


def test_artifacts_download(
    fake: FakeServer, api: track.Api, settings: track.Settings, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "a.bin").write_bytes(bytes(range(256)) * 100)
    (src / "nested" / "b.txt").write_text("hello")
    run = make_run(fake, settings, project="arts")
    run.log_artifact(src, name="data", type="dataset")
    run.finish()  # files are read on the sender thread: change them only after finish
    (src / "a.bin").write_bytes(b"changed")
    run2 = make_run(fake, settings, project="arts")
    run2.log_artifact(src, name="data", type="dataset")
    run2.finish()

    arts = api.run(run.id).artifacts()
    assert [(a.name, a.version) for a in arts] == [("data", "v0")]
    latest = api.artifact("arts/data")
    assert latest.version == "v1"
    v0 = api.artifact("arts/data:v0")
    assert {f.path for f in v0.files} == {"a.bin", "nested/b.txt"}
    out = Path(v0.download(tmp_path / "out"))
    assert (out / "nested" / "b.txt").read_text() == "hello"
    assert (out / "a.bin").read_bytes() == bytes(range(256)) * 100
    out1 = Path(api.artifact("arts/data:latest").download(tmp_path / "out1"))
    assert (out1 / "a.bin").read_bytes() == b"changed"
    with pytest.raises(errors.NotFoundError):
        api.artifact("arts/data:v9")
    with pytest.raises(ValueError, match="project/name"):
        api.artifact("no-project")


def test_download_refuses_unsafe_paths(api: track.Api, tmp_path: Path) -> None:
    art = track.ApiArtifact(
        api, {"name": "x", "files": [{"path": "../evil", "digest": "0" * 64, "size": 1}]}
    )
    with pytest.raises(errors.InvalidArgumentError):
        art.download(tmp_path)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_argument", errors.InvalidArgumentError),
        (400, "malformed_request", errors.MalformedRequestError),
        (404, "not_found", errors.NotFoundError),
        (405, "method_not_allowed", errors.MethodNotAllowedError),
        (409, "already_exists", errors.AlreadyExistsError),
        (409, "conflict", errors.ConflictError),
        (413, "payload_too_large", errors.PayloadTooLargeError),
        (415, "unsupported_media_type", errors.UnsupportedMediaTypeError),
        (503, "unavailable", errors.UnavailableError),
        (500, "internal", errors.InternalError),
        (418, "teapot", errors.TrackstackError),
    ],
)
def test_error_codes_map_to_classes(status: int, code: str, cls: type) -> None:
    body = {"error": {"code": code, "message": "msg", "field": "metrics[3].step"}}
    err = errors.from_response(status, body)
    assert type(err) is cls
    assert (err.code, err.message, err.field, err.status) == (
        code,
        "msg",
        "metrics[3].step",
        status,
    )
    assert "metrics[3].step" in str(err)


def test_error_without_body_uses_status() -> None:
    err = errors.from_response(404, "<html>")
    assert isinstance(err, errors.NotFoundError)
    assert isinstance(errors.from_response(502, None), errors.InternalError)


def test_api_retries_transient_reads() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"projects": []})

    api = track.Api(url="http://x", _transport=httpx.MockTransport(handler))
    assert api.projects() == []
    assert calls["n"] == 3
