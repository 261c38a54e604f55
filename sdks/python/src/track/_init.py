"""``track.init``: validates arguments, creates (or resumes) the run and starts its sender."""

from __future__ import annotations

import getpass
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from . import _env, _spool, _state
from ._http import OK, PERMANENT, HttpClient, RetryPolicy, __version__
from ._run import Run, TrackstackWarning
from ._sender import IngestItem, PatchItem, Sender
from ._settings import Settings
from ._uploader import Uploader
from ._values import (
    NOTES_MAX_BYTES,
    RUN_ID_MAX_CHARS,
    check_name,
    check_project,
    check_tags,
    check_text,
    decode_float,
    to_json_value,
)
from .errors import NotFoundError, TrackstackError

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_RESUME_MODES = {"never": "never", "allow": "allow", "must": "must"}


def _resume_mode(resume: Any) -> str | None:
    """Normalizes ``resume``: ``None``/``False`` -> None, ``True`` -> "allow", or the string."""
    if resume is None or resume is False:
        return None
    if resume is True:
        return "allow"
    if isinstance(resume, str) and resume in _RESUME_MODES:
        return resume
    raise ValueError(
        f"resume must be one of True, False, None, 'allow', 'must', 'never'; got {resume!r}"
    )


def generate_id() -> str:
    """A random run id: 8 characters of ``[a-z0-9]``, like the server's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def _git(*args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def collect_metadata() -> dict[str, Any]:
    """Where and how the run was started; stored in the run's ``metadata``."""
    meta: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "cwd": str(Path.cwd()),
        "sdk": f"trackstack-python {__version__}",
    }
    try:
        meta["user"] = getpass.getuser()
    except Exception:
        pass
    commit = _git("rev-parse", "HEAD")
    if commit:
        git: dict[str, Any] = {"commit": commit}
        branch = _git("rev-parse", "--abbrev-ref", "HEAD")
        if branch:
            git["branch"] = branch
        meta["git"] = git
    return meta


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "__dict__") and not isinstance(config, type):  # argparse.Namespace & co
        return dict(vars(config))
    raise ValueError(f"config must be a dict, got {type(config).__name__}")


def init(
    project: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | Any | None = None,
    tags: list[str] | None = None,
    group: str | None = None,
    job_type: str | None = None,
    notes: str | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    mode: str | None = None,
    url: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    *,
    settings: Settings | None = None,
    _transport: httpx.BaseTransport | None = None,
) -> Run:
    """Starts a run and makes it the current one (``track.run``).

    ``mode`` is ``"online"`` (default; ``TRACKSTACK_MODE``), ``"offline"`` (write only a local
    spool, upload later with ``track sync``) or ``"disabled"`` (log nothing). ``resume``:
    ``"allow"`` or ``True`` continues the run ``id`` if it exists, ``"must"`` requires it to exist,
    ``"never"`` requires it not to. A resumed run continues after its highest logged step.

    If the server cannot be reached, the run still starts: everything (including the run's
    creation) goes to the spool under ``dir`` (``TRACKSTACK_DIR``, default ``./trackstack``) and is
    sent once the server answers. Raises only for invalid arguments (``ValueError``) or when the
    server refuses the run itself (e.g. :class:`track.errors.AlreadyExistsError`).
    """
    mode = _env.mode(mode)
    project = check_project(_env.project(project))
    if id is not None:
        check_name("run id", id, RUN_ID_MAX_CHARS)
    resume_mode = _resume_mode(resume)
    if resume_mode == "must" and id is None:
        raise ValueError("resume='must' needs the id of the run to resume")
    for label, value in (("name", name), ("group", group), ("job_type", job_type)):
        check_text(label, value)
    check_text("notes", notes, NOTES_MAX_BYTES)
    tag_list = check_tags(tags) if tags is not None else []
    problems: list[str] = []
    config_clean = to_json_value(_config_dict(config), "config", problems)
    settings = settings or Settings()
    run_id = id or generate_id()
    base_url = _env.url(url)

    # Like W&B's default (reinit="finish_previous"), a new init ends the current run.
    previous = _state.current_run()
    if previous is not None:
        previous.finish()

    create: dict[str, Any] = {"id": run_id}
    for k, v in (("name", name), ("group", group), ("job_type", job_type), ("notes", notes)):
        if v is not None:
            create[k] = v
    if tags is not None:
        create["tags"] = tag_list
    if config_clean:
        create["config"] = config_clean
    create["metadata"] = {} if mode == "disabled" else collect_metadata()
    create["if_exists"] = "return"

    init_fields: dict[str, Any] = {
        k: create[k] for k in ("name", "group", "job_type", "notes") if k in create
    }

    def resend_init(run: Run) -> None:
        """Repeats init's arguments as updates, for a run the create request may not modify."""
        if config_clean or tags is not None:
            run._buffer.push(
                IngestItem(config=config_clean or None, tags=tag_list if tags is not None else None)
            )
        if init_fields:
            run._buffer.push(PatchItem(dict(init_fields)))

    common: dict[str, Any] = {
        "run_id": run_id,
        "project": project,
        "name": name,
        "group": group,
        "job_type": job_type,
        "notes": notes,
        "tags": tag_list,
        "mode": mode,
        "url": base_url,
        "settings": settings,
    }

    if mode == "disabled":
        run = Run(config=config_clean, summary=None, **common)
        return _register(run, problems)

    root = _env.directory(dir)
    meta = {
        "format": 1,
        "run_id": run_id,
        "project": project,
        "url": base_url,
        "mode": mode,
        "create": create,
        "created": False,
        "finished": False,
        "sdk": __version__,
    }

    if mode == "offline":
        spool, existed = _open_spool(root, run_id, offline=True, meta=meta)
        start = int(spool.read_meta().get("next_step") or 0) if existed else 0
        if existed:
            spool.update_meta(finished=False)
        run = Run(config=config_clean, summary=None, start_step=start, resumed=existed, **common)
        if existed and resume_mode is None:
            run._warn(f"offline run {run_id} exists in {spool.path}; continuing it at step {start}")
        run._sender = Sender(
            run_id=run_id,
            buffer=run._buffer,
            wake=run._wake,
            client=None,
            open_spool=lambda: spool,
            settings=settings,
            warn=run._warn,
            on_spool_close=run._on_spool_close,
        )
        if existed or id is not None:
            resend_init(run)
        run._sender.start()
        return _register(run, problems)

    # Online.
    client = HttpClient(base_url, timeout=settings.http_timeout, transport=_transport)
    uploader = Uploader(
        client,
        run_id,
        RetryPolicy(budget=min(settings.retry_budget, settings.init_timeout)),
        request_timeout=settings.init_timeout,
    )
    reachable, server_run, resumed, why = True, None, False, ""
    if resume_mode == "must":
        out = uploader.get_run()
        if out.kind == PERMANENT and out.response is not None and out.response.status_code == 404:
            client.close()
            raise NotFoundError(
                f"resume='must' but run {run_id!r} does not exist", code="not_found", status=404
            )
        if out.kind == PERMANENT:
            client.close()
            assert out.error is not None
            raise out.error
        if out.kind != OK:
            reachable, why = False, str(out.error)
    if reachable:
        payload = dict(create, if_exists="error" if resume_mode == "never" else "return")
        out = uploader.create_run(project, payload)
        if out.kind == PERMANENT:
            client.close()
            assert out.error is not None
            raise out.error
        if out.kind == OK:
            server_run = out.json() if isinstance(out.json(), dict) else {}
            resumed = out.response is not None and out.response.status_code == 200
        else:
            reachable, why = False, str(out.error)

    # A spool left behind by an earlier process for this run id holds older updates: they must
    # reach the server before anything this process sends, and its steps count as logged.
    leftover = _spool.Spool(root / _spool.spool_dir_name(run_id, False))
    has_leftover = _spool.is_spool_dir(leftover.path) and leftover.pending_count() > 0
    start, config_init, summary_init, logged = 0, dict(config_clean), None, None
    if resumed and server_run is not None:
        start, logged = _resume_point(uploader)
        config_init = {**(server_run.get("config") or {}), **config_clean}
        summary_init = {
            k: v
            for k, v in (server_run.get("summary") or {}).items()
            if logged is None or k not in logged[1]
        }
        if tags is None:
            common["tags"] = list(server_run.get("tags") or [])
    if server_run is not None:
        # The server fills in what init left out (e.g. the name defaults to the run id).
        for k in ("name", "group", "job_type", "notes"):
            if common[k] is None:
                common[k] = server_run.get(k)
    if has_leftover:
        try:
            start = max(start, int(leftover.read_meta().get("next_step") or 0))
        except (OSError, ValueError):
            pass
    run = Run(config=config_init, summary=summary_init, start_step=start, resumed=resumed, **common)
    if logged:
        run._buffer.seed_logged(*logged)
    if resumed and resume_mode is None:
        run._warn(
            f"run {run_id!r} already exists; continuing it at step {start} "
            "(pass resume='allow' to silence this)"
        )
    if not reachable:
        run._warn(
            f"cannot reach the trackstack server at {base_url} ({why}); the run is spooled to "
            f"{root / _spool.spool_dir_name(run_id, False)} and sent when the server answers"
        )
        if resume_mode is not None:
            run._warn("the resumed run's last step is unknown offline; its steps restart at 0")
    meta["created"] = reachable

    def open_online_spool() -> _spool.Spool:
        spool, existed = _open_spool(root, run_id, offline=False, meta=meta)
        if existed:
            spool.update_meta(finished=False, **({"created": True} if reachable else {}))
        return spool

    run._sender = Sender(
        run_id=run_id,
        buffer=run._buffer,
        wake=run._wake,
        client=client,
        open_spool=open_online_spool,
        settings=settings,
        warn=run._warn,
        spooling=not reachable or has_leftover,
        on_spool_close=run._on_spool_close,
    )
    if resumed or (not reachable and id is not None):
        resend_init(run)
    run._sender.start()
    return _register(run, problems)


def _resume_point(
    uploader: Uploader,
) -> tuple[int, tuple[dict[str, int], dict[str, float]] | None]:
    """The step after the run's highest logged step, and each key's last (step, value)."""
    client = uploader.client
    try:
        resp = client.request(
            "GET", f"/runs/{quote(uploader.run_id, safe='')}/metrics", timeout=uploader.timeout
        )
        if resp.status_code != 200:
            raise TrackstackError(f"HTTP {resp.status_code}")
        metrics = resp.json().get("metrics") or []
    except (TrackstackError, ValueError) as exc:
        warnings.warn(
            f"could not read the resumed run's metrics ({exc}); its steps restart at 0",
            TrackstackWarning,
            stacklevel=3,
        )
        return 0, None
    last_step: dict[str, int] = {}
    last_val: dict[str, float] = {}
    for m in metrics:
        if isinstance(m.get("last_step"), int):
            last_step[m["key"]] = m["last_step"]
            value = decode_float(m.get("last_value"))
            last_val[m["key"]] = math.nan if value is None else value
    start = max(last_step.values()) + 1 if last_step else 0
    return start, (last_step, last_val)


def _open_spool(
    root: Path, run_id: str, *, offline: bool, meta: dict[str, Any]
) -> tuple[_spool.Spool, bool]:
    """Opens the run's spool dir; if another live process holds it, uses a per-process one."""
    path = root / _spool.spool_dir_name(run_id, offline)
    existed = _spool.is_spool_dir(path)
    try:
        return _spool.Spool.create(path, meta), existed
    except _spool.SpoolBusy:
        path = path.with_name(f"{path.name}-{os.getpid()}")
        existed = _spool.is_spool_dir(path)
        return _spool.Spool.create(path, meta), existed


def _register(run: Run, problems: list[str]) -> Run:
    for p in problems:
        run._warn(p)
    _state.register(run)
    return run
