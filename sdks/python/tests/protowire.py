"""A small reference protobuf decoder for the tests, written from the wire-format spec and
proto/trackstack/v1/ingest.proto, independently of ``track._proto``.

``fields`` splits a message into (field number, wire type, value) triples; ``decode_ingest`` turns
an ``IngestBatch`` into the JSON body the server documents, so the fake server and the tests can
treat both encodings alike.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise ValueError("varint overflows 64 bits")
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Every field of a message in wire order: varints as unsigned ints, I64/I32 as raw bytes, LEN
    as the raw payload."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == I64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == LEN:
            length, pos = read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == I32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated message")
        out.append((number, wire, value))
    return out


# Repeated fixed-width fields of IngestBatch: number -> (struct code, size, wire type unpacked).
_PACKED = {3: ("I", 4, I32), 4: ("q", 8, I64), 5: ("d", 8, I64), 6: ("q", 8, I64)}
_NAMES = {3: "key_index", 4: "steps", 5: "values", 6: "times_ms"}


def decode_ingest_fields(data: bytes) -> dict[str, Any]:
    """An ``IngestBatch`` as a dict of its fields; an absent optional field is absent here."""
    msg: dict[str, Any] = {"keys": [], "tags": [], **{name: [] for name in _NAMES.values()}}
    for number, wire, value in fields(data):
        if number in _PACKED:
            code, size, unpacked_wire = _PACKED[number]
            if wire == LEN:  # packed: the payload is the items back to back
                assert len(value) % size == 0, "packed payload is not whole items"
                msg[_NAMES[number]] += struct.unpack(f"<{len(value) // size}{code}", value)
            else:
                assert wire == unpacked_wire
                msg[_NAMES[number]].append(struct.unpack("<" + code, value)[0])
        elif number in (1, 7, 8, 11):
            assert wire == LEN
            name = {1: "run_id", 7: "config_json", 8: "summary_json", 11: "state"}[number]
            msg[name] = value.decode("utf-8")
        elif number in (2, 9):
            assert wire == LEN
            msg["keys" if number == 2 else "tags"].append(value.decode("utf-8"))
        elif number == 10:
            assert wire == VARINT
            msg["replace_tags"] = bool(value)
        elif number == 12:
            assert wire == VARINT
            value &= 0xFFFFFFFF  # an int32 is sign-extended to 64 bits, then truncated back
            msg["exit_code"] = value - (1 << 32) if value & 0x80000000 else value
        # Unknown fields are skipped, as protobuf requires.
    return msg


def _json_value(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def decode_ingest(data: bytes) -> dict[str, Any]:
    """The JSON ``POST /ingest`` body equivalent to an ``IngestBatch``."""
    msg = decode_ingest_fields(data)
    n = len(msg["key_index"])
    assert len(msg["steps"]) == len(msg["values"]) == n, "point columns differ in length"
    assert not msg["times_ms"] or len(msg["times_ms"]) == n, "times_ms is neither empty nor full"
    body: dict[str, Any] = {"run_id": msg.get("run_id", "")}
    if n:
        metrics = []
        for i in range(n):
            point = {
                "key": msg["keys"][msg["key_index"][i]],
                "step": msg["steps"][i],
                "value": _json_value(msg["values"][i]),
            }
            if msg["times_ms"]:
                point["time_ms"] = msg["times_ms"][i]
            metrics.append(point)
        body["metrics"] = metrics
    if "config_json" in msg:
        body["config"] = json.loads(msg["config_json"])
    if "summary_json" in msg:
        body["summary"] = json.loads(msg["summary_json"])
    if msg.get("replace_tags"):
        body["tags"] = msg["tags"]
    if "state" in msg:
        body["state"] = msg["state"]
    if "exit_code" in msg:
        body["exit_code"] = msg["exit_code"]
    return body
