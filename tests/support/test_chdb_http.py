"""Tests for chdb_http.py over real HTTP: the front runs as a subprocess, as the Rust suite uses it.

Besides the HTTP surface, these tests pin down the engine behaviour the ClickHouse backend relies
on (insert dedup tokens, ReplacingMergeTree FINAL, materialized-view rollups, NaN/±inf), so a
chdb-core upgrade that changes any of it fails here first.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import lzma
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

FRONT = Path(__file__).resolve().parent / "chdb_http.py"

if importlib.util.find_spec("chdb") is None:
    message = "chdb-core is missing: pip install -r tests/support/requirements.txt"
    if os.environ.get("CI") == "true":  # DESIGN §10: under CI a missing component fails the run.
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)

HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None


class Front:
    """One chdb_http.py process on a port of its own, over a data directory that outlives it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port_file = data_dir.parent / f"{data_dir.name}.port"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.first_line = ""

    def start(self) -> Front:
        self.port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, str(FRONT), "--host", "127.0.0.1", "--port", "0"),
                    *("--data-dir", str(self.data_dir), "--port-file", str(self.port_file)),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"front did not start:\n{self.log_path.read_text()}")
            time.sleep(0.02)
        port = int(self.port_file.read_text())
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline().decode()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    running = Front(tmp_path_factory.mktemp("front") / "data").start()
    yield running
    running.stop()


@pytest.fixture
def client(front: Front) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.url, timeout=60) as http:
        yield http


@pytest.fixture
def db(client: httpx.Client, request: pytest.FixtureRequest) -> str:
    """A fresh database per test, so tests sharing the module's front do not see each other."""
    name = "t_" + re.sub(r"\W", "_", request.node.name)[:60]
    ok(post(client, f"DROP DATABASE IF EXISTS {name}"))
    ok(post(client, f"CREATE DATABASE {name}"))
    return name


def post(client: httpx.Client, body: str | bytes | None = None, **params: Any) -> httpx.Response:
    """POST with the query in the body and/or the `query` parameter, as the Rust client does."""
    headers = params.pop("headers", None)
    return client.post("/", params=params, content=body, headers=headers)


def get(client: httpx.Client, sql: str, **params: Any) -> httpx.Response:
    headers = params.pop("headers", None)
    return client.get("/", params={"query": sql, **params}, headers=headers)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, response.text
    return response


def clickhouse_error(response: httpx.Response, status: int, code: int, name: str) -> str:
    """Assert an error answered the way ClickHouse answers it, and return its text."""
    assert response.status_code == status, response.text
    assert response.headers["X-ClickHouse-Exception-Code"] == str(code)
    assert response.text.startswith(f"Code: {code}. DB::Exception: "), response.text
    assert f"({name})" in response.text
    assert re.search(r"\(version 26\.\d+", response.text), response.text
    return response.text


# --- the HTTP surface ------------------------------------------------------------------------


def test_announces_its_port(front: Front) -> None:
    port = int(front.port_file.read_text())
    assert front.first_line == f"listening on http://127.0.0.1:{port}\n"


def test_ping_root_and_unknown_path(client: httpx.Client) -> None:
    for path in ("/ping", "/"):
        response = ok(client.get(path))
        assert response.content == b"Ok.\n"
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.text.startswith("There is no handle /nowhere")


def test_get_query_answers_tab_separated_with_clickhouse_headers(client: httpx.Client) -> None:
    response = ok(get(client, "SELECT 1 AS n, 'a\tb' AS s"))
    assert response.content == b"1\ta\\tb\n"
    assert response.headers["Content-Type"] == "text/tab-separated-values; charset=UTF-8"
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert response.headers["X-ClickHouse-Timezone"]
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["X-ClickHouse-Query-Id"])
    summary = json.loads(response.headers["X-ClickHouse-Summary"])
    assert {"read_rows", "written_rows", "elapsed_ns"} <= summary.keys()

    identity = {"Accept-Encoding": "identity"}
    head = ok(client.head("/", params={"query": "SELECT 1"}, headers=identity))
    assert head.content == b""
    assert head.headers["Content-Length"] == "2"


def test_query_is_parameter_line_feed_body(client: httpx.Client) -> None:
    # ClickHouse's own doc example: `echo 1 | curl '...?query=SELECT' --data-binary @-`.
    assert ok(post(client, "1", query="SELECT")).content == b"1\n"
    assert ok(post(client, "SELECT 2")).content == b"2\n"
    assert ok(post(client, None, query="SELECT 3")).content == b"3\n"
    # The line feed is really there: a token split across the two parts does not join up.
    clickhouse_error(post(client, "ECT 1", query="SEL"), 400, 62, "SYNTAX_ERROR")
    response = ok(post(client, "SELECT 4", query_id="my-query"))
    assert response.headers["X-ClickHouse-Query-Id"] == "my-query"


def test_insert_and_select_in_several_formats(client: httpx.Client, db: str) -> None:
    create = f"CREATE TABLE {db}.t (a Int32, s String, v Float64) ENGINE = MergeTree ORDER BY a"
    response = ok(post(client, create))
    assert response.content == b""
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"

    rows = '{"a":1,"s":"x;y","v":0.5}\n{"a":2,"s":"; SELECT 1","v":-1}\n'
    response = ok(post(client, rows, query=f"INSERT INTO {db}.t FORMAT JSONEachRow"))
    assert response.content == b""
    assert "X-ClickHouse-Format" not in response.headers
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    ok(post(client, "(3, 'v', 1.5), (4, 'w', 2)", query=f"INSERT INTO {db}.t (a, s, v) VALUES"))
    ok(post(client, f"INSERT INTO {db}.t VALUES (5, 'body', 3)"))
    ok(post(client, "6\ttab\t4\n", query=f"INSERT INTO {db}.t FORMAT TabSeparated"))

    select = f"SELECT a, s, v FROM {db}.t WHERE a <= 2 ORDER BY a"
    tsv = ok(get(client, select))
    assert tsv.content == b"1\tx;y\t0.5\n2\t; SELECT 1\t-1\n"

    each_row = ok(get(client, select + " FORMAT JSONEachRow"))
    assert each_row.headers["Content-Type"] == "application/x-ndjson; charset=UTF-8"
    assert each_row.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert [json.loads(line) for line in each_row.text.splitlines()] == [
        {"a": 1, "s": "x;y", "v": 0.5},
        {"a": 2, "s": "; SELECT 1", "v": -1},
    ]

    document = ok(get(client, f"SELECT count() AS n FROM {db}.t FORMAT JSON"))
    assert document.headers["Content-Type"] == "application/json; charset=UTF-8"
    parsed = document.json()
    assert parsed["data"] == [{"n": 6}]
    assert parsed["meta"] == [{"name": "n", "type": "UInt64"}]

    csv = ok(get(client, select + " FORMAT CSVWithNames"))
    assert csv.headers["Content-Type"] == "text/csv; charset=UTF-8; header=present"
    assert csv.text.splitlines()[0] == '"a","s","v"'

    binary = ok(get(client, f"SELECT a FROM {db}.t WHERE a = 1 FORMAT RowBinary"))
    assert binary.headers["Content-Type"] == "application/octet-stream"
    assert binary.content == struct.pack("<i", 1)

    # A FORMAT inside a string literal is not the query's FORMAT clause.
    literal = ok(get(client, "SELECT 'x FORMAT JSON' AS s"))
    assert literal.headers["X-ClickHouse-Format"] == "TabSeparated"


def test_binary_body_that_starts_with_a_whitespace_byte(client: httpx.Client, db: str) -> None:
    # Int32 9 is the byte 0x09 (tab): the data must start right after the inserted line feed.
    ok(post(client, f"CREATE TABLE {db}.b (a Int32, s String) ENGINE = MergeTree ORDER BY a"))
    data = struct.pack("<i", 9) + bytes([3]) + b"\xff\x00\t"
    ok(post(client, data, query=f"INSERT INTO {db}.b FORMAT RowBinary"))
    assert ok(get(client, f"SELECT a, hex(s) FROM {db}.b")).text == "9\tFF0009\n"


def test_database_parameter_and_header(client: httpx.Client, db: str) -> None:
    ok(post(client, "CREATE TABLE here (x UInt8) ENGINE = Memory", database=db))
    ok(post(client, "INSERT INTO here VALUES (7)", database=db))
    assert ok(get(client, "SELECT x FROM here", database=db)).text == "7\n"
    header = {"X-ClickHouse-Database": db}
    assert ok(get(client, "SELECT currentDatabase()", headers=header)).text == f"{db}\n"
    # The header wins over the parameter, as in ClickHouse.
    both = get(client, "SELECT currentDatabase()", database="default", headers=header)
    assert ok(both).text == f"{db}\n"
    # The database is per request: the next request is back in `default`.
    assert ok(get(client, "SELECT currentDatabase()")).text == "default\n"
    clickhouse_error(get(client, "SELECT 1", database="no_such_db"), 404, 81, "UNKNOWN_DATABASE")


def test_settings_parameters_apply_to_one_request(client: httpx.Client, db: str) -> None:
    probe = "SELECT getSetting('max_threads')"
    assert ok(get(client, probe, max_threads="1")).text == "1\n"
    assert ok(get(client, probe)).text != "1\n"

    # SELECT: a limit set in the URL is enforced.
    limited = get(client, "SELECT number FROM numbers(10)", max_result_rows="1")
    assert limited.status_code == 500 and "TOO_MANY_ROWS_OR_BYTES" in limited.text
    timed_out = get(
        client,
        "SELECT sleepEachRow(0.05) FROM numbers(40)",
        max_execution_time="0.1",
        max_block_size="1",
    )
    clickhouse_error(timed_out, 408, 159, "TIMEOUT_EXCEEDED")

    # INSERT ... FORMAT with data: the settings reach the input format. JSON null in a
    # non-Nullable Float64 is read as the column default (0) unless input_format_null_as_default=0,
    # which makes this engine read it as nan.
    ok(post(client, f"CREATE TABLE {db}.n (k UInt8, v Float64) ENGINE = MergeTree ORDER BY k"))
    insert = f"INSERT INTO {db}.n FORMAT JSONEachRow"
    ok(post(client, '{"k":1,"v":null}', query=insert, input_format_null_as_default="0"))
    ok(post(client, '{"k":2,"v":null}', query=insert))
    assert ok(get(client, f"SELECT k, v FROM {db}.n ORDER BY k")).text == "1\tnan\n2\t0\n"

    # DDL and mutations: mutations_sync makes ALTER ... DELETE visible when the request returns.
    delete = f"ALTER TABLE {db}.n DELETE WHERE k = 2"
    ok(post(client, delete, mutations_sync="2"))
    assert ok(get(client, f"SELECT count() FROM {db}.n")).text == "1\n"

    # Settings are validated by the engine: unknown names and bad values are refused.
    clickhouse_error(get(client, "SELECT 1", no_such_setting="1"), 404, 115, "UNKNOWN_SETTING")
    bad = get(client, "SELECT 1", max_threads="many")
    assert bad.status_code == 400 and bad.headers["X-ClickHouse-Exception-Code"] == "27"

    # Parameters that are not settings are ignored rather than refused.
    ignored = {"session_id": "s", "session_timeout": "60", "wait_end_of_query": "1", "role": "r"}
    assert ok(get(client, "SELECT 1", **ignored, buffer_size="10", stacktrace="1")).text == "1\n"


def test_query_parameters(client: httpx.Client) -> None:
    response = get(client, "SELECT {n:UInt8} + 1, {s:String}", param_n="41", param_s="it's")
    assert ok(response).text == "42\tit\\'s\n"


def test_default_format_parameter_and_header(client: httpx.Client) -> None:
    response = ok(get(client, "SELECT 1 AS one", default_format="JSONEachRow"))
    assert response.content == b'{"one":1}\n'
    assert response.headers["X-ClickHouse-Format"] == "JSONEachRow"
    header = ok(get(client, "SELECT 1 AS one", headers={"X-ClickHouse-Format": "CSV"}))
    assert header.content == b"1\n"
    assert header.headers["Content-Type"] == "text/csv; charset=UTF-8; header=absent"
    # The query's own FORMAT clause wins over default_format.
    clause = ok(get(client, "SELECT 1 AS one FORMAT TSVWithNames", default_format="JSON"))
    assert clause.content == b"one\n1\n"
    assert clause.headers["X-ClickHouse-Format"] == "TSVWithNames"
    clickhouse_error(get(client, "SELECT 1", default_format="Nope"), 404, 73, "UNKNOWN_FORMAT")


def test_get_is_read_only(client: httpx.Client, db: str) -> None:
    create = f"CREATE TABLE {db}.r (x UInt8) ENGINE = Memory"
    clickhouse_error(get(client, create), 500, 164, "READONLY")
    ok(post(client, create))
    clickhouse_error(get(client, f"INSERT INTO {db}.r VALUES (1)"), 500, 164, "READONLY")


def test_errors_look_like_clickhouse(client: httpx.Client, db: str) -> None:
    clickhouse_error(get(client, "SELEC 1"), 400, 62, "SYNTAX_ERROR")
    clickhouse_error(get(client, "SELECT * FROM no_such_table"), 404, 60, "UNKNOWN_TABLE")
    clickhouse_error(get(client, "SELECT no_such_function()"), 404, 46, "UNKNOWN_FUNCTION")
    clickhouse_error(post(client, b""), 400, 62, "SYNTAX_ERROR")
    parse = post(
        client, '{"x":"not a number"}', query=f"INSERT INTO {db}.missing FORMAT JSONEachRow"
    )
    clickhouse_error(parse, 404, 60, "UNKNOWN_TABLE")

    # One statement per request: nothing of a multi-statement request runs.
    multi = f"CREATE TABLE {db}.m (x UInt8) ENGINE = Memory; SELECT 1"
    text = clickhouse_error(post(client, multi), 400, 62, "SYNTAX_ERROR")
    assert "Multi-statements are not allowed" in text
    assert ok(get(client, f"EXISTS TABLE {db}.m")).text == "0\n"
    # Also when a later statement does not parse: the first one must not run either.
    ok(post(client, f"CREATE TABLE {db}.m (x UInt8) ENGINE = Memory"))
    broken = post(client, f"INSERT INTO {db}.m VALUES (1); SELEC 2")
    clickhouse_error(broken, 400, 62, "SYNTAX_ERROR")
    assert ok(get(client, f"SELECT count() FROM {db}.m")).text == "0\n"
    assert ok(post(client, "SELECT 1;")).text == "1\n"  # a trailing semicolon is fine


def test_request_body_encodings(client: httpx.Client) -> None:
    sql = b"SELECT 'compressed'"
    bodies = {
        "gzip": gzip.compress(sql),
        "deflate": zlib.compress(sql),
        "xz": lzma.compress(sql),
        "bz2": bz2.compress(sql),
    }
    for encoding, body in bodies.items():
        response = post(client, body, headers={"Content-Encoding": encoding})
        assert ok(response).text == "compressed\n", encoding

    if HAVE_ZSTD:
        import zstandard

        zstd_body = zstandard.ZstdCompressor().compress(sql)
        assert ok(post(client, zstd_body, headers={"Content-Encoding": "zstd"})).text
    else:
        zstd = post(client, b"\x28\xb5\x2f\xfd", headers={"Content-Encoding": "zstd"})
        text = clickhouse_error(zstd, 415, 779, "UNSUPPORTED_MEDIA_TYPE")
        assert "zstandard" in text

    unknown = post(client, sql, headers={"Content-Encoding": "rot13"})
    clickhouse_error(unknown, 501, 48, "NOT_IMPLEMENTED")
    corrupt = post(client, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    clickhouse_error(corrupt, 500, 271, "CANNOT_DECOMPRESS")


def test_response_compression(client: httpx.Client) -> None:
    sql = "SELECT number FROM numbers(1000)"
    raw = client.post("/", content=sql, headers={"Accept-Encoding": "gzip"})
    assert ok(raw).headers["Content-Encoding"] == "gzip"  # on by default since ClickHouse 25.10
    assert raw.text.splitlines()[-1] == "999"  # httpx decoded it
    off = client.post(
        "/",
        params={"enable_http_compression": "0"},
        content=sql,
        headers={"Accept-Encoding": "gzip"},
    )
    assert "Content-Encoding" not in ok(off).headers
    plain = client.post("/", content=sql, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in ok(plain).headers


def test_native_compression_is_refused_not_ignored(client: httpx.Client) -> None:
    clickhouse_error(post(client, "SELECT 1", compress="1"), 501, 48, "NOT_IMPLEMENTED")
    clickhouse_error(post(client, "SELECT 1", decompress="1"), 501, 48, "NOT_IMPLEMENTED")


def test_chunked_request_body(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"SELECT "
        yield b"'chunked'"

    assert ok(client.post("/", content=chunks())).text == "chunked\n"


def test_post_without_length_or_chunking_is_refused(front: Front) -> None:
    port = int(front.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"X-ClickHouse-Exception-Code: 381" in answer


def test_credentials_are_accepted_and_ignored(client: httpx.Client) -> None:
    assert ok(post(client, "SELECT 1", user="u", password="p")).text == "1\n"
    headers = {"X-ClickHouse-User": "u", "X-ClickHouse-Key": "p"}
    assert ok(post(client, "SELECT 1", headers=headers)).text == "1\n"
    basic = client.post("/", content="SELECT 1", auth=("default", "secret"))
    assert ok(basic).text == "1\n"


# --- engine behaviour the ClickHouse backend relies on ---------------------------------------


def count(client: httpx.Client, sql: str) -> int:
    return int(ok(get(client, sql)).text)


def test_insert_deduplication_token(client: httpx.Client, db: str) -> None:
    ok(
        post(
            client,
            f"CREATE TABLE {db}.p (k String, step Int64, v Float64) ENGINE = MergeTree "
            "ORDER BY (k, step) SETTINGS non_replicated_deduplication_window = 1000",
        )
    )
    insert = f"INSERT INTO {db}.p FORMAT JSONEachRow"

    def send(rows: str, token: str | None) -> None:
        params = {"insert_deduplication_token": token} if token else {}
        ok(post(client, rows, query=insert, **params))

    # A replayed batch (same token) is a no-op, even when its bytes differ.
    send('{"k":"loss","step":1,"v":0.5}\n', "batch-1")
    send('{"k":"loss","step":1,"v":0.5}\n', "batch-1")
    send('{"k":"loss","step":2,"v":0.4}\n', "batch-1")
    assert count(client, f"SELECT count() FROM {db}.p") == 1
    # Different tokens are different batches, even with identical rows.
    send('{"k":"acc","step":1,"v":1}\n', "batch-2")
    send('{"k":"acc","step":1,"v":1}\n', "batch-3")
    assert count(client, f"SELECT count() FROM {db}.p WHERE k = 'acc'") == 2
    # Without a token, the window still drops a block whose rows hash the same as a recent one.
    send('{"k":"lr","step":1,"v":0.1}\n', None)
    send('{"k":"lr","step":1,"v":0.1}\n', None)
    assert count(client, f"SELECT count() FROM {db}.p WHERE k = 'lr'") == 1
    # async_insert (on by default in ClickHouse 26.x) keeps the same semantics.
    for _ in range(2):
        ok(
            post(
                client,
                '{"k":"gn","step":1,"v":2}\n',
                query=insert,
                async_insert="1",
                insert_deduplication_token="batch-4",
            )
        )
    assert count(client, f"SELECT count() FROM {db}.p WHERE k = 'gn'") == 1


def test_token_without_dedup_window_is_not_idempotent(client: httpx.Client, db: str) -> None:
    ok(post(client, f"CREATE TABLE {db}.q (x UInt8) ENGINE = MergeTree ORDER BY x"))
    for _ in range(2):
        ok(post(client, "(1)", query=f"INSERT INTO {db}.q VALUES", insert_deduplication_token="t"))
    assert count(client, f"SELECT count() FROM {db}.q") == 2


def test_replacing_merge_tree_final(client: httpx.Client, db: str) -> None:
    ok(
        post(
            client,
            f"CREATE TABLE {db}.pts (run String, step Int64, value Float64, ver UInt64) "
            "ENGINE = ReplacingMergeTree(ver) ORDER BY (run, step)",
        )
    )
    insert = f"INSERT INTO {db}.pts FORMAT JSONEachRow"
    ok(
        post(
            client,
            '{"run":"r","step":1,"value":0.5,"ver":1}\n{"run":"r","step":2,"value":0.4,"ver":1}',
            query=insert,
        )
    )
    ok(post(client, '{"run":"r","step":1,"value":0.9,"ver":2}', query=insert))
    assert count(client, f"SELECT count() FROM {db}.pts") == 3  # not merged yet
    final = f"SELECT step, value FROM {db}.pts FINAL ORDER BY step"
    assert ok(get(client, final)).text == "1\t0.9\n2\t0.4\n"
    as_setting = get(client, f"SELECT step, value FROM {db}.pts ORDER BY step", final="1")
    assert ok(as_setting).text == "1\t0.9\n2\t0.4\n"
    ok(post(client, f"OPTIMIZE TABLE {db}.pts FINAL"))
    assert count(client, f"SELECT count() FROM {db}.pts") == 2


def create_rollup(client: httpx.Client, db: str, target_window: int) -> None:
    """Points feeding a bucketed min/max/sum/count/last rollup through a materialized view."""
    ok(
        post(
            client,
            f"CREATE TABLE {db}.points (run String, key String, step Int64, value Float64) "
            "ENGINE = MergeTree ORDER BY (run, key, step) "
            "SETTINGS non_replicated_deduplication_window = 1000",
        )
    )
    ok(
        post(
            client,
            f"CREATE TABLE {db}.rollup (run String, key String, bucket Int64, "
            "vmin AggregateFunction(min, Float64), vmax AggregateFunction(max, Float64), "
            "vsum AggregateFunction(sum, Float64), n AggregateFunction(count), "
            "last AggregateFunction(argMax, Float64, Int64)) "
            "ENGINE = AggregatingMergeTree ORDER BY (run, key, bucket) "
            f"SETTINGS non_replicated_deduplication_window = {target_window}",
        )
    )
    ok(
        post(
            client,
            f"CREATE MATERIALIZED VIEW {db}.rollup_mv TO {db}.rollup AS "
            "SELECT run, key, intDiv(step, 10) AS bucket, minState(value) AS vmin, "
            "maxState(value) AS vmax, sumState(value) AS vsum, countState() AS n, "
            f"argMaxState(value, step) AS last FROM {db}.points GROUP BY run, key, bucket",
        )
    )


READ_ROLLUP = (
    "SELECT bucket, minMerge(vmin), maxMerge(vmax), sumMerge(vsum), countMerge(n), "
    "argMaxMerge(last) FROM {db}.rollup WHERE run = 'r' GROUP BY bucket ORDER BY bucket"
)


def test_materialized_view_rollup(client: httpx.Client, db: str) -> None:
    create_rollup(client, db, target_window=1000)
    rows = "".join(
        json.dumps({"run": "r", "key": "loss", "step": step, "value": step / 10}) + "\n"
        for step in range(25)
    )
    insert = f"INSERT INTO {db}.points FORMAT JSONEachRow"
    ok(post(client, rows, query=insert))
    ok(post(client, '{"run":"r","key":"loss","step":25,"value":-1}\n', query=insert))
    assert ok(get(client, READ_ROLLUP.format(db=db))).text == (
        "0\t0\t0.9\t4.5\t10\t0.9\n1\t1\t1.9\t14.5\t10\t1.9\n2\t-1\t2.4\t10\t6\t-1\n"
    )
    # Partial states from separate inserts merge; OPTIMIZE folds them into one row per key.
    ok(post(client, f"OPTIMIZE TABLE {db}.rollup FINAL"))
    assert count(client, f"SELECT count() FROM {db}.rollup") == 3


def test_dedup_reaches_the_rollup_only_if_its_table_dedups(client: httpx.Client, db: str) -> None:
    for window in (0, 1000):
        schema = f"{db}_w{window}"
        ok(post(client, f"CREATE DATABASE {schema}"))
        create_rollup(client, schema, target_window=window)
        insert = f"INSERT INTO {schema}.points VALUES"
        for _ in range(3):
            ok(post(client, "('r','loss',1,1.0)", query=insert, insert_deduplication_token="b"))
        assert count(client, f"SELECT count() FROM {schema}.points") == 1
        rolled = count(client, f"SELECT countMerge(n) FROM {schema}.rollup")
        # Without a window on the rollup table, every replay is counted again.
        assert rolled == (1 if window else 3), window


def test_non_finite_floats_through_tab_separated(client: httpx.Client, db: str) -> None:
    ok(post(client, f"CREATE TABLE {db}.f (k UInt8, v Float64) ENGINE = MergeTree ORDER BY k"))
    tsv = "1\tnan\n2\tinf\n3\t-inf\n4\tNaN\n5\tInf\n6\t-Infinity\n7\t1e400\n"
    ok(post(client, tsv, query=f"INSERT INTO {db}.f FORMAT TabSeparated"))
    ok(post(client, f"INSERT INTO {db}.f VALUES (8, nan), (9, -inf), (10, 'inf')"))
    out = ok(get(client, f"SELECT k, v FROM {db}.f ORDER BY k")).text
    assert (
        out
        == "1\tnan\n2\tinf\n3\t-inf\n4\tnan\n5\tinf\n6\t-inf\n7\tinf\n8\tnan\n9\t-inf\n10\tinf\n"
    )
    csv = ok(get(client, f"SELECT v FROM {db}.f WHERE k <= 3 ORDER BY k FORMAT CSV")).text
    assert csv == "nan\ninf\n-inf\n"
    raw = ok(get(client, f"SELECT v FROM {db}.f WHERE k <= 3 ORDER BY k FORMAT RowBinary"))
    nan, inf, ninf = struct.unpack("<3d", raw.content)
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf


def test_non_finite_floats_through_json(client: httpx.Client, db: str) -> None:
    ok(
        post(
            client,
            f"CREATE TABLE {db}.j (k UInt8, v Float64, n Nullable(Float64)) "
            "ENGINE = MergeTree ORDER BY k",
        )
    )
    insert = f"INSERT INTO {db}.j FORMAT JSONEachRow"
    # Input: bare NaN/Infinity/-Infinity tokens and quoted "nan"/"inf"/"-inf" strings are read.
    ok(post(client, '{"k":1,"v":NaN}\n{"k":2,"v":Infinity}\n{"k":3,"v":-Infinity}\n', query=insert))
    ok(post(client, '{"k":4,"v":"nan"}\n{"k":5,"v":"inf"}\n{"k":6,"v":"-inf"}\n', query=insert))
    # Bare lower-case nan is not JSON and is refused.
    bare = post(client, '{"k":7,"v":nan}\n', query=insert)
    clickhouse_error(bare, 400, 27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED")
    # The trap: JSON null (what serde_json writes for NaN) silently becomes 0 in a Float64
    # column, and NULL only in a Nullable one.
    ok(post(client, '{"k":8,"v":null,"n":null}\n', query=insert))
    assert ok(get(client, f"SELECT v, n FROM {db}.j WHERE k = 8")).text == "0\t\\N\n"

    select = f"SELECT k, v FROM {db}.j WHERE k <= 6 ORDER BY k FORMAT JSONEachRow"
    default = [json.loads(line)["v"] for line in ok(get(client, select)).text.splitlines()]
    assert default == [None] * 6  # output: every non-finite value is null by default...
    quoted = ok(get(client, select, output_format_json_quote_denormals="1")).text
    values = [json.loads(line)["v"] for line in quoted.splitlines()]
    assert values == ["nan", "inf", "-inf", "nan", "inf", "-inf"]  # ...or a string on request
    # Quoted output is valid input again: the round trip is lossless.
    ok(post(client, quoted.replace('"k":', '"k":1'), query=insert))
    again = ok(get(client, f"SELECT v FROM {db}.j WHERE k >= 11 ORDER BY k")).text
    assert again == "nan\ninf\n-inf\nnan\ninf\n-inf\n"


# --- process-level behaviour -----------------------------------------------------------------


def test_data_survives_a_restart_and_a_kill(tmp_path: Path) -> None:
    instance = Front(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=instance.url, timeout=60) as http:
            ok(post(http, "CREATE TABLE kept (x UInt32) ENGINE = MergeTree ORDER BY x"))
            ok(post(http, "(1), (2)", query="INSERT INTO kept VALUES"))
        assert instance.stop(signal.SIGTERM) == 0

        instance.start()
        with httpx.Client(base_url=instance.url, timeout=60) as http:
            assert ok(get(http, "SELECT sum(x) FROM kept")).text == "3\n"
            ok(post(http, "(3)", query="INSERT INTO kept VALUES"))
        instance.stop(signal.SIGKILL)  # an acknowledged insert survives kill -9 too

        instance.start()
        with httpx.Client(base_url=instance.url, timeout=60) as http:
            assert ok(get(http, "SELECT sum(x) FROM kept")).text == "6\n"
    finally:
        instance.stop(signal.SIGKILL)


def test_concurrent_requests(front: Front, db: str) -> None:
    with httpx.Client(base_url=front.url, timeout=60) as http:
        ok(
            post(
                http, f"CREATE TABLE {db}.c (w UInt8, i UInt32) ENGINE = MergeTree ORDER BY (w, i)"
            )
        )
    failures: list[str] = []

    def worker(w: int) -> None:
        with httpx.Client(base_url=front.url, timeout=60) as http:
            for i in range(15):
                response = post(http, f"({w}, {i})", query=f"INSERT INTO {db}.c VALUES")
                if response.status_code != 200:
                    failures.append(response.text)
                response = get(http, f"SELECT count() FROM {db}.c WHERE w = {w}")
                if response.status_code != 200 or int(response.text) != i + 1:
                    failures.append(f"worker {w} step {i}: {response.text!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert count_via(front, f"SELECT count() FROM {db}.c") == 6 * 15
    assert ok(httpx.get(f"{front.url}/ping")).content == b"Ok.\n"


def count_via(front: Front, sql: str) -> int:
    with httpx.Client(base_url=front.url, timeout=60) as http:
        return count(http, sql)
