"""The in-memory queue between ``run.log`` and the network, and the thread that drains it.

``run.log`` only appends a row to :class:`Buffer` under a lock. The :class:`Sender` thread takes
everything queued at least every ``flush_interval``, turns it into ingest request bodies and sends
them in order. A request that still fails after the retry budget goes to the on-disk spool, and so
does every later one until the spool has been replayed: the server applies config, summary and tag
updates in arrival order, so sending a newer batch before an older spooled one could let the older
value win.
"""

from __future__ import annotations

import json
import logging
import operator
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from . import _proto, _spool
from ._http import JSON, OK, PERMANENT, HttpClient, Outcome, RetryPolicy, dumps
from ._settings import Settings
from ._uploader import ReplayResult, Uploader, describe, replay
from .errors import TrackstackError

log = logging.getLogger("track")

#: Longest a server's ``Retry-After`` may postpone the next spool replay, in seconds.
MAX_REPLAY_DELAY = 60.0

Row = tuple[int, int, dict[str, float]]  # (step, time_ms, {key: value})


@dataclass
class IngestItem:
    """Metrics and run updates that go into one or more ``POST /ingest`` requests."""

    rows: list[Row] = field(default_factory=list)
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    tags: list[str] | None = None
    state: str | None = None
    exit_code: int | None = None

    def empty(self) -> bool:
        return (
            not self.rows
            and self.config is None
            and self.summary is None
            and (self.tags is None and self.state is None)
        )


@dataclass
class ArtifactItem:
    """A ``log_artifact`` call; files are hashed and read on the sender thread."""

    name: str
    type: str
    aliases: list[str]
    metadata: dict[str, Any]
    files: list[tuple[str, Path]]  # (path inside the artifact, file on disk)

    def request(self, files: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "type": self.type, "files": files}
        if self.aliases:
            body["aliases"] = self.aliases
        if self.metadata:
            body["metadata"] = self.metadata
        return body


@dataclass
class PatchItem:
    """Run fields that only ``PATCH /runs/{id}`` changes (name, notes, …)."""

    body: dict[str, Any]


Item = IngestItem | ArtifactItem | PatchItem


_NON_FINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}
_float_repr = float.__repr__
#: Body size at which a chunk is cut even below ``max_points`` (the server takes 32 MiB).
MAX_BODY_BYTES = 16 << 20
#: Protobuf bytes per point (key index, step, value, time) and, at most, per distinct key (tag,
#: length, and the key's at most 256 bytes).
_POINT_BYTES = 4 + 8 + 8 + 8
_KEY_BYTES = 1 + 2 + 256
_step_of = operator.itemgetter(0)
_time_of = operator.itemgetter(1)
_row_of = operator.itemgetter(2)


def merge_steps(rows: list[Row]) -> list[Row]:
    """One row per step, in order of each step's first row.

    A key written twice at one step is sent once with its last value, at the last row's time
    (W&B's pending-row semantics). Steps rarely repeat, so that is checked in C first.
    """
    if len(set(map(_step_of, rows))) == len(rows):
        return rows
    merged: dict[int, tuple[int, dict[str, float]]] = {}
    for step, t, values in rows:
        prev = merged.get(step)
        merged[step] = (t, values) if prev is None else (t, {**prev[1], **values})
    return [(step, t, values) for step, (t, values) in merged.items()]


def encode_points(rows: list[Row], max_points: int) -> list[list[str]]:
    """JSON-encodes the points of ``rows`` as chunks of ``{"key","step","value","time_ms"}`` texts.

    Rows are merged by step first (:func:`merge_steps`). The text is built by hand because it is
    ~2x faster than ``json.dumps`` on dicts and this runs for every point; finite floats use
    ``float.__repr__``, exactly what ``json.dumps`` emits, and NaN/infinities become the API's
    strings so no bare ``NaN`` literal is ever produced.
    """
    keys: dict[str, str] = {}
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = 0
    for step, t, values in merge_steps(rows):
        mid = f',"step":{step},"value":'
        tail = f',"time_ms":{t}}}'
        for k, v in values.items():
            head = keys.get(k)
            if head is None:
                head = keys[k] = '{"key":' + json.dumps(k)
            # `v - v` is 0.0 exactly for finite floats.
            text = head + mid + (_float_repr(v) if v - v == 0.0 else _NON_FINITE[str(v)]) + tail
            if len(chunk) >= max_points or size + len(text) > MAX_BODY_BYTES:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(text)
            size += len(text) + 1
    if chunk:
        chunks.append(chunk)
    return chunks


class _KeyIndex(dict[str, int]):
    """Numbers keys in order of first use: looking up a new key gives it the next number."""

    def __missing__(self, key: str) -> int:
        n = self[key] = len(self)
        return n


#: One chunk of points as protobuf columns: (keys, key_index, steps, values, times_ms).
Columns = tuple[list[str], list[int], list[int], list[float], list[int]]


def point_columns(rows: list[Row], max_points: int) -> list[Columns]:
    """The points of ``rows`` (merged by step, see :func:`merge_steps`) as protobuf columns, cut
    into chunks of at most ``max_points`` points and about ``MAX_BODY_BYTES``.

    The columns are built by chained C iterators, with no Python bytecode per row or point: this
    runs for every point on the sender thread, which shares the GIL with the training loop.
    """
    rows = merge_steps(rows)
    index = _KeyIndex()
    dicts = list(map(_row_of, rows))
    key_index = list(map(index.__getitem__, chain.from_iterable(dicts)))
    values = list(chain.from_iterable(map(dict.values, dicts)))
    counts = list(map(len, dicts))
    if counts.count(1) == len(counts):  # one point per row: no repetition needed
        steps = list(map(_step_of, rows))
        times = list(map(_time_of, rows))
    else:
        steps = list(chain.from_iterable(map(repeat, map(_step_of, rows), counts)))
        times = list(chain.from_iterable(map(repeat, map(_time_of, rows), counts)))
    keys = list(index)
    total = len(key_index)
    per_chunk = max(1, max_points)
    if per_chunk * _POINT_BYTES + len(keys) * _KEY_BYTES > MAX_BODY_BYTES:
        # Many long keys: bound each chunk by its worst case instead (every point a new key).
        per_chunk = min(per_chunk, MAX_BODY_BYTES // (_POINT_BYTES + _KEY_BYTES))
    if total <= per_chunk:
        return [(keys, key_index, steps, values, times)] if total else []
    chunks: list[Columns] = []
    for lo in range(0, total, per_chunk):
        hi = lo + per_chunk
        part = key_index[lo:hi]
        # Each request carries only its own keys, renumbered.
        used = list(dict.fromkeys(part))
        renumber = {old: new for new, old in enumerate(used)}
        chunks.append(
            (
                [keys[i] for i in used],
                list(map(renumber.__getitem__, part)),
                steps[lo:hi],
                values[lo:hi],
                times[lo:hi],
            )
        )
    return chunks


def ingest_batches(run_id: str, item: IngestItem, max_points: int) -> list[bytes]:
    """Encodes an :class:`IngestItem` as protobuf ``IngestBatch`` bodies (see
    :func:`point_columns`), split and ordered like :func:`ingest_bodies`.
    """
    chunks = point_columns(item.rows, max_points)
    if not chunks:
        chunks = [([], [], [], [], [])]
    last = len(chunks) - 1
    bodies = []
    for i, (keys, key_index, steps, values, times) in enumerate(chunks):
        first = i == 0
        bodies.append(
            _proto.encode_batch(
                run_id,
                keys,
                key_index,
                steps,
                values,
                times,
                config_json=_json_text(item.config) if first else None,
                summary_json=_json_text(item.summary) if first else None,
                tags=item.tags if first else None,
                state=item.state if i == last else None,
                exit_code=item.exit_code if i == last and item.state is not None else None,
            )
        )
    return bodies


def _json_text(value: dict[str, Any] | None) -> str | None:
    return None if value is None else dumps(value).decode()


def ingest_bodies(run_id: str, item: IngestItem, max_points: int) -> list[bytes]:
    """Encodes an :class:`IngestItem` as JSON ``POST /ingest`` bodies (see :func:`encode_points`).

    Config, summary and tags ride in the first body and the run state in the last, after every
    point, so a finished run never receives points afterwards.
    """
    chunks: list[list[str]] = encode_points(item.rows, max_points) or [[]]
    head = dumps({"run_id": run_id})[:-1].decode()
    bodies = []
    for i, chunk in enumerate(chunks):
        extra: dict[str, Any] = {}
        if i == 0:
            if item.config is not None:
                extra["config"] = item.config
            if item.summary is not None:
                extra["summary"] = item.summary
            if item.tags is not None:
                extra["tags"] = item.tags
        if i == len(chunks) - 1 and item.state is not None:
            extra["state"] = item.state
            if item.exit_code is not None:
                extra["exit_code"] = item.exit_code
        parts = [head]
        if chunk:
            parts.append(',"metrics":[' + ",".join(chunk) + "]")
        if extra:
            parts.append("," + dumps(extra).decode()[1:-1])
        parts.append("}")
        bodies.append("".join(parts).encode())
    return bodies


class Latest:
    """Each key's (step, value) at its highest logged step: the local view of the summary."""

    def __init__(self) -> None:
        self.step: dict[str, int] = {}
        self.value: dict[str, float] = {}
        self.top = -1  # highest step folded so far

    def copy(self) -> Latest:
        other = Latest()
        other.step, other.value, other.top = dict(self.step), dict(self.value), self.top
        return other

    def fold(self, rows: list[Row]) -> None:
        step_of, value_of = self.step, self.value
        if rows and rows[0][0] >= self.top:
            steps = list(map(_step_of, rows))
            if all(map(operator.le, steps, steps[1:])):
                # Steps going up, the usual case: each key's latest value is in the last row that
                # has it. Scanning backwards touches each key once instead of once per row (this
                # runs on the sender thread for every point, sharing the GIL with the caller).
                found: dict[str, float] = {}
                found_step: dict[str, int] = {}
                for step, _t, values in reversed(rows):
                    if found.keys() >= values.keys():
                        continue
                    for k, v in values.items():
                        if k not in found:
                            found[k] = v
                            found_step[k] = step
                value_of.update(found)
                step_of.update(found_step)
                self.top = steps[-1]
                return
        for step, _t, values in rows:
            if step >= self.top:
                # The usual case, steps going up: every key of the row wins, so update in C.
                self.top = step
                value_of.update(values)
                step_of.update(dict.fromkeys(values, step))
                continue
            for k, v in values.items():
                prev = step_of.get(k)
                if prev is None or step >= prev:
                    step_of[k] = step
                    value_of[k] = v

    def seed(self, steps: dict[str, int], values: dict[str, float]) -> None:
        self.step.update(steps)
        self.value.update(values)
        self.top = max([self.top, *steps.values()])


class Buffer:
    """What the run has logged but the sender has not taken yet; ``lock`` guards every field."""

    def __init__(self, max_points: int, wake: threading.Event, discard: bool = False) -> None:
        self.lock = threading.Lock()
        self.max_points = max_points
        self.wake = wake
        self.discard = discard  # disabled mode: keep summaries, drop everything else
        self.rows: list[Row] = []
        self.npoints = 0
        self.config: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.tags: list[str] | None = None
        self.ops: list[Item] = []
        # Summary bookkeeping: rows the sender took but has not folded yet stay visible to readers.
        self.summary_lock = threading.Lock()
        self.latest = Latest()
        self.inflight: list[list[Row]] = []

    # Called with `lock` held.
    def _cut(self) -> IngestItem | None:
        item = IngestItem(self.rows, self.config, self.summary, self.tags)
        if item.empty():
            return None
        self.rows, self.npoints = [], 0
        self.config = self.summary = self.tags = None
        return item

    def add_row(self, row: Row) -> None:
        """Appends a row; the caller holds ``lock``. ``Run.log`` inlines the non-discard branch:
        keep the two in step."""
        if self.discard:
            self.latest.fold([row])
            return
        self.rows.append(row)
        self.npoints += len(row[2])
        if self.npoints >= self.max_points:
            self.wake.set()

    def update_config(self, changes: dict[str, Any]) -> None:
        with self.lock:
            if self.config is None:
                self.config = {}
            self.config.update(changes)

    def update_summary(self, changes: dict[str, Any]) -> None:
        with self.lock:
            if self.summary is None:
                self.summary = {}
            self.summary.update(changes)

    def set_tags(self, tags: list[str]) -> None:
        with self.lock:
            self.tags = list(tags)

    def push(self, item: Item) -> None:
        """Queues a non-metric item after everything logged so far."""
        if self.discard:
            return
        with self.lock:
            cut = self._cut()
            if cut is not None:
                self.ops.append(cut)
            self.ops.append(item)
        self.wake.set()

    def take(self) -> list[Item]:
        """Removes and returns everything queued, oldest first (called by the sender)."""
        with self.lock:
            items = self.ops
            self.ops = []
            cut = self._cut()
            if cut is not None:
                items.append(cut)
            rows = [it.rows for it in items if isinstance(it, IngestItem) and it.rows]
            self.inflight.extend(rows)
        if rows:
            with self.summary_lock:
                for r in rows:
                    self.latest.fold(r)
                with self.lock:
                    self.inflight = [r for r in self.inflight if all(r is not x for x in rows)]
        return items

    def logged_values(self) -> dict[str, float]:
        """Each key's value at its highest logged step, including rows not sent yet."""
        with self.summary_lock:
            with self.lock:
                pending = [
                    *self.inflight,
                    *(it.rows for it in self.ops if isinstance(it, IngestItem)),
                    self.rows,
                ]
                latest = self.latest.copy()
            for rows in pending:
                latest.fold(rows)
        return latest.value

    def seed_logged(self, steps: dict[str, int], values: dict[str, float]) -> None:
        with self.summary_lock:
            self.latest.seed(steps, values)


@dataclass
class SenderStats:
    sent_requests: int = 0
    accepted_points: int = 0
    rejected: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    spooled_entries: int = 0


class Sender:
    """The background thread of one run.

    ``client`` is ``None`` in offline mode: everything goes to the spool. ``spooling`` starts true
    when ``track.init`` could not reach the server.
    """

    def __init__(
        self,
        *,
        run_id: str,
        buffer: Buffer,
        wake: threading.Event,
        client: HttpClient | None,
        open_spool: Callable[[], _spool.Spool],
        settings: Settings,
        warn: Callable[[str], None],
        spooling: bool = False,
        on_spool_close: Callable[[_spool.Spool], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.buffer = buffer
        self.wake = wake
        self.client = client
        self._open_spool = open_spool
        self._spool: _spool.Spool | None = None
        self.settings = settings
        self.warn = warn
        self.spooling = spooling or client is None
        self.on_spool_close = on_spool_close
        self.stats = SenderStats()
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._next_replay = 0.0
        self._last_contact = time.monotonic()
        self.uploader = (
            Uploader(client, run_id, RetryPolicy(budget=settings.retry_budget), self.deadline)
            if client is not None
            else None
        )
        self._thread = threading.Thread(
            target=self._main, name=f"trackstack-sender-{run_id}", daemon=True
        )

    # -- control (caller's thread) --------------------------------------------------------------

    def start(self) -> None:
        if self.spooling:
            try:
                self.spool()  # make the spool (with the create request) exist from the start
            except OSError as exc:
                self.warn(f"cannot create the spool: {exc}")
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Drains the queue and stops the thread; returns False if it did not stop in time."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self.wake.set()
        # The deadline is checked between requests and between upload chunks; the margin covers one
        # request that started just before it.
        self._thread.join(timeout + self.settings.http_timeout + 5)
        return not self._thread.is_alive()

    def deadline(self) -> float | None:
        return self._deadline

    @property
    def spool_path(self) -> Path | None:
        return self._spool.path if self._spool is not None else None

    # -- the thread ---------------------------------------------------------------------------

    def spool(self) -> _spool.Spool:
        if self._spool is None:
            self._spool = self._open_spool()
        return self._spool

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _interval(self) -> float:
        if self.spooling:
            return self.settings.spool_flush_interval
        return self.settings.flush_interval

    def _main(self) -> None:
        try:
            while True:
                closing = self._closing.is_set()
                if not closing:
                    self.wake.wait(self._interval())
                    self.wake.clear()
                    closing = self._closing.is_set()
                for item in self.buffer.take():
                    self._handle(item)
                if self.spooling and self.uploader is not None:
                    now = time.monotonic()
                    if closing or now >= self._next_replay:
                        self._next_replay = self._replay_time(self._replay(final=closing))
                elif not closing and self.uploader is not None:
                    self._heartbeat()
                if closing:
                    break
        except Exception as exc:  # a bug here must not take the training loop down
            self.warn(f"trackstack sender thread crashed: {type(exc).__name__}: {exc}")
            self.stats.lost.append(f"sender crashed: {exc}")
        finally:
            self._close_spool()

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_contact < self.settings.heartbeat_interval:
            return
        self._send_ingest(IngestItem())

    def _send_ingest(self, item: IngestItem) -> None:
        content_type, bodies = JSON, None
        if self.uploader is None or self.uploader.protobuf:
            try:
                bodies = ingest_batches(self.run_id, item, self.settings.max_batch_points)
                content_type = _proto.CONTENT_TYPE
            except (ValueError, OverflowError, struct.error):
                # Something protobuf cannot carry (an exit code beyond int32): JSON takes anything,
                # and the server judges it as it always has.
                bodies = None
        if bodies is None:
            bodies = ingest_bodies(self.run_id, item, self.settings.max_batch_points)
        for body in bodies:
            self._send_or_spool(_spool.INGEST, body, content_type)

    def _handle(self, item: Item) -> None:
        try:
            if isinstance(item, IngestItem):
                self._send_ingest(item)
            elif isinstance(item, PatchItem):
                self._send_or_spool(_spool.PATCH, dumps(item.body))
            else:
                self._handle_artifact(item)
        except Exception as exc:
            self.warn(f"trackstack could not process a {type(item).__name__}: {exc}")
            self.stats.lost.append(f"{type(item).__name__}: {exc}")

    def _direct(self) -> bool:
        return not self.spooling and self.uploader is not None and not self._past_deadline()

    def _send_or_spool(self, kind: str, body: bytes, content_type: str = JSON) -> None:
        if self._direct():
            assert self.uploader is not None
            if kind == _spool.INGEST:
                out = self.uploader.ingest(body, content_type)
            else:
                out = self.uploader.patch(body)
            if self._settle(kind, out):
                return
        self._append(kind, body, content_type)

    def _settle(self, kind: str, out: Outcome) -> bool:
        """Records a sent request's outcome; False means it must go to the spool."""
        if out.kind == OK:
            self._last_contact = time.monotonic()
            self.stats.sent_requests += 1
            body = out.json()
            if isinstance(body, dict) and isinstance(body.get("accepted_points"), int):
                self.stats.accepted_points += body["accepted_points"]
            return True
        if out.kind == PERMANENT:
            msg = f"the server rejected an {kind} request, which is dropped: {describe(out)}"
            self.warn(msg)
            self.stats.rejected.append(msg)
            return True
        self._start_spooling(describe(out), out.retry_after)
        return False

    def _start_spooling(self, why: str, retry_after: float | None) -> None:
        if not self.spooling:
            self.spooling = True
            self._next_replay = self._replay_time(retry_after)
            self.warn(
                f"trackstack server unreachable ({why}); spooling to disk and retrying in the "
                "background"
            )

    def _replay_time(self, retry_after: float | None) -> float:
        # A saturated server's Retry-After (503) pushes the next replay back, within reason: a
        # bogus header must not park the spool for hours.
        wait = min(retry_after or 0.0, MAX_REPLAY_DELAY)
        return time.monotonic() + max(self.settings.replay_interval, wait)

    def _append(self, kind: str, body: bytes, content_type: str = JSON) -> None:
        try:
            self.spool().append(kind, body, content_type)
        except OSError as exc:
            msg = f"could not write the spool ({exc}); a {kind} request is lost"
            self.warn(msg)
            self.stats.lost.append(msg)

    def _handle_artifact(self, item: ArtifactItem) -> None:
        if self._direct():
            assert self.uploader is not None
            files, sources, problem = [], {}, None
            for rel, path in item.files:
                try:
                    digest, size = _spool.hash_file(path)
                except OSError as exc:
                    problem = f"cannot read {path}: {exc}"
                    break
                files.append({"path": rel, "digest": digest, "size": size})
                sources[digest] = path
            if problem is not None:
                self._artifact_failed(item, problem)
                return
            body = item.request(files)
            out = self.uploader.upload_artifact(body, sources.get)
            if out.kind == PERMANENT:
                self._artifact_failed(item, describe(out))
                return
            if self._settle(_spool.ARTIFACT, out):
                return
        self._spool_artifact(item)

    def _spool_artifact(self, item: ArtifactItem) -> None:
        try:
            spool = self.spool()
            files = []
            for rel, path in item.files:
                digest, size = spool.add_blob(path)
                files.append({"path": rel, "digest": digest, "size": size})
            spool.append(_spool.ARTIFACT, dumps(item.request(files)))
        except OSError as exc:
            self._artifact_failed(item, f"could not copy it into the spool: {exc}")

    def _artifact_failed(self, item: ArtifactItem, why: str) -> None:
        msg = f"artifact {item.name!r} was not logged: {why}"
        self.warn(msg)
        self.stats.rejected.append(msg)

    def _replay(self, final: bool) -> float | None:
        """Replays the spool; returns the server's ``Retry-After`` if it stopped the replay."""
        assert self.uploader is not None
        spool = self.spool()
        if not final:
            # One attempt per entry; the next replay comes soon enough.
            self.uploader.policy = RetryPolicy(budget=0.0)
        try:
            result: ReplayResult = replay(spool, self.uploader)
        except (OSError, TrackstackError) as exc:
            result = ReplayResult(error=str(exc), remaining=spool.pending_count())
        finally:
            self.uploader.policy = RetryPolicy(budget=self.settings.retry_budget)
        self.stats.sent_requests += result.sent
        self.stats.accepted_points += result.accepted_points
        for msg in result.rejected:
            self.warn(msg)
            self.stats.rejected.append(msg)
        if result.sent:
            self._last_contact = time.monotonic()
        if result.created and result.error is None and result.remaining == 0:
            self.spooling = False
            if not final:
                log.info("trackstack server reachable again; the spool has been replayed")
        return result.retry_after

    def _close_spool(self) -> None:
        if self._spool is None:
            return
        try:
            if self.on_spool_close is not None:
                self.on_spool_close(self._spool)
            self.stats.spooled_entries = self._spool.pending_count()
        except OSError as exc:
            self.warn(f"could not update the spool at {self._spool.path}: {exc}")
        finally:
            self._spool.unlock()
