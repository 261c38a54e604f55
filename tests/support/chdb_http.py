#!/usr/bin/env python3
"""ClickHouse's HTTP interface in front of the chDB engine, for Trackstack's ClickHouse tests.

CI cannot install a modern ClickHouse server, but PyPI ships ClickHouse 26.x as the in-process
engine of the `chdb-core` package. This module serves that engine over the part of ClickHouse's
HTTP interface that the Rust backend (reqwest, raw SQL) and curl use, so that one test suite runs
unchanged against this front or a real server. README.md beside this file lists what is covered
and where the front differs from a real server.

    python tests/support/chdb_http.py --host 127.0.0.1 --port 0 --data-dir DIR [--port-file FILE]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import lzma
import re
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# `_chdb` is the engine binding that `chdb.connect()` and `chdb.session.Session` wrap (chdb lists it
# in its `__all__`). It is used directly because only the raw connection offers `classify_query`,
# the engine's own parser, which the front needs to refuse multi-statement requests.
from chdb import _chdb

try:  # Optional: zstd request and response bodies when the `zstandard` module is installed.
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None

OK_BODY = b"Ok.\n"
TEXT_PLAIN = "text/plain; charset=UTF-8"
DEFAULT_OUTPUT_FORMAT = "TabSeparated"

# URL parameters that ClickHouse's HTTP handler consumes itself instead of applying as settings
# (HTTPHandler.cpp, `reserved_param_names`, plus `query`, `database`, `default_format`, `role`).
# `param_*` (query parameters) are handled separately.
RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "role",
    }
)

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error
# name; every other error is a 500. Names rather than numbers because the engine reports the name
# and the numbers are looked up from it at start-up.
_STATUS_GROUPS: dict[int, tuple[str, ...]] = {
    400: (
        "BAD_ARGUMENTS",
        "CANNOT_COMPILE_REGEXP",
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING",
        "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
        "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_UUID",
        "DUPLICATE_COLUMN",
        "ILLEGAL_COLUMN",
        "UNKNOWN_ELEMENT_IN_AST",
        "UNKNOWN_TYPE_OF_AST_NODE",
        "THERE_IS_NO_COLUMN",
        "TOO_DEEP_AST",
        "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE",
        "SYNTAX_ERROR",
        "INCORRECT_DATA",
        "TYPE_MISMATCH",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    ),
    401: ("REQUIRED_PASSWORD",),
    403: (
        "UNKNOWN_USER",
        "WRONG_PASSWORD",
        "AUTHENTICATION_FAILED",
        "SET_NON_GRANTED_ROLE",
        "ACCESS_DENIED",
    ),
    404: (
        "UNKNOWN_TABLE",
        "UNKNOWN_FUNCTION",
        "UNKNOWN_IDENTIFIER",
        "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE",
        "UNKNOWN_SETTING",
        "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION",
        "UNKNOWN_FORMAT",
        "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY",
        "UNKNOWN_ROLE",
    ),
    408: ("TIMEOUT_EXCEEDED",),
    411: ("HTTP_LENGTH_REQUIRED",),
    413: ("QUERY_IS_TOO_LARGE",),
    415: ("UNSUPPORTED_MEDIA_TYPE",),
    501: ("NOT_IMPLEMENTED",),
    503: ("SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"),
}
STATUS_BY_ERROR = {name: status for status, names in _STATUS_GROUPS.items() for name in names}

# Content-Encoding names ClickHouse accepts (IO/CompressionMethod.cpp) that this front cannot
# decode with the standard library; they get a 415 rather than ClickHouse's "unknown method".
_KNOWN_BUT_UNSUPPORTED_ENCODINGS = frozenset({"br", "brotli", "lz4", "snappy", "zstd", "zst"})

# Things that are not SQL code, so that a FORMAT inside a string or a comment is not mistaken for
# the query's FORMAT clause.
_NOT_CODE = re.compile(
    r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|#[^\n]*|/\*.*?\*/",
    re.DOTALL,
)
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_LATER_STATEMENT = re.compile(r";\s*[^\s;]")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ERROR_CODE = re.compile(r"Code: (\d+)\.")


class ClickHouseError(Exception):
    """An error to send the way ClickHouse does: its text, its code header and its HTTP status."""

    def __init__(self, code: int, name: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.name = name
        self.text = text

    @property
    def status(self) -> int:
        return STATUS_BY_ERROR.get(self.name, 500)


@dataclass
class QueryRequest:
    """One HTTP request, reduced to what the engine needs."""

    sql: bytes
    readonly: bool = False
    database: str = ""
    default_format: str = ""
    settings: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class QueryResult:
    body: bytes
    output_format: str | None  # None when the statement produces no result set (DDL, INSERT)
    summary: dict[str, str]


def is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """The chDB engine behind a lock: one statement at a time, each on a fresh connection.

    A fresh connection per request gives every request its own current database and settings,
    as ClickHouse's HTTP interface does without `session_id`. The long-lived anchor connection
    keeps the engine (and its data directory) open between requests, because chDB shuts the
    engine down when its last connection closes.
    """

    def __init__(self, data_dir: Path) -> None:
        self._path = str(data_dir.resolve())
        self._lock = threading.Lock()
        self._anchor: Any = _chdb.connect(self._path)
        if not hasattr(self._anchor, "classify_query"):
            raise SystemExit(
                "chdb_http needs chdb-core >= 26.9 (see tests/support/requirements.txt)"
            )
        self.version = self._scalar("SELECT version()")
        self.timezone = self._scalar("SELECT timezone()")
        # chDB has no system.error_codes; errorCodeToName() gives the same table.
        rows = self._scalar(
            "SELECT arrayStringConcat(groupArray(concat(toString(number), ' ', n)), '\\n') "
            "FROM (SELECT number, errorCodeToName(number) AS n FROM numbers(10000) WHERE n != '')"
        )
        self.error_names = {int(code): name for code, name in (r.split() for r in rows.split("\n"))}
        self.error_codes = {name: code for code, name in self.error_names.items()}
        formats = self._scalar(
            "SELECT arrayStringConcat(groupArray(name), ' ') FROM system.formats WHERE is_output"
        )
        self.output_formats = {name.lower(): name for name in formats.split()}
        # ClickHouse 25.10+ compresses responses by default when the client accepts it.
        self.http_compression_default = is_true(
            self._scalar("SELECT toString(getSetting('enable_http_compression'))")
        )

    def _scalar(self, sql: str) -> str:
        return bytes(self._anchor.query(sql, "TSVRaw").bytes()).decode().strip()

    def close(self) -> None:
        with self._lock:
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None

    def error(self, name: str, message: str) -> ClickHouseError:
        """An error worded like ClickHouse's own, for the checks the front makes itself."""
        code = self.error_codes.get(name, 1001)
        return ClickHouseError(code, name, f"Code: {code}. DB::Exception: {message}. ({name})")

    def _engine_error(self, exc: Exception) -> ClickHouseError:
        text = str(exc).strip()
        match = _ERROR_CODE.match(text)
        if match is None:
            return self.error("STD_EXCEPTION", f"chDB: {text}")
        code = int(match.group(1))
        return ClickHouseError(code, self.error_names.get(code, "UNKNOWN_EXCEPTION"), text)

    def run(self, request: QueryRequest) -> QueryResult:
        if not request.sql.strip():
            raise self.error("SYNTAX_ERROR", "Empty query")
        with self._lock:
            conn = _chdb.connect(self._path)
            try:
                return self._run_on(conn, request)
            except RuntimeError as exc:
                raise self._engine_error(exc) from None
            finally:
                conn.close()

    def _run_on(self, conn: Any, request: QueryRequest) -> QueryResult:
        # Same order as ClickHouse: GET is read-only first, then the database, then the settings
        # (applied with SET so that the engine validates names and values exactly as a server).
        if request.readonly:
            conn.query("SET readonly = 2", "TSV")
        if request.database:
            conn.query(f"USE {quote_identifier(request.database)}", "TSV")
        for name, value in request.settings:
            if not _SETTING_NAME.fullmatch(name):
                raise self.error("UNKNOWN_SETTING", f"Unknown setting '{name}'")
            conn.query(f"SET {name} = {quote_string(value)}", "TSV")

        # clickhouse-local (which chDB is) runs every statement of a multi-statement text, while
        # ClickHouse's HTTP interface refuses the whole request before running any of them. The
        # engine's parser counts the statements; when the text does not parse at all it counts
        # none, and chDB would still run the statements before the broken one, so then any `;`
        # followed by more code refuses the request too.
        info = conn.classify_query(request.sql)
        count = info["statement_count"]
        if count > 1 or (count == 0 and _LATER_STATEMENT.search(self._code_only(request.sql))):
            raise self.error("SYNTAX_ERROR", "Syntax error (Multi-statements are not allowed)")

        default_format = request.default_format or DEFAULT_OUTPUT_FORMAT
        started = time.perf_counter_ns()
        result = conn.query(request.sql, default_format, params=request.params)
        elapsed_ns = time.perf_counter_ns() - started
        body = bytes(result.bytes())

        output_format: str | None = None
        if info["query_class"].name == "READ_ONLY" or body:
            output_format = self.output_format(request.sql, default_format)
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "total_rows_to_read": str(result.rows_read()),
            "result_bytes": str(len(body)),
            "elapsed_ns": str(elapsed_ns),
        }
        return QueryResult(body, output_format, summary)

    @staticmethod
    def _code_only(sql: bytes) -> str:
        """The query without its strings, quoted names and comments."""
        return _NOT_CODE.sub(" ", sql.decode("utf-8", errors="replace"))

    def output_format(self, sql: bytes, default_format: str) -> str:
        """The format the engine answered in: the last FORMAT clause naming an output format."""
        for match in reversed(list(_FORMAT_CLAUSE.finditer(self._code_only(sql)))):
            name = self.output_formats.get(match.group(1).lower())
            if name is not None:
                return name
        return self.output_formats.get(default_format.lower(), default_format)


def content_type(output_format: str) -> str:
    """Content-Type ClickHouse sends for an output format (IOutputFormat::getContentType)."""
    name = output_format.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        header = "present" if "withnames" in name else "absent"
        return f"text/csv; charset=UTF-8; header={header}"
    if name in ("jsoneachrow", "jsonlines", "jsonl", "ndjson"):
        return "application/x-ndjson; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    binary = ("native", "rowbinary", "parquet", "arrow", "orc", "avro", "msgpack", "protobuf")
    if name.startswith(binary) or name in ("capnproto", "bsoneachrow", "npy"):
        return "application/octet-stream"
    return TEXT_PLAIN


def decode_body(body: bytes, encoding: str, engine: Engine) -> bytes:
    """Undo the request's Content-Encoding, as ClickHouse does for every request body."""
    method = encoding.strip().lower()
    try:
        if method in ("", "identity", "none", "auto"):
            return body
        if method in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if method == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # Some clients send raw deflate without the zlib wrapper.
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if method in ("xz", "lzma"):
            return lzma.decompress(body)
        if method == "bz2":
            return bz2.decompress(body)
        if method in ("zstd", "zst") and zstandard is not None:
            reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
            return reader.read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        # zstandard.ZstdError is a ValueError subclass.
        raise engine.error(
            "CANNOT_DECOMPRESS", f"Cannot decode the {method} request body: {exc}"
        ) from None
    if method in _KNOWN_BUT_UNSUPPORTED_ENCODINGS:
        hint = " (pip install zstandard)" if method.startswith("zst") else ""
        raise engine.error(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Encoding '{method}' is supported by ClickHouse but not by this test front"
            f"{hint}; use gzip, deflate, xz or bz2",
        )
    raise engine.error(
        "NOT_IMPLEMENTED",
        f"Unknown compression method '{method}'. Only 'auto', 'none', 'gzip', 'deflate', 'br', "
        "'xz', 'zstd', 'lz4', 'bz2', 'snappy' are supported as compression methods",
    )


def encode_response(body: bytes, accept_encoding: str, level: int) -> tuple[bytes, str]:
    """Compress a response body for the client, preferring what ClickHouse prefers."""
    # Same substring test and order as chooseHTTPCompressionMethod, restricted to what Python
    # produces without extra packages (br, lz4 and snappy are skipped: the body goes uncompressed).
    accepted = accept_encoding.lower()
    if "zstd" in accepted and zstandard is not None:
        return zstandard.ZstdCompressor().compress(body), "zstd"
    if "gzip" in accepted:
        return gzip.compress(body, compresslevel=level, mtime=0), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body, level), "deflate"
    if "xz" in accepted:
        return lzma.compress(body), "xz"
    if "bz2" in accepted:
        return bz2.compress(body), "bz2"
    return body, ""


class ClickHouseHandler(BaseHTTPRequestHandler):
    """Routes like ClickHouse's default handlers: /ping, GET / and the dynamic query handler."""

    protocol_version = "HTTP/1.1"  # keep-alive, as reqwest's connection pool expects
    # Headers and body go out as separate writes; with Nagle on, the second waits for the client's
    # delayed ACK and every GET costs ~40 ms.
    disable_nagle_algorithm = True
    server_version = "chdb-http"
    # An idle keep-alive connection is dropped after this long. It exceeds reqwest's 90 s pool
    # idle timeout so that a pooled connection is never closed under a client about to reuse it.
    timeout = 300
    engine: Engine
    verbose = False

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        self._dispatch(head=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            super().log_message(format, *args)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        query_id = str(uuid.uuid4())
        try:
            body = self._read_body()
            if url.path in ("/ping", "/replicas_status") or (
                url.path == "/" and not url.query and self.command != "POST" and not body
            ):
                self._send(200, OK_BODY, {"Content-Type": TEXT_PLAIN}, head)
                return
            if url.path not in ("", "/", "/query"):
                text = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n"
                self._send(404, text.encode(), {"Content-Type": TEXT_PLAIN}, head)
                return
            request, query_id, accept = self._parse_query_request(url.query, body)
            result = self.engine.run(request)
        except ClickHouseError as exc:
            self._send_error(exc, query_id, head)
            return
        except Exception as exc:  # A bug in the front: still answer like a server would.
            print(f"chdb_http: internal error: {exc!r}", file=sys.stderr, flush=True)
            error = self.engine.error("STD_EXCEPTION", f"chdb_http internal error: {exc!r}")
            self._send_error(error, query_id, head)
            return

        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
            "Content-Type": TEXT_PLAIN,
        }
        if result.output_format is not None:
            headers["Content-Type"] = content_type(result.output_format)
            headers["X-ClickHouse-Format"] = result.output_format
        payload = result.body
        if accept is not None and payload:
            payload, encoding = encode_response(payload, *accept)
            if encoding:
                headers["Content-Encoding"] = encoding
        self._send(200, payload, headers, head)

    def _parse_query_request(
        self, raw_query: str, body: bytes | None
    ) -> tuple[QueryRequest, str, tuple[str, int] | None]:
        """The request as the engine sees it, its query id, and how to compress the answer."""
        params = parse_qsl(raw_query, keep_blank_values=True)
        first: dict[str, str] = {}
        for key, value in params:
            first.setdefault(key, value)
        query_id = first.get("query_id") or self.headers.get("X-ClickHouse-Query-Id") or ""
        query_id = query_id or str(uuid.uuid4())

        for flag in ("compress", "decompress"):
            if is_true(first.get(flag, "0")):
                raise self.engine.error(
                    "NOT_IMPLEMENTED",
                    f"'{flag}=1' (ClickHouse's native block compression) is not supported by this "
                    "test front; use Content-Encoding / Accept-Encoding instead",
                )
        if body is None and self.command == "POST":
            raise self.engine.error(
                "HTTP_LENGTH_REQUIRED",
                "The Transfer-Encoding is not chunked and there is no Content-Length header for "
                "POST request",
            )
        data = decode_body(body or b"", self.headers.get("Content-Encoding", ""), self.engine)

        # The query is the `query` parameter, a line feed, then the body (DynamicQueryHandler).
        query_param = first.get("query", "").encode()
        request = QueryRequest(
            sql=query_param + b"\n" + data if query_param else data,
            readonly=self.command in ("GET", "HEAD"),
            # Headers win over parameters, as in HTTPHandler::processQuery.
            database=self.headers.get("X-ClickHouse-Database") or first.get("database", ""),
            default_format=self.headers.get("X-ClickHouse-Format")
            or first.get("default_format", ""),
        )
        compression, level = self.engine.http_compression_default, 3
        for key, value in params:
            if key.startswith("param_"):
                request.params.setdefault(key[len("param_") :], value)
            elif key and key not in RESERVED_PARAMS:
                request.settings.append((key, value))
                if key == "enable_http_compression":
                    compression = is_true(value)
                elif key == "http_zlib_compression_level" and value.isdigit():
                    level = min(max(int(value), 1), 9)
        accept_encoding = self.headers.get("Accept-Encoding", "")
        accept = (accept_encoding, level) if compression and accept_encoding else None
        return request, query_id, accept

    def _read_body(self) -> bytes | None:
        """The raw request body, or None when the request has no body framing at all."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def _send_error(self, error: ClickHouseError, query_id: str, head: bool) -> None:
        text = error.text
        if "(version " not in text:
            text += f" (version {self.engine.version})"
        headers = {
            "Content-Type": TEXT_PLAIN,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Exception-Code": str(error.code),
        }
        self._send(error.status, (text + "\n").encode(), headers, head)

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[ClickHouseHandler]) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not the front's problem.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(host: str, port: int, engine: Engine, verbose: bool = False) -> FrontServer:
    handler = type("Handler", (ClickHouseHandler,), {"engine": engine, "verbose": verbose})
    return FrontServer(host, port, handler)


def write_port_file(path: Path, port: int) -> None:
    # Written whole and renamed, so a process polling for the file never reads half of it.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, required=True, help="where chDB keeps its data")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.data_dir)
    server = make_server(args.host, args.port, engine, args.verbose)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on http://{shown_host}:{port}", flush=True)

    def stop(*_: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
