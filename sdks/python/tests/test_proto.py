"""The protobuf ingest encoding (track._proto, point_columns, ingest_batches) against the reference
decoder in protowire.py."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest

from track import _proto, _sender
from track._sender import IngestItem, ingest_batches, ingest_bodies, point_columns

from protowire import I32, I64, LEN, VARINT, decode_ingest, decode_ingest_fields, fields


def bits(x: float) -> int:
    return int.from_bytes(struct.pack("<d", x), "little")


def from_bits(b: int) -> float:
    return float(struct.unpack("<d", b.to_bytes(8, "little"))[0])


def test_field_numbers_and_wire_types() -> None:
    body = _proto.encode_batch(
        "r1",
        ["a", "b"],
        [0, 1],
        [0, 1],
        [0.5, 1.5],
        [10, 11],
        config_json='{"lr":1}',
        summary_json="{}",
        tags=["x", "y"],
        state="finished",
        exit_code=3,
    )
    assert [(n, w) for n, w, _ in fields(body)] == [
        (1, LEN),
        (2, LEN),
        (2, LEN),
        (3, LEN),  # packed fixed32
        (4, LEN),  # packed sfixed64
        (5, LEN),  # packed double
        (6, LEN),  # packed sfixed64
        (7, LEN),
        (8, LEN),
        (9, LEN),
        (9, LEN),
        (10, VARINT),
        (11, LEN),
        (12, VARINT),
    ]
    packed = {n: v for n, w, v in fields(body) if n in (3, 4, 5, 6)}
    assert packed[3] == struct.pack("<2I", 0, 1)
    assert packed[4] == struct.pack("<2q", 0, 1)
    assert packed[5] == struct.pack("<2d", 0.5, 1.5)
    assert packed[6] == struct.pack("<2q", 10, 11)


def test_special_floats_keep_their_bits() -> None:
    nan_payload = from_bits(0x7FF8_0000_DEAD_BEEF)
    negative_nan = from_bits(0xFFF8_0000_0000_0001)
    values = [nan_payload, negative_nan, math.nan, -0.0, 0.0, math.inf, -math.inf, 5e-324, 1e308]
    n = len(values)
    body = _proto.encode_batch("r", ["k"], [0] * n, list(range(n)), values)
    got = decode_ingest_fields(body)["values"]
    assert [bits(v) for v in got] == [bits(v) for v in values]


def test_huge_and_negative_steps() -> None:
    steps = [0, 1, (1 << 53) - 1, (1 << 63) - 1, -1, -(1 << 63)]
    times = [-5, 0, 1764285245123, (1 << 63) - 1, -(1 << 63), 2]
    n = len(steps)
    body = _proto.encode_batch("r", ["k"], [0] * n, steps, [1.0] * n, times)
    msg = decode_ingest_fields(body)
    assert msg["steps"] == steps and msg["times_ms"] == times
    with pytest.raises(struct.error):
        _proto.encode_batch("r", ["k"], [0], [1 << 63], [1.0])


def test_empty_times_mean_the_server_clock() -> None:
    body = _proto.encode_batch("r", ["k"], [0, 0], [1, 2], [1.0, 2.0])
    assert 6 not in {n for n, _, _ in fields(body)}
    assert decode_ingest(body)["metrics"] == [
        {"key": "k", "step": 1, "value": 1.0},
        {"key": "k", "step": 2, "value": 2.0},
    ]


def test_optional_fields_absent_and_present() -> None:
    bare = _proto.encode_batch("r")
    assert fields(bare) == [(1, LEN, b"r")]
    assert decode_ingest(bare) == {"run_id": "r"}
    assert _proto.encode_batch("") == b"", "proto3 leaves default scalars out"

    # Present with default values: explicit presence means they are still written.
    zero = _proto.encode_batch("r", config_json="", summary_json="{}", state="", exit_code=0)
    assert [(n, v) for n, _, v in fields(zero)] == [
        (1, b"r"),
        (7, b""),
        (8, b"{}"),
        (11, b""),
        (12, 0),
    ]
    msg = decode_ingest_fields(zero)
    assert msg["config_json"] == "" and msg["state"] == "" and msg["exit_code"] == 0

    # tags=[] still replaces (clears) the tags; tags=None leaves them alone.
    cleared = _proto.encode_batch("r", tags=[])
    assert fields(cleared) == [(1, LEN, b"r"), (10, VARINT, 1)]
    assert decode_ingest(cleared) == {"run_id": "r", "tags": []}


@pytest.mark.parametrize("code", [0, 1, 127, 128, 300, -1, -128, (1 << 31) - 1, -(1 << 31)])
def test_exit_codes_are_int32_varints(code: int) -> None:
    body = _proto.encode_batch("r", state="failed", exit_code=code)
    ((_, wire, _),) = [f for f in fields(body) if f[0] == 12]
    assert wire == VARINT
    if code < 0:
        assert len(body) - body.index(b"\x60") - 1 == 10, "negative int32: 10-byte varint"
    assert decode_ingest(body)["exit_code"] == code
    with pytest.raises(ValueError):
        _proto.encode_batch("r", exit_code=1 << 31)


def test_unicode_keys_tags_and_json() -> None:
    keys = ["ключ", "损失/val", "emoji 🚀", 'q"uote', "a" * 256]
    config = {"名前": "値", "nested": {"x": [1, 2.5, None]}}
    body = _proto.encode_batch(
        "run-ü",
        keys,
        [4, 3, 2, 1, 0],
        [0, 0, 0, 0, 0],
        [1.0, 2.0, 3.0, 4.0, 5.0],
        config_json=json.dumps(config, ensure_ascii=False),
        tags=["тег", "🏷"],
    )
    got = decode_ingest(body)
    assert got["run_id"] == "run-ü"
    assert [p["key"] for p in got["metrics"]] == keys[::-1]
    assert got["config"] == config and got["tags"] == ["тег", "🏷"]


def test_long_lengths_use_multibyte_varints() -> None:
    n = 5000  # 40,000-byte packed columns: three-byte length varints
    body = _proto.encode_batch("r", ["k"], [0] * n, list(range(n)), [0.25] * n, [7] * n)
    msg = decode_ingest_fields(body)
    assert msg["steps"] == list(range(n)) and msg["values"] == [0.25] * n
    assert msg["times_ms"] == [7] * n


def test_columns_must_line_up() -> None:
    with pytest.raises(ValueError):
        _proto.encode_batch("r", ["k"], [0, 0], [1], [1.0, 2.0])
    with pytest.raises(ValueError):
        _proto.encode_batch("r", ["k"], [0], [1], [1.0], [1, 2])


def test_sdk_decoder_matches_the_reference() -> None:
    """The SDK's own decoder (used for the 415 fallback) agrees with protowire."""
    body = _proto.encode_batch(
        "r",
        ["a", "b"],
        [0, 1, 0],
        [5, 5, 6],
        [math.nan, -math.inf, -0.0],
        [1, 2, 3],
        config_json='{"a":1}',
        summary_json='{"b":null}',
        tags=["t"],
        state="crashed",
        exit_code=-9,
    )
    assert json.loads(_proto.to_json_body(body)) == decode_ingest(body)
    assert json.loads(_proto.to_json_body(b"")) == {"run_id": ""}


def test_sdk_decoder_reads_unpacked_repeated_fields() -> None:
    # Another encoder may write repeated scalars unpacked: one tagged item each.
    body = (
        _proto._text(0x0A, "r")
        + _proto._text(0x12, "k")
        + b"\x1d" + struct.pack("<I", 0)  # field 3, wire type 5
        + b"\x21" + struct.pack("<q", 42)  # field 4, wire type 1
        + b"\x29" + struct.pack("<d", 0.5)  # field 5, wire type 1
    )  # fmt: skip
    wire_types = [(n, w) for n, w, _ in fields(body)]
    assert wire_types == [(1, LEN), (2, LEN), (3, I32), (4, I64), (5, I64)]
    assert json.loads(_proto.to_json_body(body)) == decode_ingest(body)
    assert decode_ingest(body)["metrics"] == [{"key": "k", "step": 42, "value": 0.5}]
    with pytest.raises(ValueError):
        _proto.decode_batch(body[:-3])


# -- rows to batches ------------------------------------------------------------------------------


def points(body: dict[str, Any]) -> list[tuple[str, int, Any, int]]:
    return [(p["key"], p["step"], p["value"], p["time_ms"]) for p in body.get("metrics", [])]


def test_batches_match_the_json_bodies() -> None:
    rng = random.Random(7)
    keys = ["loss", "acc", "lr", "ключ", "grad/norm"]
    rows = []
    for i in range(400):
        step = i if rng.random() < 0.9 else rng.randrange(i + 1)  # some steps repeat
        picked = rng.sample(keys, rng.randint(1, len(keys)))
        values = {k: rng.choice([rng.random(), math.nan, math.inf, -0.0]) for k in picked}
        rows.append((step, 1764285245000 + i, values))
    item = IngestItem(
        rows, config={"lr": 0.1}, summary={"best": None}, tags=["a"], state="finished"
    )
    item.exit_code = 0
    pb = [decode_ingest(b) for b in ingest_batches("run1", item, max_points=100)]
    js = [json.loads(b) for b in ingest_bodies("run1", item, max_points=100)]
    assert len(pb) == len(js) > 1
    for p, j in zip(pb, js, strict=True):
        assert points(p) == points(j)
        assert {k: v for k, v in p.items() if k != "metrics"} == {
            k: v for k, v in j.items() if k != "metrics"
        }


def test_chunks_carry_only_their_own_keys() -> None:
    rows = [(s, 0, {f"k{s}": 1.0, "shared": 2.0}) for s in range(6)]
    chunks = point_columns(rows, max_points=4)
    assert [len(c[1]) for c in chunks] == [4, 4, 4]
    assert [c[0] for c in chunks] == [
        ["k0", "shared", "k1"],
        ["k2", "shared", "k3"],
        ["k4", "shared", "k5"],
    ]
    assert chunks[0][1] == [0, 1, 2, 1]


def test_rows_at_one_step_merge_with_last_write_winning() -> None:
    rows = [(3, 1, {"a": 1.0, "b": 1.0}), (4, 2, {"a": 5.0}), (3, 3, {"a": 2.0})]
    ((keys, key_index, steps, values, times),) = point_columns(rows, 100)
    got = [(keys[k], s, v, t) for k, s, v, t in zip(key_index, steps, values, times, strict=True)]
    assert got == [("a", 3, 2.0, 3), ("b", 3, 1.0, 3), ("a", 4, 5.0, 2)]


def test_chunks_stay_under_the_body_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sender, "MAX_BODY_BYTES", 4000)
    rows = [(s, 0, {f"k{s:03d}" * 50: 1.0}) for s in range(40)]  # 200-byte keys
    item = IngestItem(rows)
    bodies = ingest_batches("r", item, max_points=1000)
    assert len(bodies) > 1 and all(len(b) <= 4000 for b in bodies)
    assert sum(len(decode_ingest(b)["metrics"]) for b in bodies) == 40


def test_state_and_updates_ride_first_and_last() -> None:
    (only,) = ingest_batches("r", IngestItem(state="failed", exit_code=3), 10)
    assert decode_ingest(only) == {"run_id": "r", "state": "failed", "exit_code": 3}
    (beat,) = ingest_batches("r", IngestItem(), 10)
    assert decode_ingest(beat) == {"run_id": "r"}
    rows = [(s, 0, {"x": float(s)}) for s in range(25)]
    item = IngestItem(rows, config={"lr": 1}, tags=[], state="finished")
    bodies = [decode_ingest(b) for b in ingest_batches("r", item, max_points=10)]
    assert [len(b["metrics"]) for b in bodies] == [10, 10, 5]
    assert bodies[0]["config"] == {"lr": 1} and bodies[0]["tags"] == []
    assert "tags" not in bodies[1] and "state" not in bodies[1]
    assert bodies[2]["state"] == "finished" and "exit_code" not in bodies[2]
