"""Trackstack: track ML experiments.

>>> import track
>>> with track.init(project="mnist", config={"lr": 1e-3}) as run:
...     for step in range(100):
...         run.log({"loss": 1 / (step + 1)})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _state, errors
from ._http import __version__
from ._init import init
from ._run import FinishResult, MetricDefinition, Run, TrackstackWarning
from ._settings import Settings
from ._sync import SyncReport, sync
from .api import Api, ApiArtifact, ApiRun, Project

#: The current run (set by :func:`init`, cleared when it finishes), like ``wandb.run``.
run: Run | None = None


def _current() -> Run:
    r = _state.current_run()
    if r is None:
        raise errors.UsageError("call track.init() first")
    return r


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``run.log`` on the current run."""
    _current().log(data, step=step, commit=commit)


def finish(exit_code: int = 0, timeout: float | None = None) -> FinishResult | None:
    """Finishes the current run, if there is one."""
    r = _state.current_run()
    return r.finish(exit_code=exit_code, timeout=timeout) if r is not None else None


def log_artifact(path: str, **kwargs: Any) -> str | None:
    """``run.log_artifact`` on the current run."""
    return _current().log_artifact(path, **kwargs)


def define_metric(name: str, **kwargs: Any) -> MetricDefinition:
    """``run.define_metric`` on the current run."""
    return _current().define_metric(name, **kwargs)


__all__ = [
    "Api",
    "ApiArtifact",
    "ApiRun",
    "FinishResult",
    "MetricDefinition",
    "Project",
    "Run",
    "Settings",
    "SyncReport",
    "TrackstackWarning",
    "__version__",
    "define_metric",
    "errors",
    "finish",
    "init",
    "log",
    "log_artifact",
    "run",
    "sync",
]
