"""The write requests of one run (create, ingest, patch, artifact) and the spool replay.

Used by the background sender and by ``track sync``, so both send exactly the same requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import _proto, _spool
from ._http import (
    JSON,
    OK,
    PERMANENT,
    TRANSIENT,
    HttpClient,
    Outcome,
    RetryPolicy,
    attempt,
    dumps,
    gzip_body,
    with_retry,
)
from .errors import InvalidArgumentError, TrackstackError

log = logging.getLogger("track")

CHUNK = 1 << 20


class _Abort(Exception):
    """Raised inside a streamed upload body to cancel the request (finish deadline passed)."""


class _FileChanged(Exception):
    """The file grew or shrank between hashing and uploading."""


def _file_chunks(path: Path, size: int, aborted: Callable[[], bool]) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sent += len(chunk)
            if sent > size:
                raise _FileChanged(f"{path} grew after it was hashed")
            if aborted():
                raise _Abort
            yield chunk
    if sent != size:
        raise _FileChanged(f"{path} shrank after it was hashed")


def _q(segment: str) -> str:
    return quote(segment, safe="")


def describe(outcome: Outcome) -> str:
    """A one-line description of a failed request for warnings."""
    err = outcome.error
    if err is None:
        return "unknown error"
    return str(err)


class Uploader:
    """Sends one run's write requests with retries.

    ``deadline`` returns a ``time.monotonic()`` value after which no new attempt starts and streamed
    uploads are cancelled (``None``: no deadline).
    """

    def __init__(
        self,
        client: HttpClient,
        run_id: str,
        policy: RetryPolicy,
        deadline: Callable[[], float | None] = lambda: None,
        request_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.policy = policy
        self.deadline = deadline
        self.timeout = request_timeout

    def _past_deadline(self) -> bool:
        d = self.deadline()
        return d is not None and time.monotonic() >= d

    def _send(self, send: Callable[[], Any]) -> Outcome:
        return with_retry(send, self.policy, deadline=self.deadline)

    def create_run(self, project: str, payload: dict[str, Any]) -> Outcome:
        path = f"/projects/{_q(project)}/runs"
        return self._send(
            lambda: self.client.request("POST", path, json_body=payload, timeout=self.timeout)
        )

    def get_run(self) -> Outcome:
        path = f"/runs/{_q(self.run_id)}"
        return self._send(lambda: self.client.request("GET", path, timeout=self.timeout))

    @property
    def protobuf(self) -> bool:
        """Whether new ingest batches should be encoded as protobuf."""
        return self.client.protobuf_ingest

    def ingest(self, body: bytes, content_type: str = JSON) -> Outcome:
        """Sends one ``POST /ingest`` body of either encoding.

        A protobuf body goes as JSON instead once the server is known to refuse protobuf, and is
        resent as JSON when the server answers ``415``, so version skew never loses a batch.
        """
        if content_type == _proto.CONTENT_TYPE and not self.client.protobuf_ingest:
            return self._post_ingest(_proto.to_json_body(body), JSON)
        out = self._post_ingest(body, content_type)
        if (
            content_type == _proto.CONTENT_TYPE
            and out.response is not None
            and out.response.status_code == 415
        ):
            log.info("the trackstack server does not take protobuf ingest; sending JSON instead")
            self.client.refuse_protobuf()
            return self._post_ingest(_proto.to_json_body(body), JSON)
        return out

    def _post_ingest(self, body: bytes, content_type: str) -> Outcome:
        headers = {"Content-Type": content_type}
        content = gzip_body(body, headers)  # once, not on every retry
        return self._send(
            lambda: self.client.request(
                "POST", "/ingest", content=content, headers=headers, timeout=self.timeout
            )
        )

    def patch(self, body: bytes) -> Outcome:
        path = f"/runs/{_q(self.run_id)}"
        return self._send(
            lambda: self.client.request("PATCH", path, raw_json=body, timeout=self.timeout)
        )

    def post_artifact(self, body: bytes) -> Outcome:
        path = f"/runs/{_q(self.run_id)}/artifacts"
        return self._send(
            lambda: self.client.request("POST", path, raw_json=body, timeout=self.timeout)
        )

    def ensure_blob(self, digest: str, size: int, source: Path | None) -> Outcome:
        """Uploads a blob unless the server already has it."""
        head = self._send(
            lambda: self.client.request("HEAD", f"/blobs/{digest}", timeout=self.timeout)
        )
        if head.ok:
            return head
        if head.kind == TRANSIENT or head.response is None or head.response.status_code != 404:
            return head
        if source is None or not source.is_file():
            return Outcome(
                PERMANENT,
                error=TrackstackError(f"the file for blob {digest} is gone; cannot upload it"),
            )

        def put() -> Any:
            return self.client.request(
                "PUT",
                f"/blobs/{digest}",
                content=_file_chunks(source, size, self._past_deadline),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )

        try:
            return self._send(put)
        except _Abort:
            return Outcome(TRANSIENT, error=TrackstackError("upload cancelled at the deadline"))
        except _FileChanged as exc:
            return Outcome(
                PERMANENT,
                error=InvalidArgumentError(
                    f"{exc}; files must not change until the run has uploaded them"
                ),
            )
        except OSError as exc:
            return Outcome(PERMANENT, error=TrackstackError(f"cannot read {source}: {exc}"))

    def upload_artifact(
        self, body: dict[str, Any], source: Callable[[str], Path | None]
    ) -> Outcome:
        """Uploads the blobs an artifact manifest references, then posts the manifest."""
        seen: set[str] = set()
        for f in body["files"]:
            if f["digest"] in seen:
                continue
            seen.add(f["digest"])
            out = self.ensure_blob(f["digest"], int(f["size"]), source(f["digest"]))
            if not out.ok:
                return out
        return self.post_artifact(dumps(body))


@dataclass
class ReplayResult:
    """What one pass over a spool achieved."""

    sent: int = 0
    accepted_points: int = 0
    rejected: list[str] = field(default_factory=list)
    remaining: int = 0
    #: Why the replay stopped early (a transient failure, or a create the server refused).
    error: str | None = None
    created: bool = False
    #: The server's ``Retry-After`` when it stopped the replay: no new attempt before that.
    retry_after: float | None = None


def replay(spool: _spool.Spool, uploader: Uploader) -> ReplayResult:
    """Sends a spool's entries in order, deleting each once acknowledged.

    Stops at the first transient failure so that nothing is sent out of order; an entry the server
    refuses permanently is moved to ``rejected/`` and the replay goes on.
    """
    result = ReplayResult()
    meta = spool.read_meta()
    if not meta.get("created"):
        out = uploader.create_run(meta["project"], meta["create"])
        if not out.ok:
            result.error = f"creating run {meta['create'].get('id')}: {describe(out)}"
            result.retry_after = out.retry_after
            result.remaining = spool.pending_count()
            return result
        spool.update_meta(created=True)
    result.created = True
    entries = spool.entries()
    for i, entry in enumerate(entries):
        if uploader._past_deadline():
            result.error = "deadline reached"
            result.remaining = len(entries) - i
            return result
        try:
            if entry.kind == _spool.INGEST:
                out = uploader.ingest(entry.body(), entry.content_type)
            elif entry.kind == _spool.PATCH:
                out = uploader.patch(entry.body())
            else:
                out = uploader.upload_artifact(entry.json(), _blob_source(spool))
        except (OSError, ValueError) as exc:  # unreadable or corrupt entry
            out = Outcome(PERMANENT, error=TrackstackError(f"unreadable spool entry: {exc}"))
        if out.kind == OK:
            if entry.kind == _spool.INGEST:
                body = out.json()
                if isinstance(body, dict) and isinstance(body.get("accepted_points"), int):
                    result.accepted_points += body["accepted_points"]
            spool.done(entry)
            result.sent += 1
        elif out.kind == PERMANENT:
            dest = spool.reject(entry)
            result.rejected.append(f"{entry.kind} request {dest.name} rejected: {describe(out)}")
        else:
            result.error = describe(out)
            result.retry_after = out.retry_after
            result.remaining = len(entries) - i
            return result
    return result


def _blob_source(spool: _spool.Spool) -> Callable[[str], Path | None]:
    def source(digest: str) -> Path | None:
        p = spool.blob_path(digest)
        return p if p.is_file() else None

    return source


__all__ = ["ReplayResult", "Uploader", "attempt", "replay"]
