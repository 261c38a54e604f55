"""An in-memory stand-in for the server's write path, behind ``httpx.MockTransport``.

Unit tests use it to capture the exact requests the SDK makes and to inject faults (server down,
5xx, 4xx). It implements only what the SDK's writer needs, following docs/api.md; the end-to-end
tests in test_e2e.py cover the real server.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import httpx

from protowire import decode_ingest

_TIME = "2026-11-27T23:14:05.123Z"
Handler = Callable[[httpx.Request], httpx.Response | None]


def _err(status: int, code: str, message: str, field: str | None = None) -> httpx.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return httpx.Response(status, json={"error": error})


class FakeServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False
        #: False plays a server from before protobuf ingest: 415 to protobuf bodies.
        self.protobuf = True
        #: Called first for every request; a response it returns short-circuits the fake.
        self.intercept: Handler | None = None
        #: (method, path, parsed body); a protobuf ingest body is recorded as its JSON equivalent.
        self.requests: list[tuple[str, str, Any]] = []
        #: (Content-Type, Content-Encoding) of every ingest request, refused ones included.
        self.ingest_encodings: list[tuple[str, str | None]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.points: dict[str, dict[tuple[str, int], Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.transport = httpx.MockTransport(self.handle)

    # -- helpers for tests ----------------------------------------------------------------------

    def ingests(self) -> list[dict[str, Any]]:
        return [b for m, p, b in self.requests if p == "/api/v1/ingest"]

    def history(self, run_id: str) -> dict[int, dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = {}
        for (key, step), value in sorted(
            self.points.get(run_id, {}).items(), key=lambda x: x[0][1]
        ):
            rows.setdefault(step, {})[key] = value
        return dict(sorted(rows.items()))

    # -- the fake -------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused (fake server is down)", request=request)
        if self.intercept is not None:
            resp = self.intercept(request)
            if resp is not None:
                return resp
        with self.lock:
            return self._route(request)

    def _body(self, request: httpx.Request) -> Any:
        raw = request.read()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            return json.loads(raw)
        if content_type == "application/x-protobuf" and request.url.path == "/api/v1/ingest":
            return decode_ingest(raw)
        return raw

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        method = request.method
        content_type = request.headers.get("content-type", "")
        if path == "/api/v1/ingest":
            encoding = (content_type, request.headers.get("content-encoding"))
            self.ingest_encodings.append(encoding)
            if content_type == "application/x-protobuf" and not self.protobuf:
                return _err(415, "unsupported_media_type", "expected application/json")
        body = self._body(request)
        self.requests.append((method, path, body if not isinstance(body, bytes) else len(body)))
        if (m := re.fullmatch(r"/api/v1/projects/([^/]+)/runs", path)) and method == "POST":
            return self._create(m.group(1), body)
        if m := re.fullmatch(r"/api/v1/runs/([^/]+)", path):
            run = self.runs.get(m.group(1))
            if run is None:
                return _err(404, "not_found", "no such run")
            if method == "GET":
                return httpx.Response(200, json=run)
            if method == "PATCH":
                for k, v in body.items():
                    if k == "config":
                        run["config"].update(v)
                    else:
                        run[k] = v
                return httpx.Response(200, json=run)
        if m := re.fullmatch(r"/api/v1/runs/([^/]+)/metrics", path):
            pts = self.points.get(m.group(1), {})
            by_key: dict[str, list[tuple[int, Any]]] = {}
            for (k, s), v in pts.items():
                by_key.setdefault(k, []).append((s, v))
            metrics = []
            for k, vals in sorted(by_key.items()):
                vals.sort()
                metrics.append(
                    {
                        "key": k,
                        "count": len(vals),
                        "last_step": vals[-1][0],
                        "last_value": vals[-1][1],
                    }
                )
            return httpx.Response(200, json={"metrics": metrics})
        if method == "GET" and (resp := self._read(request, path)) is not None:
            return resp
        if path == "/api/v1/ingest" and method == "POST":
            return self._ingest(body)
        if m := re.fullmatch(r"/api/v1/blobs/([0-9a-f]{64})", path):
            digest = m.group(1)
            if method == "HEAD":
                return httpx.Response(200 if digest in self.blobs else 404)
            if method == "PUT":
                if hashlib.sha256(body).hexdigest() != digest:
                    return _err(400, "invalid_argument", "digest mismatch", "digest")
                existed = digest in self.blobs
                self.blobs[digest] = body
                return httpx.Response(
                    200 if existed else 201, json={"digest": digest, "size": len(body)}
                )
        if (m := re.fullmatch(r"/api/v1/runs/([^/]+)/artifacts", path)) and method == "POST":
            for i, f in enumerate(body["files"]):
                if f["digest"] not in self.blobs:
                    return _err(400, "invalid_argument", "missing blob", f"files[{i}].digest")
            same = [a for a in self.artifacts if a["name"] == body["name"]]
            if same and same[-1]["files"] == body["files"]:
                return httpx.Response(200, json=same[-1])
            version = dict(body, version=f"v{len(same)}", created_by_run=m.group(1))
            self.artifacts.append(version)
            return httpx.Response(201, json=version)
        return _err(404, "not_found", f"no route {method} {path}")

    def _read(self, request: httpx.Request, path: str) -> httpx.Response | None:
        q = request.url.params
        if path == "/api/v1/projects":
            names = sorted({r["project"] for r in self.runs.values()})
            projects = [{"name": n, "description": None, "created_at": _TIME} for n in names]
            return httpx.Response(200, json={"projects": projects})
        if m := re.fullmatch(r"/api/v1/projects/([^/]+)/runs", path):
            runs = [r for r in self.runs.values() if r["project"] == m.group(1)]
            if "state" in q:
                runs = [r for r in runs if r["state"] == q["state"]]
            if "tag" in q:
                runs = [r for r in runs if q["tag"] in r["tags"]]
            if "name" in q:
                runs = [r for r in runs if q["name"].lower() in (r["name"] or "").lower()]
            sort = q.get("sort", "-created_at")
            field = sort.lstrip("-")
            runs.sort(key=lambda r: r["_seq"] if field == "created_at" else (r["name"] or ""))
            if sort.startswith("-"):
                runs.reverse()
            offset = int(q.get("cursor", "0"))
            limit = int(q.get("limit", "100"))
            page = runs[offset : offset + limit]
            more = offset + limit < len(runs)
            return httpx.Response(
                200,
                json={"runs": page, "next_cursor": str(offset + limit) if more else None},
            )
        if m := re.fullmatch(r"/api/v1/runs/([^/]+)/series", path):
            pts = sorted(
                (s, v) for (k, s), v in self.points.get(m.group(1), {}).items() if k == q["key"]
            )
            start = int(q.get("cursor", q.get("start", "0")))
            end = int(q.get("end", str(2**53)))
            limit = int(q.get("limit", "10000"))
            sel = [(s, v) for s, v in pts if start <= s <= end]
            page = sel[:limit]
            nxt = sel[limit][0] if len(sel) > limit else None
            points = [{"step": s, "value": v, "time_ms": 0} for s, v in page]
            return httpx.Response(200, json={"key": q["key"], "points": points, "next_cursor": nxt})
        if m := re.fullmatch(r"/api/v1/runs/([^/]+)/series/buckets", path):
            pts = sorted(
                (s, v) for (k, s), v in self.points.get(m.group(1), {}).items() if k == q["key"]
            )
            if not pts:
                return httpx.Response(200, json={"key": q["key"], "buckets": []})
            lo, hi, n = pts[0][0], pts[-1][0], int(q["buckets"])
            # The server's layout: the narrowest power-of-two width aligned to step 0 giving at
            # most n buckets.
            shift = 0
            while (hi >> shift) - (lo >> shift) + 1 > n:
                shift += 1
            buckets: dict[int, list[tuple[int, Any]]] = {}
            for s, v in pts:
                buckets.setdefault(s >> shift, []).append((s, v))
            out = []
            for _, b in sorted(buckets.items()):
                finite = [v for _, v in b if not isinstance(v, str)]
                out.append(
                    {
                        "first_step": b[0][0],
                        "last_step": b[-1][0],
                        "count": len(b),
                        "min": min(finite) if finite else None,
                        "max": max(finite) if finite else None,
                        "mean": sum(finite) / len(finite) if finite else None,
                        "last": b[-1][1],
                    }
                )
            return httpx.Response(
                200, json={"key": q["key"], "start": lo, "end": hi, "buckets": out}
            )
        if m := re.fullmatch(r"/api/v1/runs/([^/]+)/artifacts", path):
            arts = [a for a in self.artifacts if a["created_by_run"] == m.group(1)]
            return httpx.Response(200, json={"artifacts": arts})
        if m := re.fullmatch(r"/api/v1/projects/([^/]+)/artifacts/([^/]+)/versions/([^/]+)", path):
            same = [a for a in self.artifacts if a["name"] == m.group(2)]
            want = m.group(3)
            found = same[-1:] if want == "latest" else [a for a in same if a["version"] == want]
            if not found:
                return _err(404, "not_found", "no such artifact version")
            return httpx.Response(200, json=found[0])
        if m := re.fullmatch(r"/api/v1/blobs/([0-9a-f]{64})", path):
            if m.group(1) not in self.blobs:
                return _err(404, "not_found", "no such blob")
            return httpx.Response(200, content=self.blobs[m.group(1)])
        return None

    def _create(self, project: str, body: dict[str, Any]) -> httpx.Response:
        run_id = body.get("id") or "srvmade1"
        run = self.runs.get(run_id)
        if run is not None:
            if run["project"] != project or body.get("if_exists") == "error":
                return _err(409, "already_exists", "run id taken")
            if run["state"] != "running":
                run["state"] = "running"
            return httpx.Response(200, json=run)
        run = {
            "id": run_id,
            "project": project,
            "name": body.get("name"),
            "group": body.get("group"),
            "job_type": body.get("job_type"),
            "notes": body.get("notes"),
            "tags": body.get("tags") or [],
            "config": body.get("config") or {},
            "summary": {},
            "metadata": body.get("metadata") or {},
            "state": "running",
            "exit_code": None,
            "created_at": _TIME,
            "_seq": len(self.runs),
        }
        self.runs[run_id] = run
        return httpx.Response(201, json=run)

    def _ingest(self, body: dict[str, Any]) -> httpx.Response:
        run = self.runs.get(body.get("run_id"))
        if run is None:
            return _err(404, "not_found", "no such run")
        metrics = body.get("metrics") or []
        for i, p in enumerate(metrics):
            if not isinstance(p.get("step"), int) or p["step"] < 0:
                return _err(400, "invalid_argument", "bad step", f"metrics[{i}].step")
            if p["key"].startswith("_"):
                return _err(400, "invalid_argument", "reserved key", f"metrics[{i}].key")
        pts = self.points.setdefault(run["id"], {})
        for p in metrics:
            pts[(p["key"], p["step"])] = p["value"]
        if "config" in body:
            run["config"].update(body["config"])
        if "summary" in body:
            run["summary"].update(body["summary"])
        if "tags" in body:
            run["tags"] = body["tags"]
        if "state" in body:
            run["state"] = body["state"]
            run["exit_code"] = body.get("exit_code")
        return httpx.Response(200, json={"accepted_points": len(metrics)})
