"""``track sync``: upload spooled runs (offline runs, or online runs that lost the server)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from . import _env, _spool
from ._http import HttpClient, RetryPolicy, dumps
from ._uploader import Uploader, replay


@dataclass
class SyncedRun:
    """The outcome for one spool directory."""

    path: str
    run_id: str | None = None
    project: str | None = None
    sent: int = 0
    accepted_points: int = 0
    rejected: list[str] = field(default_factory=list)
    remaining: int = 0
    error: str | None = None
    #: Why nothing was done: ``"already synced"`` or ``"in use by a running process"``.
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected and self.remaining == 0


@dataclass
class SyncReport:
    runs: list[SyncedRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def find_spools(path: Path) -> list[Path]:
    """``path`` itself if it is a spool directory, else the spool directories directly inside."""
    if _spool.is_spool_dir(path):
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and _spool.is_spool_dir(p))


def sync(
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    *,
    retry_budget: float = 10.0,
    out: TextIO | None = None,
    _transport: httpx.BaseTransport | None = None,
) -> SyncReport:
    """Uploads every spooled run under ``path`` (a run directory, or a directory of them; default
    ``TRACKSTACK_DIR`` or ``./trackstack``), in order, deleting each request once acknowledged.

    Running it again uploads nothing twice: synced runs are marked and skipped. The server is
    ``url``, else ``TRACKSTACK_URL``, else the URL the run was started with.
    """
    root = _env.directory(path)
    report = SyncReport()
    say: Callable[[str], None] = (
        (lambda s: print(s, file=out)) if out is not None else (lambda s: None)
    )
    for spool_path in find_spools(root):
        result = _sync_one(spool_path, url, api_key, retry_budget, _transport)
        report.runs.append(result)
        say(_describe(result))
    return report


def _sync_one(
    path: Path,
    url: str | None,
    api_key: str | None,
    budget: float,
    transport: httpx.BaseTransport | None,
) -> SyncedRun:
    spool = _spool.Spool(path)
    result = SyncedRun(str(path))
    try:
        meta = spool.read_meta()
        result.run_id = meta.get("create", {}).get("id") or meta.get("run_id")
        result.project = meta.get("project")
    except (OSError, ValueError) as exc:
        result.error = f"unreadable run.json: {exc}"
        return result
    try:
        locked = spool.lock(blocking=False)
    except OSError as exc:
        result.error = f"cannot lock the spool: {exc}"
        return result
    if not locked:
        result.skipped = "in use by a running process"
        result.remaining = spool.pending_count()
        return result
    try:
        if spool.is_synced() and not spool.entries():
            result.skipped = "already synced"
            return result
        if not meta.get("finished"):
            # Nobody holds the lock, so the process that wrote this spool is gone without
            # finishing: record the run as crashed after everything it logged.
            spool.append(_spool.INGEST, dumps({"run_id": result.run_id, "state": "crashed"}))
            spool.update_meta(finished=True)
        server = url or os.environ.get(_env.URL, "").strip() or meta.get("url")
        client = HttpClient(server, api_key, transport=transport)
        try:
            uploader = Uploader(client, str(result.run_id), RetryPolicy(budget=budget))
            outcome = replay(spool, uploader)
        finally:
            client.close()
        result.sent = outcome.sent
        result.accepted_points = outcome.accepted_points
        result.rejected = outcome.rejected
        result.remaining = outcome.remaining
        result.error = outcome.error
        if outcome.error is None:
            spool.mark_synced_if_complete()
        return result
    except OSError as exc:
        result.error = str(exc)
        result.remaining = spool.pending_count()
        return result
    finally:
        spool.unlock()


def _describe(r: SyncedRun) -> str:
    name = f"{r.project}/{r.run_id}" if r.project else r.path
    if r.skipped:
        return f"{name}: skipped ({r.skipped})"
    parts = [f"{r.sent} request(s) sent", f"{r.accepted_points} point(s) accepted"]
    if r.rejected:
        parts.append(f"{len(r.rejected)} rejected")
    if r.remaining:
        parts.append(f"{r.remaining} remaining")
    line = f"{name}: " + ", ".join(parts)
    if r.error:
        line += f"; stopped: {r.error}"
    for msg in r.rejected:
        line += f"\n  {msg}"
    return line


def main_sync(
    path: str | None, url: str | None, *, retry_budget: float = 10.0, out: TextIO = sys.stdout
) -> int:
    root = _env.directory(path)
    if not find_spools(root):
        print(f"nothing to sync in {root}", file=out)
        return 0 if path is None or root.exists() else 2
    report = sync(root, url, retry_budget=retry_budget, out=out)
    synced = sum(1 for r in report.runs if r.ok and not r.skipped)
    skipped = sum(1 for r in report.runs if r.skipped)
    failed = sum(1 for r in report.runs if not r.ok)
    print(f"{synced} run(s) synced, {skipped} skipped, {failed} failed", file=out)
    return 0 if report.ok else 1
