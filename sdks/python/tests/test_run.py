"""The writer against an in-memory fake server: step rules, values, config, summary, lifecycle."""

from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import track
from track import errors

from fakeserver import FakeServer


def start(fake: FakeServer, settings: track.Settings, **kwargs: Any) -> track.Run:
    kwargs.setdefault("project", "proj")
    return track.init(settings=settings, _transport=fake.transport, **kwargs)


def test_implicit_steps_count_from_zero(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    for i in range(10):
        run.log({"loss": float(i)})
    assert run.step == 10
    result = run.finish()
    assert result.ok and result.state == "finished" and result.accepted_points == 10
    assert fake.history(run.id) == {i: {"loss": float(i)} for i in range(10)}
    assert fake.runs[run.id]["state"] == "finished"


def test_commit_false_fills_one_row(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    run.log({"a": 1}, commit=False)
    run.log({"grad": 9.9}, commit=False)
    run.log({"grad": 2.5}, commit=False)  # same key in the pending row: last write wins
    assert run.step == 0
    run.log({"b": 2})
    run.log({"c": 3})
    run.finish()
    assert fake.history(run.id) == {0: {"a": 1.0, "grad": 2.5, "b": 2.0}, 1: {"c": 3.0}}


def test_explicit_step_stays_until_committed(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    run.log({"x": 0})
    run.log({"train/loss": 0.4}, step=20)
    assert run.step == 20
    run.log({"train/acc": 0.93})  # merges into 20 and commits
    assert run.step == 21
    run.log({"y": 1})
    run.log({"z": 1}, step=25, commit=True)
    assert run.step == 26
    run.log({"w": 1})
    run.finish()
    assert fake.history(run.id) == {
        0: {"x": 0.0},
        20: {"train/loss": 0.4, "train/acc": 0.93},
        21: {"y": 1.0},
        25: {"z": 1.0},
        26: {"w": 1.0},
    }


def test_lower_step_is_written_not_dropped(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    for i in range(30):
        run.log({"m": float(i)})
    run.log({"m": -5.0, "late": 1.0}, step=5)
    assert run.step == 5
    run.finish()
    hist = fake.history(run.id)
    assert hist[5] == {"m": -5.0, "late": 1.0}
    assert len(hist) == 30


def test_values_nested_numpy_and_non_finite(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    run.log(
        {
            "val": {"loss": np.float32(0.5), "acc": np.array(0.75)},
            "n": np.int64(3),
            "flag": True,
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
        }
    )
    run.finish()
    assert fake.history(run.id)[0] == {
        "val/loss": 0.5,
        "val/acc": 0.75,
        "n": 3.0,
        "flag": 1.0,
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
    }
    raw = [b for b in fake.ingests() if b.get("metrics")]
    assert raw, "metrics were sent"


def test_bad_values_and_keys_warn_once_per_key(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            run.log(
                {
                    "ok": i,
                    "text": "hello",
                    "items": [1, 2],
                    "none": None,
                    "_reserved": 1.0,
                    "k" * 300: 1.0,
                    "arr": np.zeros(3),
                }
            )
    messages = [str(w.message) for w in caught if issubclass(w.category, track.TrackstackWarning)]
    assert len(messages) == 6, messages
    assert all(w.filename == __file__ for w in caught), "warnings point at the caller"
    result = run.finish()
    assert result.ok
    assert len(result.warnings) == 6
    assert fake.history(run.id) == {i: {"ok": float(i)} for i in range(5)}


def test_log_never_raises(fake: FakeServer, settings: track.Settings) -> None:
    class Hostile:
        def item(self) -> float:
            raise RuntimeError("boom")

    class BadMapping(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no items")

    run = start(fake, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.log([1, 2, 3])  # type: ignore[arg-type]
        run.log(None)  # type: ignore[arg-type]
        run.log({"h": Hostile()})
        run.log(BadMapping())
        run.log({"a": 1}, step=-1)
        run.log({"a": 1}, step="x")  # type: ignore[arg-type]
        run.log({"a": 1}, step=1.5)  # type: ignore[arg-type]
        run.log({"a": 1}, step=2**53)
        run.log({"deep": {"er": {"est": 1.0}}}, step=np.int64(7))
    result = run.finish()
    assert result.ok
    assert fake.history(run.id) == {7: {"deep/er/est": 1.0}}
    with pytest.warns(track.TrackstackWarning, match="after the run finished"):
        run.log({"a": 1})


def test_summary_is_local_knowledge(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings)
    run.log({"loss": 3.0})
    run.log({"loss": 2.0})
    assert run.summary["loss"] == 2.0
    run.log({"loss": 9.0}, step=0)  # lower step: the value at the highest step stays
    assert run.summary["loss"] == 2.0
    run.summary["best"] = 0.9
    run.summary.update({"loss": 0.1})
    assert run.summary["loss"] == 0.1
    run.log({"loss": 1.0}, step=10)  # the explicit value is kept, as on the server
    assert run.summary["loss"] == 0.1
    del run.summary["loss"]
    assert run.summary["loss"] == 1.0
    assert run.summary.best == 0.9
    assert set(run.summary) == {"loss", "best"}
    with pytest.raises(KeyError):
        run.summary["nope"]
    run.finish()
    assert fake.runs[run.id]["summary"] == {"best": 0.9, "loss": None}


def test_config_syncs_as_shallow_merge(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings, config={"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}})
    assert fake.runs[run.id]["config"] == {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}
    run.config["bs"] = 32
    run.config.update({"opt": {"name": "sgd"}}, epochs=3)
    run.config.dropout = np.float32(0.5)
    assert run.config.lr == 0.1
    assert run.config["dropout"] == 0.5
    assert "bs" in run.config and len(run.config) == 5
    with pytest.raises(AttributeError):
        _ = run.config.missing
    run.finish()
    assert fake.runs[run.id]["config"] == {
        "lr": 0.1,
        "opt": {"name": "sgd"},
        "bs": 32,
        "epochs": 3,
        "dropout": 0.5,
    }
    sent = [b["config"] for b in fake.ingests() if "config" in b]
    assert sent and all("lr" not in c for c in sent), "init config is not resent for a new run"


def test_tags_name_and_notes(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings, tags=["a"], name="first", group="g", job_type="train")
    assert run.tags == ("a",)
    run.tags = [*run.tags, "b"]
    run.name = "second"
    run.notes = "some notes"
    run.finish()
    stored = fake.runs[run.id]
    assert stored["tags"] == ["a", "b"]
    assert stored["name"] == "second" and stored["notes"] == "some notes"
    assert stored["group"] == "g" and stored["job_type"] == "train"
    with pytest.raises(ValueError):
        run.tags = ["bad\n"]


def test_create_payload_has_metadata_and_id(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings, notes="n")
    method, path, body = fake.requests[0]
    assert (method, path) == ("POST", "/api/v1/projects/proj/runs")
    assert re.fullmatch(r"[a-z0-9]{8}", run.id)
    assert body["id"] == run.id and body["if_exists"] == "return" and body["notes"] == "n"
    meta = body["metadata"]
    assert meta["pid"] > 0 and meta["python"] and meta["host"] and isinstance(meta["argv"], list)
    assert "proj" in run.url and run.id in run.url
    run.finish()


def test_ingest_goes_as_protobuf_gzipped_when_large(
    fake: FakeServer, settings: track.Settings
) -> None:
    settings.flush_interval = 5  # one batch for the loop, one for finish
    run = start(fake, settings)
    for i in range(200):
        run.log({"loss": 1 / (i + 1), "acc": float(i)})
    run.config["lr"] = 0.1
    run.finish()
    big, last = fake.ingest_encodings
    # 400 points are ~11 KB of protobuf: worth compressing; the final state-only batch is not.
    assert big == ("application/x-protobuf", "gzip")
    assert last == ("application/x-protobuf", None)
    metrics, final = fake.ingests()
    assert final == {"run_id": run.id, "state": "finished", "exit_code": 0}
    assert metrics["config"] == {"lr": 0.1} and len(metrics["metrics"]) == 400
    assert metrics["metrics"][:2] == [
        {"key": "loss", "step": 0, "value": 1.0, "time_ms": metrics["metrics"][0]["time_ms"]},
        {"key": "acc", "step": 0, "value": 0.0, "time_ms": metrics["metrics"][0]["time_ms"]},
    ]
    assert fake.history(run.id)[199] == {"loss": 1 / 200, "acc": 199.0}


def test_old_server_gets_json_after_a_415(fake: FakeServer, settings: track.Settings) -> None:
    fake.protobuf = False
    run = start(fake, settings)
    run.log({"a": math.nan, "b": 1.0})
    run.tags = ["t"]
    time.sleep(0.2)
    run.log({"a": 2.0})
    result = run.finish()
    assert result.ok and result.rejected_batches == 0 and result.spooled_batches == 0
    types = [t for t, _ in fake.ingest_encodings]
    # Only the first batch tries protobuf; it is resent as JSON, and JSON it is from then on.
    assert types[:2] == ["application/x-protobuf", "application/json"]
    assert set(types[2:]) == {"application/json"}
    assert fake.history(run.id) == {0: {"a": "NaN", "b": 1.0}, 1: {"a": 2.0}}
    assert fake.runs[run.id]["tags"] == ["t"] and fake.runs[run.id]["state"] == "finished"
    # Learned for the process: the next run starts with JSON.
    fake.ingest_encodings.clear()
    start(fake, settings).finish()
    assert {t for t, _ in fake.ingest_encodings} == {"application/json"}


def test_api_key_header(
    fake: FakeServer, settings: track.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    fake.intercept = lambda r: seen.append(r.headers.get("authorization"))  # type: ignore[assignment,func-returns-value]
    monkeypatch.setenv("TRACKSTACK_API_KEY", "s3cret")
    start(fake, settings).finish()
    assert seen and set(seen) == {"Bearer s3cret"}


def test_env_project_and_defaults(
    fake: FakeServer, settings: track.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = track.init(settings=settings, _transport=fake.transport)
    assert run.project == "uncategorized"
    run.finish()
    monkeypatch.setenv("TRACKSTACK_PROJECT", "from-env")
    run = track.init(settings=settings, _transport=fake.transport)
    assert run.project == "from-env"
    run.finish()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "sideways"},
        {"project": "bad name"},
        {"project": ".x"},
        {"id": "no/slash"},
        {"id": "x" * 65},
        {"tags": ["ok", ""]},
        {"name": "x" * 300},
        {"resume": "sometimes"},
        {"resume": "must"},
        {"config": 5},
        {"url": "localhost:3000"},
    ],
)
def test_invalid_init_arguments_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        track.init(**kwargs)


def test_env_mode_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKSTACK_MODE", "nope")
    with pytest.raises(ValueError, match="TRACKSTACK_MODE"):
        track.init()


def test_disabled_mode_sends_nothing(monkeypatch: pytest.MonkeyPatch, spool_root: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("disabled mode must not talk to the server")

    monkeypatch.setenv("TRACKSTACK_MODE", "disabled")
    run = track.init(project="p", config={"a": 1}, _transport=httpx.MockTransport(refuse))
    run.log({"x": 1.0})
    run.log({"x": 2.0})
    assert run.step == 2 and run.summary["x"] == 2.0 and run.config["a"] == 1
    run.log_artifact(__file__)
    result = run.finish()
    assert result.ok and result.spooled_batches == 0
    assert not spool_root.exists()


def test_module_level_helpers(fake: FakeServer, settings: track.Settings) -> None:
    assert track.run is None
    with pytest.raises(errors.UsageError):
        track.log({"a": 1})
    run = start(fake, settings)
    assert track.run is run
    track.log({"a": 1.0})
    track.define_metric("val/*", step_metric="epoch", summary="max")
    assert run.metric_definitions["val/*"].step_metric == "epoch"
    result = track.finish()
    assert result is not None and result.ok
    assert track.run is None
    assert track.finish() is None


def test_new_init_finishes_the_previous_run(fake: FakeServer, settings: track.Settings) -> None:
    first = start(fake, settings)
    second = start(fake, settings)
    assert first.finished and not second.finished
    assert fake.runs[first.id]["state"] == "finished"
    second.finish()


def test_finish_is_idempotent_and_failed_on_exit_code(
    fake: FakeServer, settings: track.Settings
) -> None:
    run = start(fake, settings)
    first = run.finish(exit_code=2)
    assert first.state == "failed"
    assert run.finish() is first
    assert fake.runs[run.id]["state"] == "failed" and fake.runs[run.id]["exit_code"] == 2


def test_with_block_marks_failure_and_reraises(fake: FakeServer, settings: track.Settings) -> None:
    with pytest.raises(ZeroDivisionError), start(fake, settings) as run:
        run.log({"a": 1.0})
        _ = 1 / 0
    assert fake.runs[run.id]["state"] == "failed"
    assert fake.runs[run.id]["exit_code"] == 1
    with start(fake, settings) as ok_run:
        ok_run.log({"a": 1.0})
    assert fake.runs[ok_run.id]["state"] == "finished"


def test_resume_continues_after_the_last_step(fake: FakeServer, settings: track.Settings) -> None:
    run = start(fake, settings, id="resume01", config={"lr": 1})
    for i in range(5):
        run.log({"loss": float(i)})
    run.summary["note"] = "x"
    run.finish()
    again = start(fake, settings, id="resume01", resume="allow", config={"epochs": 2})
    assert again.resumed and again.step == 5
    assert again.config.as_dict() == {"lr": 1, "epochs": 2}
    assert again.summary["loss"] == 4.0 and again.summary["note"] == "x"
    again.log({"loss": 5.0})
    again.finish()
    assert sorted(fake.history("resume01")) == list(range(6))
    assert fake.runs["resume01"]["config"] == {"lr": 1, "epochs": 2}


def test_existing_id_without_resume_continues_with_a_warning(
    fake: FakeServer, settings: track.Settings
) -> None:
    start(fake, settings, id="again001").finish()
    with pytest.warns(track.TrackstackWarning, match="already exists"):
        run = start(fake, settings, id="again001")
    assert run.resumed
    run.finish()


def test_resume_must_and_never(fake: FakeServer, settings: track.Settings) -> None:
    with pytest.raises(errors.NotFoundError):
        start(fake, settings, id="missing1", resume="must")
    start(fake, settings, id="exists01").finish()
    with pytest.raises(errors.AlreadyExistsError):
        start(fake, settings, id="exists01", resume="never")
    run = start(fake, settings, id="exists01", resume="must")
    assert run.resumed
    run.finish()


def test_run_id_in_another_project_raises(fake: FakeServer, settings: track.Settings) -> None:
    start(fake, settings, id="shared01", project="one").finish()
    with pytest.raises(errors.AlreadyExistsError) as info:
        start(fake, settings, id="shared01", project="two")
    assert info.value.code == "already_exists" and info.value.status == 409


def test_big_buffers_split_into_batches(fake: FakeServer, settings: track.Settings) -> None:
    settings.max_batch_points = 1000
    settings.flush_interval = 5  # only the size threshold or finish triggers sends
    settings.max_buffer_points = 2000
    run = start(fake, settings)
    for i in range(3000):
        run.log({"a": float(i), "b": 1.0})
    run.finish()
    sizes = [len(b.get("metrics", [])) for b in fake.ingests()]
    assert max(sizes) <= 1000
    assert sum(sizes) == 6000
    assert len(fake.history(run.id)) == 3000


def test_heartbeat_when_idle(fake: FakeServer, settings: track.Settings) -> None:
    settings.heartbeat_interval = 0.05
    run = start(fake, settings)
    time.sleep(0.3)
    beats = [b for b in fake.ingests() if set(b) == {"run_id"}]
    assert beats
    run.finish()
