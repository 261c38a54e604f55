"""The :class:`Run` object: logging, config, summary, artifacts and finishing."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import _spool, _state
from ._config import Config, Summary
from ._sender import ArtifactItem, Buffer, IngestItem, PatchItem, Sender
from ._settings import Settings
from ._values import (
    NOTES_MAX_BYTES,
    Skip,
    check_name,
    check_tags,
    check_text,
    key_problem,
    sanitize_name,
    to_json_value,
    to_metric_value,
    to_step,
)

_STEP_MAX = (1 << 53) - 1
_time = time.time
#: Distinct warnings kept per run; a script logging a new bad key every step must not grow memory.
_MAX_WARNINGS = 1000


class TrackstackWarning(UserWarning):
    """Problems the SDK reports instead of raising: skipped values, unreachable server, …"""


_PACKAGE_DIR = str(Path(__file__).parent) + os.sep


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside this package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


@dataclass(frozen=True)
class FinishResult:
    """What ``run.finish()`` achieved.

    ``ok`` is true when everything logged reached the server (or, offline, the spool) and nothing
    was rejected or lost; ``warnings`` lists every problem the run reported.
    """

    ok: bool
    state: str
    warnings: list[str] = field(default_factory=list)
    #: Requests still in the on-disk spool (run ``track sync`` to upload them).
    spooled_batches: int = 0
    #: Requests the server refused permanently (4xx), with the reason in ``warnings``.
    rejected_batches: int = 0
    #: Points the server acknowledged during this session.
    accepted_points: int = 0
    spool_dir: str | None = None


@dataclass
class MetricDefinition:
    """A ``define_metric`` declaration (kept locally for now, see :meth:`Run.define_metric`)."""

    name: str
    step_metric: str | None = None
    summary: str | None = None
    goal: str | None = None
    hidden: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Run:
    """One tracked run. Create it with :func:`track.init`.

    Every method is thread-safe. After ``init`` returned, logging never raises: problems become
    :class:`TrackstackWarning` warnings and are listed in ``finish()``'s :class:`FinishResult`.
    """

    def __init__(
        self,
        *,
        run_id: str,
        project: str,
        name: str | None,
        group: str | None,
        job_type: str | None,
        notes: str | None,
        tags: list[str],
        config: Mapping[str, Any],
        summary: Mapping[str, Any] | None,
        mode: str,
        url: str,
        settings: Settings,
        start_step: int = 0,
        resumed: bool = False,
    ) -> None:
        self._id = run_id
        self._project = project
        self._name = name
        self._group = group
        self._job_type = job_type
        self._notes = notes
        self._tags = list(tags)
        self._mode = mode
        self._base_url = url
        self._settings = settings
        self.resumed = resumed
        self._warnings: list[str] = []
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer = Buffer(settings.max_buffer_points, self._wake, discard=mode == "disabled")
        self._lock = self._buffer.lock
        self._step = start_step
        self._ok_keys: set[str] = set()
        self._closed = False
        self._finish_lock = threading.Lock()
        self._result: FinishResult | None = None
        self._sender: Sender | None = None
        self._metric_defs: dict[str, MetricDefinition] = {}
        self._config = Config(self._queue_config, self._warn, config)
        self._summary = Summary(
            self._queue_summary, self._warn, self._buffer.logged_values, summary
        )

    # -- properties -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def project(self) -> str:
        return self._project

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = check_text("name", value)
        self._queue(PatchItem({"name": value}))

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._notes = check_text("notes", value, NOTES_MAX_BYTES)
        self._queue(PatchItem({"notes": value}))

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def job_type(self) -> str | None:
        return self._job_type

    @property
    def tags(self) -> tuple[str, ...]:
        """The run's tags; assign a new list to replace them (``run.tags = [*run.tags, "x"]``)."""
        return tuple(self._tags)

    @tags.setter
    def tags(self, value: Any) -> None:
        tags = check_tags(value)
        self._tags = tags
        if not self._changed_after_finish("tags"):
            self._buffer.set_tags(tags)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def summary(self) -> Summary:
        return self._summary

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` writes to."""
        return self._step

    @property
    def url(self) -> str:
        """The run's page in the web UI."""
        return f"{self._base_url}/projects/{quote(self._project)}/runs/{quote(self._id)}"

    @property
    def dir(self) -> Path | None:
        """The run's spool directory, if it has one (offline runs, or after a network outage)."""
        return self._sender.spool_path if self._sender is not None else None

    @property
    def finished(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<Run {self._project}/{self._id} mode={self._mode} step={self._step}>"

    # -- warnings and queued updates -----------------------------------------------------------

    def _warn(self, message: str, once_key: str | None = None) -> None:
        with self._warn_lock:
            key = once_key if once_key is not None else message
            if key in self._warned or len(self._warned) > _MAX_WARNINGS:
                return
            self._warned.add(key)
            if len(self._warned) > _MAX_WARNINGS:
                message = f"more than {_MAX_WARNINGS} distinct warnings; the rest are suppressed"
            self._warnings.append(message)
        warnings.warn(message, TrackstackWarning, stacklevel=_user_stacklevel())

    def _changed_after_finish(self, what: str) -> bool:
        if self._closed:
            self._warn(f"{what} changed after the run finished; not sent", f"late:{what}")
        return self._closed

    def _queue(self, item: PatchItem) -> None:
        if not self._changed_after_finish(", ".join(item.body)):
            self._buffer.push(item)

    def _queue_config(self, changes: dict[str, Any]) -> None:
        if not self._changed_after_finish("config"):
            self._buffer.update_config(changes)

    def _queue_summary(self, changes: dict[str, Any]) -> None:
        if not self._changed_after_finish("summary"):
            self._buffer.update_summary(changes)

    # -- logging --------------------------------------------------------------------------------

    def log(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Logs metric values for one step.

        Without ``step`` the values go to the current step, which then advances (unless
        ``commit=False``). With ``step=N`` the current step becomes N and stays there until a call
        commits (``commit=True``, or a later call without ``step``), so several calls can fill one
        step. Unlike W&B, a step below the current one is written, not dropped (the last write per
        key and step wins). Nested dicts are flattened with ``/``. Values must be numbers (bool,
        int, float incl. NaN and infinities, numpy scalars, 0-d tensors); anything else is skipped
        with a warning. Never raises.
        """
        # This is the training loop's hot path (budget: ~1 µs of Python per call), so the common
        # case, a float under a key seen before, is tested first and inline, everything else goes
        # through _log_value, and the buffer append is inlined below.
        if self._closed:
            self._warn("run.log() called after the run finished; the data is ignored", "closed")
            return
        flat: dict[str, float] = {}
        try:
            items = data.items()
        except AttributeError:
            self._warn(f"run.log() expects a dict, got {type(data).__name__}; ignored", "notdict")
            return
        except Exception as exc:
            self._warn(f"run.log() ignored a call: {type(exc).__name__}: {exc}", "error")
            return
        ok_keys = self._ok_keys
        try:
            for k, v in items:
                # Exact types: a str subclass may stringify differently, a float subclass (numpy)
                # must be converted.
                if type(v) is float and type(k) is str and k in ok_keys:
                    flat[k] = v
                else:
                    self._log_value(flat, k, v)
            if step is not None and (type(step) is not int or not 0 <= step <= _STEP_MAX):
                step = to_step(step)
        except ValueError as exc:
            self._warn(f"run.log() ignored a call: {exc}", f"step:{exc}")
            return
        except Exception as exc:  # a hostile __eq__ or .items(); never break the caller
            self._warn(f"run.log() ignored a call: {type(exc).__name__}: {exc}", "error")
            return
        t = int(_time() * 1000)
        buf = self._buffer
        lock = self._lock
        # try/finally rather than `with`: the same guarantee (a KeyboardInterrupt here must not
        # leave the lock held) without the __enter__/__exit__ calls.
        lock.acquire()
        try:
            if self._closed:  # finish() ran meanwhile; its final batch is already queued
                return
            if step is None:
                s = self._step
                if commit is not False:
                    self._step = s + 1
            else:
                s = step
                self._step = s + 1 if commit else s
            if flat:
                if buf.discard:
                    buf.add_row((s, t, flat))
                else:  # Buffer.add_row, inlined
                    buf.rows.append((s, t, flat))
                    buf.npoints += len(flat)
                    if buf.npoints >= buf.max_points:
                        buf.wake.set()
        finally:
            lock.release()

    def _log_value(self, out: dict[str, float], key: Any, value: Any) -> None:
        """Adds one ``log`` item that is not a float under a known key (see :meth:`log`)."""
        if type(key) is not str:
            key = str(key)
        tv = type(value)
        if tv is float:
            pass
        elif tv is int and -_STEP_MAX <= value <= _STEP_MAX:
            value = float(value)
        else:
            self._slow_value(out, key, value)
            return
        if key in self._ok_keys or self._accept_key(key):
            out[key] = value

    def _accept_key(self, key: str) -> bool:
        problem = key_problem(key)
        if problem is None:
            self._ok_keys.add(key)
            return True
        self._warn(f"{problem}; the value is skipped", f"key:{key}")
        return False

    def _slow_value(self, out: dict[str, float], key: str, value: Any, depth: int = 0) -> None:
        if isinstance(value, Mapping):
            if depth > 32:
                self._warn(f"run.log(): {key!r} is nested too deeply; skipped", f"deep:{key}")
                return
            for k, v in value.items():
                sub = f"{key}/{k}"
                if type(v) is float:
                    if sub in self._ok_keys or self._accept_key(sub):
                        out[sub] = v
                else:
                    self._slow_value(out, sub, v, depth + 1)
            return
        try:
            number = to_metric_value(value)
        except Skip as why:
            self._warn(
                f"run.log(): {key!r} is skipped because {why} (warned once per key)",
                f"value:{key}",
            )
            return
        if key in self._ok_keys or self._accept_key(key):
            out[key] = number

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        summary: str | None = None,
        goal: str | None = None,
        hidden: bool = False,
        **kwargs: Any,
    ) -> MetricDefinition:
        """Declares how a metric should be shown (custom x-axis, summary aggregation, goal).

        For now the definition is only kept locally (``run.metric_definitions``); it is not sent to
        the server and changes nothing about what ``log`` writes.
        """
        definition = MetricDefinition(name, step_metric, summary, goal, hidden, dict(kwargs))
        with self._lock:
            self._metric_defs[name] = definition
        return definition

    @property
    def metric_definitions(self) -> dict[str, MetricDefinition]:
        with self._lock:
            return dict(self._metric_defs)

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        type: str = "artifact",
        aliases: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Logs a file or a directory as a new version of artifact ``name``.

        Returns at once: the background thread hashes the files (sha256, streamed), uploads the
        contents the server does not have yet, then records the version, in order with the metrics
        logged before. Keep the files unchanged until ``run.finish()`` returns. The default name is
        the file or directory name reduced to ``[A-Za-z0-9._-]``. Returns the artifact name, or
        ``None`` when there is nothing to log (reported as a warning).

        Raises ``ValueError`` for an invalid ``name``, ``type``, ``aliases`` or ``metadata``.
        """
        p = Path(path)
        if name is None:
            name = sanitize_name(p.absolute().name or "artifact")
        else:
            check_name("artifact name", name)
        check_text("artifact type", type)
        alias_list = [aliases] if isinstance(aliases, str) else list(aliases or [])
        for alias in alias_list:
            if not isinstance(alias, str) or not alias:
                raise ValueError(f"aliases must be non-empty strings, got {alias!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError("metadata must be a mapping")
        problems: list[str] = []
        meta = to_json_value(dict(metadata or {}), "metadata", problems)
        for problem in problems:
            self._warn(problem)
        if self._closed:
            self._warn(f"log_artifact({name!r}) called after the run finished; ignored")
            return None
        try:
            files = _artifact_files(p)
        except OSError as exc:
            self._warn(f"log_artifact({str(path)!r}): {exc}; nothing logged")
            return None
        if not files:
            self._warn(f"log_artifact({str(path)!r}): no files to log")
            return None
        self._buffer.push(ArtifactItem(name, type, alias_list, meta, files))
        return name

    # -- finishing ----------------------------------------------------------------------------

    def finish(self, exit_code: int = 0, timeout: float | None = None) -> FinishResult:
        """Sends everything still queued, marks the run finished (``exit_code`` 0) or failed, and
        returns a :class:`FinishResult`.

        Waits at most ``timeout`` seconds (default ``settings.finish_timeout``); whatever could not
        be sent by then stays in the spool for ``track sync``. Calling it again returns the first
        result.
        """
        with self._finish_lock:
            if self._result is not None:
                return self._result
            state = "finished" if exit_code == 0 else "failed"
            with self._lock:
                self._closed = True
            stats = None
            stopped = True
            if self._sender is not None:
                self._buffer.push(IngestItem(state=state, exit_code=int(exit_code)))
                limit = self._settings.finish_timeout if timeout is None else timeout
                stopped = self._sender.close(limit)
                stats = self._sender.stats
                if not stopped:
                    self._warn(
                        f"run.finish() gave up waiting after {limit:.0f}s; some data may be lost"
                    )
            spool_dir = self.dir
            spooled = stats.spooled_entries if stats else 0
            if spooled and self._mode == "online":
                self._warn(
                    f"{spooled} request(s) could not be sent and wait in {spool_dir}; upload them "
                    f"with `track sync {spool_dir}`"
                )
            ok = stopped and (
                stats is None
                or (
                    not stats.rejected
                    and not stats.lost
                    and (self._mode == "offline" or spooled == 0)
                )
            )
            with self._warn_lock:
                found = list(self._warnings)
            self._result = FinishResult(
                ok=ok,
                state=state,
                warnings=found,
                spooled_batches=spooled,
                rejected_batches=len(stats.rejected) if stats else 0,
                accepted_points=stats.accepted_points if stats else 0,
                spool_dir=str(spool_dir) if spool_dir else None,
            )
            _state.forget(self)
            return self._result

    def _on_spool_close(self, spool: _spool.Spool) -> None:
        spool.update_meta(finished=self._closed, next_step=self._step)
        if self._closed:
            spool.mark_synced_if_complete()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def _artifact_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path}")
    files = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names):
            full = Path(root) / n
            if full.is_file():
                files.append((full.relative_to(path).as_posix(), full))
    return files
