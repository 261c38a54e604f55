"""The read API: projects, runs, metric histories and artifacts, straight from the REST API.

>>> api = track.Api()
>>> for run in api.runs("vision", filter={"state": "finished"}, order="-created_at"):
...     print(run.id, run.summary.get("val/acc"))
>>> rows = api.run("vision/a1b2c3d4").history(keys=["loss"])
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ._http import OK, HttpClient, RetryPolicy, error_of, raise_for, with_retry
from ._values import decode_float
from .errors import InvalidArgumentError, NotFoundError, TrackstackError

_FILTER_KEYS = ("state", "tag", "name")
_SERIES_PAGE = 100_000  # the server's maximum raw page


def _q(segment: str) -> str:
    return quote(segment, safe="")


def parse_time(value: Any) -> datetime | None:
    """Parses the API's RFC 3339 timestamps (``None`` stays ``None``)."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Retention:
    """How long a project keeps finished runs (``runs_days``) and their points (``points_days``).

    ``None`` keeps them forever. The days count from the moment a run ends.
    """

    runs_days: int | None = None
    points_days: int | None = None


@dataclass(frozen=True)
class Project:
    name: str
    description: str | None
    created_at: datetime | None
    retention: Retention = Retention()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Project:
        retention = data.get("retention") or {}
        return cls(
            data["name"],
            data.get("description"),
            parse_time(data.get("created_at")),
            Retention(retention.get("runs_days"), retention.get("points_days")),
        )


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    digest: str
    size: int


class Api:
    """A client for the server's read API.

    ``url`` defaults to ``TRACKSTACK_URL`` (else ``http://127.0.0.1:3000``) and ``api_key`` to
    ``TRACKSTACK_API_KEY``. Server errors raise the :mod:`track.errors` class of their code.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry_budget: float = 5.0,
        _transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = HttpClient(url, api_key, timeout=timeout, transport=_transport)
        self._policy = RetryPolicy(budget=retry_budget)

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        out = with_retry(lambda: self._http.request("GET", path, params=params), self._policy)
        if out.kind != OK:
            assert out.error is not None
            raise out.error
        return out.json()

    # -- projects -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self._get("/health")
        return health

    def projects(self) -> list[Project]:
        """Every project, sorted by name."""
        return [Project.from_json(p) for p in self._get("/projects")["projects"]]

    def project(self, name: str) -> Project:
        return Project.from_json(self._get(f"/projects/{_q(name)}"))

    def set_retention(
        self, project: str, *, runs_days: int | None = None, points_days: int | None = None
    ) -> Project:
        """Replaces a project's retention.

        Finished runs are deleted ``runs_days`` after they end, and their points ``points_days``
        after they end (config and summary stay). ``None`` keeps them forever.
        """
        body = {"retention": {"runs_days": runs_days, "points_days": points_days}}
        out = raise_for(self._http.request("PATCH", f"/projects/{_q(project)}", json_body=body))
        return Project.from_json(out.json())

    # -- runs ---------------------------------------------------------------------------------

    def runs(
        self,
        project: str,
        filter: str | Mapping[str, str] | None = None,
        order: str | None = None,
        limit: int | None = None,
        per_page: int | None = None,
    ) -> Iterator[ApiRun]:
        """Iterates over the project's runs, following every page.

        ``filter`` is a query in the runs query language (docs/query-language.md), e.g.
        ``"summary.val/acc > 0.9 and tags contains baseline"``, or a dict of ``state`` (exact),
        ``tag`` (exact) and ``name`` (case-insensitive substring). ``order`` is a comma-separated
        list of fields, ``-`` for descending (``"-summary.val/acc,config.lr"``; default
        ``-created_at``); runs lacking a value come last. ``limit`` caps how many runs are
        yielded; ``per_page`` sets the page size (server default 100, at most 1000).
        """
        params: dict[str, Any] = {}
        if isinstance(filter, str):
            params["filter"] = filter
        elif filter:
            unknown = set(filter) - set(_FILTER_KEYS)
            if unknown:
                raise ValueError(f"unknown filter keys {sorted(unknown)}; use {list(_FILTER_KEYS)}")
            params.update({k: v for k, v in filter.items() if v is not None})
        if order is not None:
            params["sort"] = order
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        return self._iter_runs(project, params, limit, per_page)

    def group_runs(
        self,
        project: str,
        group_by: Iterable[str],
        columns: Iterable[str] = (),
        filter: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Groups the project's runs (those ``filter`` selects) by the values of ``group_by``.

        Each group is ``{"key": [...], "count": n, "columns": {field: stats}}`` where ``stats``
        has ``count``, ``mean``, ``std``, ``min``, ``max`` and ``median`` over the finite numbers
        of each ``columns`` field. The "mean ± std across seeds" of a sweep:
        ``group_runs(p, ["config.lr"], ["summary.val/acc"])``.
        """
        body: dict[str, Any] = {"group_by": list(group_by), "columns": list(columns)}
        if filter is not None:
            body["filter"] = filter
        if limit is not None:
            body["limit"] = limit
        out = with_retry(
            lambda: self._http.request(
                "POST", f"/projects/{_q(project)}/runs/query", json_body=body
            ),
            self._policy,
        )
        if out.kind != OK:
            assert out.error is not None
            raise out.error
        groups: list[dict[str, Any]] = out.json()["groups"]
        return groups

    def _iter_runs(
        self, project: str, params: dict[str, Any], limit: int | None, per_page: int | None
    ) -> Iterator[ApiRun]:
        yielded = 0
        cursor: str | None = None
        while limit is None or yielded < limit:
            page = per_page
            if limit is not None:
                page = min(page or 1000, limit - yielded)
            body = self._get(
                f"/projects/{_q(project)}/runs", {**params, "limit": page, "cursor": cursor}
            )
            for data in body.get("runs") or []:
                yield ApiRun(self, data)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def run(self, path: str) -> ApiRun:
        """A run by ``"id"`` or ``"project/id"``."""
        project, _, run_id = path.rpartition("/")
        data = self._get(f"/runs/{_q(run_id)}")
        if project and data.get("project") != project:
            raise NotFoundError(
                f"run {run_id!r} is in project {data.get('project')!r}, not {project!r}",
                code="not_found",
            )
        return ApiRun(self, data)

    # -- artifacts ----------------------------------------------------------------------------

    def artifact(self, spec: str) -> ApiArtifact:
        """An artifact version by ``"project/name:version"`` (``version`` is ``vN`` or an alias;
        default ``latest``)."""
        project, sep, rest = spec.partition("/")
        if not sep or not project or not rest:
            raise ValueError(f"expected 'project/name[:version]', got {spec!r}")
        name, _, version = rest.partition(":")
        version = version or "latest"
        data = self._get(f"/projects/{_q(project)}/artifacts/{_q(name)}/versions/{_q(version)}")
        return ApiArtifact(self, data)

    def artifacts(self, project: str) -> list[ApiArtifact]:
        """The latest version of every artifact in ``project``."""
        body = self._get(f"/projects/{_q(project)}/artifacts")
        return [ApiArtifact(self, a) for a in body.get("artifacts") or []]


class ApiRun:
    """A run as the server stores it. Attributes mirror the API's run object."""

    def __init__(self, api: Api, data: Mapping[str, Any]) -> None:
        self._api = api
        self._load(data)

    def _load(self, data: Mapping[str, Any]) -> None:
        self.raw: dict[str, Any] = dict(data)
        self.id: str = data["id"]
        self.project: str = data.get("project", "")
        self.name: str | None = data.get("name")
        self.group: str | None = data.get("group")
        self.job_type: str | None = data.get("job_type")
        self.notes: str | None = data.get("notes")
        self.state: str | None = data.get("state")
        self.exit_code: int | None = data.get("exit_code")
        self.tags: list[str] = list(data.get("tags") or [])
        self.config: dict[str, Any] = dict(data.get("config") or {})
        self.summary: dict[str, Any] = {
            k: _decode_summary(v) for k, v in (data.get("summary") or {}).items()
        }
        self.metadata: dict[str, Any] = dict(data.get("metadata") or {})
        self.created_at = parse_time(data.get("created_at"))
        self.started_at = parse_time(data.get("started_at"))
        self.ended_at = parse_time(data.get("ended_at"))
        self.heartbeat_at = parse_time(data.get("heartbeat_at"))
        #: When the project's retention deleted the points logged until then.
        self.points_expired_at = parse_time(data.get("points_expired_at"))
        #: Points the server refused for this run (limits), and why the last time.
        self.rejected_points: int = int(data.get("rejected_points") or 0)
        self.last_rejection: str | None = data.get("last_rejection")

    def __repr__(self) -> str:
        return f"<ApiRun {self.project}/{self.id} state={self.state}>"

    @property
    def path(self) -> str:
        return f"{self.project}/{self.id}"

    def reload(self) -> ApiRun:
        """Fetches the run again (state, summary, … may have changed)."""
        self._load(self._api._get(f"/runs/{_q(self.id)}"))
        return self

    def metrics(self) -> list[dict[str, Any]]:
        """Per metric key: ``key``, ``count``, ``last_step``, ``last_value``, ``min``, ``max``."""
        body = self._api._get(f"/runs/{_q(self.id)}/metrics")
        out = []
        for m in body.get("metrics") or []:
            m = dict(m)
            for k in ("last_value", "min", "max"):
                m[k] = decode_float(m.get(k))
            out.append(m)
        return out

    def points(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> list[dict[str, Any]]:
        """Every raw point of one series (``step``, ``value``, ``time_ms``), ascending by step."""
        out: list[dict[str, Any]] = []
        cursor: int | None = None
        while True:
            body = self._api._get(
                f"/runs/{_q(self.id)}/series",
                {"key": key, "start": start, "end": end, "limit": _SERIES_PAGE, "cursor": cursor},
            )
            for p in body.get("points") or []:
                out.append(
                    {
                        "step": p["step"],
                        "value": decode_float(p["value"]),
                        "time_ms": p.get("time_ms"),
                    }
                )
            cursor = body.get("next_cursor")
            if cursor is None:
                return out

    def history(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every logged point as rows ``{"_step": s, key: value, …}`` sorted by step.

        ``keys`` defaults to every metric key of the run. A row holds only the keys logged at its
        step. NaN and infinities come back as floats.
        """
        if keys is None:
            keys = [m["key"] for m in self.metrics()]
        elif isinstance(keys, str):
            keys = [keys]
        rows: dict[int, dict[str, Any]] = {}
        for key in keys:
            for p in self.points(key):
                row = rows.get(p["step"])
                if row is None:
                    row = rows[p["step"]] = {"_step": p["step"]}
                row[key] = p["value"]
        return [rows[s] for s in sorted(rows)]

    def scan(
        self, key: str, buckets: int = 1000, start: int | None = None, end: int | None = None
    ) -> list[dict[str, Any]]:
        """The series cut into ``buckets`` equal step ranges (empty ones omitted), each with
        ``first_step``, ``last_step``, ``count``, ``min``, ``max``, ``mean`` and ``last``."""
        body = self._api._get(
            f"/runs/{_q(self.id)}/series/buckets",
            {"key": key, "buckets": buckets, "start": start, "end": end},
        )
        out = []
        for b in body.get("buckets") or []:
            b = dict(b)
            for k in ("min", "max", "mean", "last"):
                b[k] = decode_float(b.get(k))
            out.append(b)
        return out

    def artifacts(self) -> list[ApiArtifact]:
        """The artifact versions this run logged."""
        body = self._api._get(f"/runs/{_q(self.id)}/artifacts")
        return [ApiArtifact(self._api, a) for a in body.get("artifacts") or []]


def _decode_summary(value: Any) -> Any:
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return decode_float(value)
    return value


class ApiArtifact:
    """One artifact version."""

    def __init__(self, api: Api, data: Mapping[str, Any]) -> None:
        self._api = api
        self.raw: dict[str, Any] = dict(data)
        self.project: str = data.get("project", "")
        self.name: str = data["name"]
        self.version: str = data.get("version", "")
        self.type: str | None = data.get("type")
        self.digest: str | None = data.get("digest")
        self.size: int | None = data.get("size")
        self.aliases: list[str] = list(data.get("aliases") or [])
        self.metadata: dict[str, Any] = dict(data.get("metadata") or {})
        self.created_by_run: str | None = data.get("created_by_run")
        self.created_at = parse_time(data.get("created_at"))
        self.files: list[ArtifactFile] = [
            ArtifactFile(f["path"], f["digest"], int(f["size"])) for f in data.get("files") or []
        ]

    def __repr__(self) -> str:
        return f"<ApiArtifact {self.project}/{self.name}:{self.version} files={len(self.files)}>"

    def download(self, dir: str | os.PathLike[str] | None = None) -> str:
        """Writes every file to ``dir/<path>`` (default ``./artifacts/<name>-<version>``), streamed
        and checked against its sha256; returns the directory."""
        root = Path(dir) if dir is not None else Path("artifacts") / f"{self.name}-{self.version}"
        root.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            parts = f.path.split("/")
            if any(p in ("", ".", "..") for p in parts) or "\\" in f.path:
                raise InvalidArgumentError(f"refusing unsafe artifact path {f.path!r}")
            dest = root.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._download_blob(f, dest)
        return str(root)

    def _download_blob(self, f: ArtifactFile, dest: Path) -> None:
        tmp = dest.with_name(f".{dest.name}.part")
        policy = self._api._policy
        give_up = time.monotonic() + policy.budget
        delays = iter(policy.delays())
        while True:
            try:
                with self._api._http.stream("GET", f"/blobs/{f.digest}") as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        err = error_of(resp)
                        if resp.status_code < 500 or time.monotonic() > give_up:
                            raise err
                        raise _Retry(err)
                    h = hashlib.sha256()
                    with tmp.open("wb") as out:
                        for chunk in resp.iter_bytes(1 << 20):
                            h.update(chunk)
                            out.write(chunk)
                if h.hexdigest() != f.digest:
                    raise TrackstackError(
                        f"downloaded {f.path} does not match its digest {f.digest}"
                    )
                tmp.replace(dest)
                return
            except (_Retry, httpx.TransportError) as exc:
                tmp.unlink(missing_ok=True)
                if time.monotonic() > give_up:
                    raise TrackstackError(f"downloading {f.path} failed: {exc}") from exc
                time.sleep(next(delays))
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise


class _Retry(Exception):
    pass
