"""Environment variables the SDK reads, with their defaults.

Every variable the SDK looks at is named here, so this module is the one place to document them.
Arguments passed to :func:`track.init` or :class:`track.Api` always win over the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Base URL of the Trackstack server, e.g. ``http://127.0.0.1:3000``.
URL = "TRACKSTACK_URL"
#: ``online`` (default), ``offline`` (write only the local spool) or ``disabled`` (do nothing).
MODE = "TRACKSTACK_MODE"
#: Directory for spools of offline runs and of online runs that could not reach the server.
DIR = "TRACKSTACK_DIR"
#: Sent as ``Authorization: Bearer <key>`` when set.
API_KEY = "TRACKSTACK_API_KEY"
#: Project used when :func:`track.init` gets none.
PROJECT = "TRACKSTACK_PROJECT"
#: Optional base URL for the write path (ingest batches and artifact uploads), for deployments
#: that run the ingest role behind its own address; everything else goes to ``TRACKSTACK_URL``.
INGEST_URL = "TRACKSTACK_INGEST_URL"

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_DIR = "trackstack"
DEFAULT_PROJECT = "uncategorized"
MODES = ("online", "offline", "disabled")


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def url(explicit: str | None = None) -> str:
    value = (explicit or _get(URL) or DEFAULT_URL).rstrip("/")
    if not value.startswith(("http://", "https://")):
        source = "url" if explicit else URL
        raise ValueError(f"{source} must start with http:// or https://, got {value!r}")
    return value


def ingest_url() -> str | None:
    value = _get(INGEST_URL)
    if value is None:
        return None
    value = value.rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{INGEST_URL} must start with http:// or https://, got {value!r}")
    return value


def api_key(explicit: str | None = None) -> str | None:
    return explicit or _get(API_KEY)


def project(explicit: str | None = None) -> str:
    return explicit or _get(PROJECT) or DEFAULT_PROJECT


def mode(explicit: str | None = None) -> str:
    value = (explicit or _get(MODE) or "online").lower()
    if value not in MODES:
        source = "mode" if explicit else MODE
        raise ValueError(f"{source} must be one of {', '.join(MODES)}; got {value!r}")
    return value


def directory(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or _get(DIR) or DEFAULT_DIR).expanduser().absolute()
