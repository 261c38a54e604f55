"""Flattening, value coercion, key and name validation, NaN encoding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from track import _values as v
from track._sender import IngestItem, encode_points, ingest_bodies


def test_flatten_joins_nested_keys_with_slash() -> None:
    data = {"train": {"loss": 1, "opt": {"lr": 0.1}}, "acc": 2, 3: 4}
    assert v.flatten(data) == {"train/loss": 1, "train/opt/lr": 0.1, "acc": 2, "3": 4}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (2.5, 2.5),
        (True, 1.0),
        (False, 0.0),
        (10**20, 1e20),
        (np.float32(0.5), 0.5),
        (np.float64(1.25), 1.25),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(3.5), 3.5),
        (np.array([4.0]), 4.0),
    ],
)
def test_metric_values_accept_numbers_and_item(value: object, expected: float) -> None:
    got = v.to_metric_value(value)
    assert type(got) is float
    assert got == expected


def test_metric_values_keep_non_finite() -> None:
    assert math.isnan(v.to_metric_value(float("nan")))
    assert v.to_metric_value(float("inf")) == math.inf
    assert v.to_metric_value(np.float32("-inf")) == -math.inf


class _Tensor:
    """Duck-types a 0-d torch tensor without importing torch."""

    def item(self) -> float:
        return 0.25


@pytest.mark.parametrize(
    "value", ["1.0", None, [1.0], {1, 2}, object(), 1j, np.array([1.0, 2.0]), 10**400, b"x"]
)
def test_non_numbers_are_skipped(value: object) -> None:
    with pytest.raises(v.Skip):
        v.to_metric_value(value)


def test_duck_typed_item() -> None:
    assert v.to_metric_value(_Tensor()) == 0.25


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("loss", True),
        ("train/loss", True),
        ("ü" * 128, True),  # 256 bytes
        ("ü" * 128 + "x", False),  # 257 bytes
        ("k" * 257, False),
        ("", False),
        ("_step", False),
        ("a\nb", False),
        ("a\x7fb", False),
    ],
)
def test_key_rules_match_the_server(key: str, ok: bool) -> None:
    assert (v.key_problem(key) is None) is ok


def test_steps() -> None:
    assert v.to_step(5) == 5
    assert v.to_step(np.int64(6)) == 6
    assert v.to_step(7.0) == 7
    assert v.to_step(2**53 - 1) == 2**53 - 1
    for bad in (-1, 2**53, 1.5, "3", True, None, float("nan")):
        with pytest.raises(ValueError, match="step"):
            v.to_step(bad)


def test_float_encoding_round_trips() -> None:
    for x in (0.1, -3.0, 1e300, 5e-324):
        assert v.decode_float(v.encode_float(x)) == x
    assert v.encode_float(math.nan) == "NaN"
    assert v.encode_float(math.inf) == "Infinity"
    assert v.encode_float(-math.inf) == "-Infinity"
    assert math.isnan(v.decode_float("NaN"))
    assert v.decode_float("-Infinity") == -math.inf
    assert v.decode_float(None) is None
    assert v.decode_float(3) == 3.0


def test_json_values_are_sanitized() -> None:
    problems: list[str] = []
    out = v.to_json_value(
        {"a": np.float32(0.5), "b": (1, 2), "c": math.nan, "d": np.arange(3), "e": object()},
        "config",
        problems,
    )
    assert out["a"] == 0.5
    assert out["b"] == [1, 2]
    assert out["c"] == "NaN"
    assert out["d"] == [0, 1, 2]
    assert isinstance(out["e"], str)
    assert len(problems) == 1 and "config.e" in problems[0]
    json.dumps(out, allow_nan=False)


def test_name_checks() -> None:
    assert v.check_project("my-proj_1.0") == "my-proj_1.0"
    for bad in ("", ".hidden", "-x", "a b", "a/b", "x" * 129):
        with pytest.raises(ValueError, match="project name"):
            v.check_project(bad)
    with pytest.raises(ValueError, match="run id"):
        v.check_name("run id", "x" * 65, 64)
    assert v.check_tags(["a", "b", "a"]) == ["a", "b"]
    assert v.check_tags("solo") == ["solo"]
    for bad in ([""], ["a\n"], ["x" * 129], [1]):
        with pytest.raises(ValueError):
            v.check_tags(bad)
    with pytest.raises(ValueError):
        v.check_tags([str(i) for i in range(257)])
    assert v.sanitize_name("my model (best).pt") == "my_model__best_.pt"
    assert v.sanitize_name("") == "artifact"


def _strict_loads(body: bytes) -> object:
    def refuse(const: str) -> None:
        raise AssertionError(f"bare {const} literal in JSON")

    return json.loads(body, parse_constant=refuse)


def test_points_encode_like_json_dumps_and_never_emit_bare_nan() -> None:
    rows = [
        (0, 1000, {"a": 0.1, "b": math.nan, "c": math.inf, "d": -math.inf, "e": 1e-7}),
        (1, 1001, {'ключ "q"': 2.0, "a": -0.0}),
    ]
    (chunk,) = encode_points(rows, 100)
    parsed = [_strict_loads(p.encode()) for p in chunk]
    assert parsed == [
        {"key": "a", "step": 0, "value": 0.1, "time_ms": 1000},
        {"key": "b", "step": 0, "value": "NaN", "time_ms": 1000},
        {"key": "c", "step": 0, "value": "Infinity", "time_ms": 1000},
        {"key": "d", "step": 0, "value": "-Infinity", "time_ms": 1000},
        {"key": "e", "step": 0, "value": 1e-7, "time_ms": 1000},
        {"key": 'ключ "q"', "step": 1, "value": 2.0, "time_ms": 1001},
        {"key": "a", "step": 1, "value": -0.0, "time_ms": 1001},
    ]


def test_rows_at_one_step_merge_with_last_write_winning() -> None:
    rows = [(3, 1, {"a": 1.0, "b": 1.0}), (4, 2, {"a": 5.0}), (3, 3, {"a": 2.0})]
    (chunk,) = encode_points(rows, 100)
    got = sorted((p["key"], p["step"], p["value"]) for p in map(json.loads, chunk))
    assert got == [("a", 3, 2.0), ("a", 4, 5.0), ("b", 3, 1.0)]


def test_bodies_split_by_points_with_updates_first_and_state_last() -> None:
    rows = [(s, 0, {"x": float(s)}) for s in range(25)]
    item = IngestItem(rows, config={"lr": 1}, summary={"s": 2}, tags=["t"], state="finished")
    item.exit_code = 0
    bodies = [_strict_loads(b) for b in ingest_bodies("run1", item, max_points=10)]
    assert [len(b["metrics"]) for b in bodies] == [10, 10, 5]
    assert all(b["run_id"] == "run1" for b in bodies)
    assert bodies[0]["config"] == {"lr": 1} and bodies[0]["summary"] == {"s": 2}
    assert bodies[0]["tags"] == ["t"]
    assert "config" not in bodies[1] and "state" not in bodies[1]
    assert bodies[2]["state"] == "finished" and bodies[2]["exit_code"] == 0
    steps = [p["step"] for b in bodies for p in b["metrics"]]
    assert steps == list(range(25))


def test_state_only_body() -> None:
    (body,) = ingest_bodies("r", IngestItem(state="failed", exit_code=3), 10)
    assert _strict_loads(body) == {"run_id": "r", "state": "failed", "exit_code": 3}


def test_latest_keeps_the_value_at_the_highest_step() -> None:
    from track._sender import Latest

    latest = Latest()
    latest.fold([(5, 0, {"a": 5.0, "b": 5.0}), (2, 0, {"a": 2.0, "c": 2.0}), (7, 0, {"b": 7.0})])
    latest.fold([(6, 0, {"a": 6.0, "b": 6.0})])
    assert latest.value == {"a": 6.0, "b": 7.0, "c": 2.0}
    assert latest.step == {"a": 6, "b": 7, "c": 2}


def test_latest_folds_a_batch_like_row_by_row() -> None:
    """The backwards scan for rising steps gives what folding each row in turn gives."""
    import random

    from track._sender import Latest

    rng = random.Random(3)
    keys = ["a", "b", "c", "d"]
    for trial in range(200):
        rows = []
        step = rng.randrange(5)
        for _ in range(rng.randrange(1, 12)):
            step += rng.choice([0, 1, 1, 2] if trial % 2 else [-2, 0, 1, 3])
            picked = rng.sample(keys, rng.randint(1, len(keys)))
            rows.append((max(step, 0), 0, {k: rng.random() for k in picked}))
        seed = [(rng.randrange(6), 0, {"a": -1.0, "c": -3.0})]
        batch, one_by_one = Latest(), Latest()
        batch.fold(seed)
        one_by_one.fold(seed)
        batch.fold(rows)
        for row in rows:
            one_by_one.fold([row])
        assert (batch.value, batch.step, batch.top) == (
            one_by_one.value,
            one_by_one.step,
            one_by_one.top,
        )
