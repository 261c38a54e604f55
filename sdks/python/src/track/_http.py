"""HTTP plumbing shared by the writer (sender, sync) and the read API: client setup, error mapping,
and the retry policy for transient failures."""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from . import _env
from .errors import TrackstackConnectionError, TrackstackError, from_response

__version__ = "0.1.0"
USER_AGENT = f"trackstack-python/{__version__}"
JSON = "application/json"
GZIP_LEVEL = 1  # fast; metric bodies are repetitive enough that level 1 already shrinks them well
#: Smaller bodies go uncompressed: gzip's ~20 bytes of framing and the CPU are not worth it there.
GZIP_MIN_BYTES = 1024

#: Ingest endpoints that answered 415 to a protobuf body (an older server): they get JSON for the
#: rest of the process. Module-level so that every run and ``track sync`` learn it once.
_json_only_ingest: set[str] = set()


def gzip_body(body: bytes, headers: dict[str, str]) -> bytes:
    """Gzips ``body`` (and sets ``Content-Encoding``) when it is large enough to be worth it."""
    if len(body) <= GZIP_MIN_BYTES:
        return body
    # zlib with wbits=31 writes the gzip format in one call and releases the GIL while compressing.
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    headers["Content-Encoding"] = "gzip"
    return z.compress(body) + z.flush()


def dumps(body: Any) -> bytes:
    """Compact JSON; refuses NaN/Infinity so a bare ``NaN`` literal can never reach the server."""
    return json.dumps(body, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


class HttpClient:
    """A thin wrapper over ``httpx.Client`` bound to one server."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _env.url(url)
        self.ingest_url = _env.ingest_url()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        key = _env.api_key(api_key)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.url + "/api/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_json: bytes | None = None,
        content: bytes | Iterable[bytes] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Sends one request; transport failures become :class:`TrackstackConnectionError`.

        HTTP error statuses are returned, not raised: callers decide whether they are transient.
        """
        hdrs = dict(headers or {})
        if json_body is not None:
            raw_json = dumps(json_body)
        if raw_json is not None:
            hdrs["Content-Type"] = JSON
            content = raw_json
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        target = self._target(method, path)
        try:
            return self._client.request(
                method, target, content=content, params=params, headers=hdrs, **kwargs
            )
        except httpx.TransportError as exc:
            raise TrackstackConnectionError(
                f"cannot reach {self.url}: {type(exc).__name__}: {exc}"
            ) from exc

    def _target(self, method: str, path: str) -> str:
        """The write path goes to ``TRACKSTACK_INGEST_URL`` when set; the rest to the server URL."""
        is_upload = path.startswith("/blobs/") and method in ("PUT", "HEAD")
        if self.ingest_url and (path == "/ingest" or is_upload):
            return f"{self.ingest_url}/api/v1{path}"
        return path

    def _ingest_endpoint(self) -> str:
        return self.ingest_url or self.url

    @property
    def protobuf_ingest(self) -> bool:
        """Whether ingest batches go out as protobuf (false once the server refused it)."""
        return self._ingest_endpoint() not in _json_only_ingest

    def refuse_protobuf(self) -> None:
        """Records that the ingest endpoint answered 415 to protobuf: JSON from now on."""
        _json_only_ingest.add(self._ingest_endpoint())

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client.stream(method, path, **kwargs)


def error_of(resp: httpx.Response) -> TrackstackError:
    try:
        body: Any = resp.json()
    except Exception:
        body = resp.text[:500] if resp.content else None
    return from_response(resp.status_code, body)


def raise_for(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        raise error_of(resp)
    return resp


def is_transient_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds to wait per the ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# Outcome kinds.
OK = "ok"
TRANSIENT = "transient"  # worth retrying later: network down, 5xx, 408, 429
PERMANENT = "permanent"  # the server refused the request itself; retrying will not help


@dataclass
class Outcome:
    kind: str
    response: httpx.Response | None = None
    error: TrackstackError | None = None
    #: The server's ``Retry-After`` on the last transient failure: the earliest time worth retrying.
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == OK

    def json(self) -> Any:
        try:
            return self.response.json() if self.response is not None else None
        except Exception:
            return None


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total time ``budget`` in seconds."""

    budget: float = 5.0
    initial: float = 0.1
    maximum: float = 2.0

    def delays(self) -> Iterable[float]:
        delay = self.initial
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.maximum)


def attempt(send: Callable[[], httpx.Response]) -> tuple[Outcome, float | None]:
    """Runs ``send`` once and classifies the result; also returns the server's Retry-After."""
    try:
        resp = send()
    except TrackstackError as exc:
        return Outcome(TRANSIENT, error=exc), None
    if resp.status_code < 400:
        return Outcome(OK, response=resp), None
    err = error_of(resp)
    if is_transient_status(resp.status_code):
        wait = retry_after(resp)
        return Outcome(TRANSIENT, response=resp, error=err, retry_after=wait), wait
    return Outcome(PERMANENT, response=resp, error=err), None


def with_retry(
    send: Callable[[], httpx.Response],
    policy: RetryPolicy,
    *,
    deadline: Callable[[], float | None] = lambda: None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Calls ``send`` until it succeeds, fails permanently, or the retry budget runs out.

    ``deadline`` returns a ``time.monotonic()`` value after which no new attempt starts (the finish
    timeout); ``stop`` interrupts the waits between attempts. A server's ``Retry-After`` (503 when
    saturated, 429) is a lower bound: the backoff keeps growing underneath it, so a server that
    keeps answering ``Retry-After: 0`` is not hammered. When the wait would overrun the budget the
    transient outcome is returned, and the caller spools the request.
    """
    give_up = time.monotonic() + policy.budget
    delays = iter(policy.delays())
    while True:
        outcome, server_wait = attempt(send)
        if outcome.kind != TRANSIENT:
            return outcome
        wait = next(delays)
        if server_wait is not None:
            wait = max(wait, server_wait)
        limit = give_up
        hard = deadline()
        if hard is not None:
            limit = min(limit, hard)
        if time.monotonic() + wait >= limit:
            return outcome
        if stop is not None:
            if stop.wait(wait):
                return outcome
        else:
            time.sleep(wait)
