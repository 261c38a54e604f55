"""The protobuf form of an ingest batch: ``trackstack.v1.IngestBatch``, as defined in
proto/trackstack/v1/ingest.proto.

Hand-rolled so that the SDK needs no protobuf runtime. The message is columnar on purpose: each
point column is a packed fixed-width field, written with one ``struct.pack`` call, so encoding
costs a few C calls per batch instead of Python work per point. The decoder exists for version
skew only: a protobuf body (live, or from the spool) is turned back into the JSON body for a server
that answers ``415`` to protobuf.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

CONTENT_TYPE = "application/x-protobuf"

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_RUN_ID = 0x0A  # 1: string
_KEYS = 0x12  # 2: repeated string
_KEY_INDEX = 0x1A  # 3: repeated fixed32, packed
_STEPS = 0x22  # 4: repeated sfixed64, packed
_VALUES = 0x2A  # 5: repeated double, packed
_TIMES_MS = 0x32  # 6: repeated sfixed64, packed
_CONFIG_JSON = 0x3A  # 7: optional string
_SUMMARY_JSON = 0x42  # 8: optional string
_TAGS = 0x4A  # 9: repeated string
_REPLACE_TAGS = 0x50  # 10: bool
_STATE = 0x5A  # 11: optional string
_EXIT_CODE = 0x60  # 12: optional int32

_U64 = (1 << 64) - 1
#: One-byte varints, precomputed: nearly every length and tag of a batch is below 128.
_SMALL = [bytes((i,)) for i in range(128)]


def varint(n: int) -> bytes:
    """The base-128 varint of ``n``; negative numbers take ten bytes (two's complement, as int32
    and int64 fields require)."""
    if 0 <= n < 128:
        return _SMALL[n]
    n &= _U64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _text(tag: int, s: str) -> bytes:
    # surrogatepass: a key with a lone surrogate must not crash the sender; the server refuses the
    # invalid UTF-8 like it refuses the JSON escape the other encoding would send.
    raw = s.encode("utf-8", "surrogatepass")
    return _SMALL[tag] + varint(len(raw)) + raw


def encode_batch(
    run_id: str,
    keys: Sequence[str] = (),
    key_index: Sequence[int] = (),
    steps: Sequence[int] = (),
    values: Sequence[float] = (),
    times_ms: Sequence[int] = (),
    *,
    config_json: str | None = None,
    summary_json: str | None = None,
    tags: Sequence[str] | None = None,
    state: str | None = None,
    exit_code: int | None = None,
) -> bytes:
    """Encodes one ``IngestBatch``.

    Point ``i`` is ``(keys[key_index[i]], steps[i], values[i], times_ms[i])``; ``times_ms`` may be
    empty (the server's clock). ``tags`` not ``None`` replaces the run's tags, even when empty
    (``replace_tags``). ``None`` leaves an optional field absent; ``""`` and ``0`` are sent.
    """
    n = len(key_index)
    if not len(steps) == len(values) == n or (times_ms and len(times_ms) != n):
        raise ValueError("point columns must have the same length")
    parts: list[bytes] = []
    if run_id:  # proto3 implicit presence: the default is not written
        parts.append(_text(_RUN_ID, run_id))
    parts.extend(_text(_KEYS, k) for k in keys)
    if n:
        # Packed fixed-width columns: tag, byte length, then the little-endian items in one call.
        parts += (
            _SMALL[_KEY_INDEX],
            varint(4 * n),
            struct.pack(f"<{n}I", *key_index),
            _SMALL[_STEPS],
            varint(8 * n),
            struct.pack(f"<{n}q", *steps),
            _SMALL[_VALUES],
            varint(8 * n),
            struct.pack(f"<{n}d", *values),
        )
        if times_ms:
            parts += (_SMALL[_TIMES_MS], varint(8 * n), struct.pack(f"<{n}q", *times_ms))
    if config_json is not None:
        parts.append(_text(_CONFIG_JSON, config_json))
    if summary_json is not None:
        parts.append(_text(_SUMMARY_JSON, summary_json))
    if tags is not None:
        parts.extend(_text(_TAGS, t) for t in tags)
        parts.append(_SMALL[_REPLACE_TAGS] + _SMALL[1])
    if state is not None:
        parts.append(_text(_STATE, state))
    if exit_code is not None:
        if not -(1 << 31) <= exit_code < 1 << 31:
            raise ValueError(f"exit_code {exit_code} does not fit an int32")
        parts.append(_SMALL[_EXIT_CODE] + varint(exit_code))
    return b"".join(parts)


# -- decoding (the JSON fallback) -----------------------------------------------------------------

#: Packed numeric fields: field number -> (name, struct code, item size).
_FIXED = {
    3: ("key_index", "I", 4),
    4: ("steps", "q", 8),
    5: ("values", "d", 8),
    6: ("times_ms", "q", 8),
}
_STRINGS = {1: "run_id", 7: "config_json", 8: "summary_json", 11: "state"}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _packed(fmt: str, size: int, raw: bytes) -> tuple[Any, ...]:
    if len(raw) % size:
        raise ValueError("packed field length is not a multiple of its item size")
    return struct.unpack(f"<{len(raw) // size}{fmt}", raw)


def decode_batch(data: bytes) -> dict[str, Any]:
    """Decodes an ``IngestBatch`` into its fields (absent optional fields are left out).

    Only what :func:`encode_batch` writes is understood, plus the unpacked forms of the repeated
    numeric fields that any protobuf encoder may use; unknown fields are skipped.
    """
    out: dict[str, Any] = {
        "run_id": "",
        "keys": [],
        "key_index": [],
        "steps": [],
        "values": [],
        "times_ms": [],
        "tags": [],
        "replace_tags": False,
    }
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _read_varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 10:
                out["replace_tags"] = value != 0
            elif field == 12:
                value &= 0xFFFFFFFF  # int32 is sign-extended to 64 bits on the wire
                out["exit_code"] = value - (1 << 32) if value >= 1 << 31 else value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            raw = data[pos : pos + length]
            if len(raw) != length:
                raise ValueError("truncated length-delimited field")
            pos += length
            if field in _FIXED:
                name, fmt, size = _FIXED[field]
                out[name].extend(_packed(fmt, size, raw))
            elif field in _STRINGS:
                out[_STRINGS[field]] = raw.decode("utf-8", "surrogatepass")
            elif field in (2, 9):
                out["keys" if field == 2 else "tags"].append(raw.decode("utf-8", "surrogatepass"))
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            raw = data[pos : pos + size]
            if len(raw) != size:
                raise ValueError("truncated fixed-width field")
            pos += size
            if field in _FIXED and _FIXED[field][2] == size:
                name, fmt, _ = _FIXED[field]
                out[name].append(struct.unpack("<" + fmt, raw)[0])
        else:
            raise ValueError(f"unsupported wire type {wire} (field {field})")
    return out


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def to_json_body(data: bytes) -> bytes:
    """The JSON ``POST /ingest`` body equivalent to a protobuf ``IngestBatch``."""
    b = decode_batch(data)
    n = len(b["key_index"])
    times = b["times_ms"]
    if not len(b["steps"]) == len(b["values"]) == n or (times and len(times) != n):
        raise ValueError("point columns of different lengths")
    body: dict[str, Any] = {"run_id": b["run_id"]}
    if n:
        keys = b["keys"]
        metrics = []
        for i in range(n):
            v = b["values"][i]
            point = {
                "key": keys[b["key_index"][i]],
                "step": b["steps"][i],
                "value": v if math.isfinite(v) else _NON_FINITE[str(v)],
            }
            if times:
                point["time_ms"] = times[i]
            metrics.append(point)
        body["metrics"] = metrics
    if "config_json" in b:
        body["config"] = json.loads(b["config_json"])
    if "summary_json" in b:
        body["summary"] = json.loads(b["summary_json"])
    if b["replace_tags"]:
        body["tags"] = b["tags"]
    if "state" in b:
        body["state"] = b["state"]
    if "exit_code" in b:
        body["exit_code"] = b["exit_code"]
    # ASCII escapes keep any key the encoder accepted (even a lone surrogate) representable.
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
