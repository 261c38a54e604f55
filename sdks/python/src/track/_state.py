"""The process-wide run registry: ``track.run``, and finishing runs at interpreter exit."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import Run

_current: Run | None = None
_active: list[Run] = []
_state_lock = threading.Lock()
_hooks_installed = False
_uncaught_exception = False


def set_current(run: Run | None) -> None:
    global _current
    _current = run
    package = sys.modules.get(__package__ or "track")
    if package is not None:
        package.run = run  # type: ignore[attr-defined]


def forget(run: Run) -> None:
    with _state_lock:
        if run in _active:
            _active.remove(run)
        if _current is run:
            set_current(None)


def current_run() -> Run | None:
    return _current


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(tp: Any, value: Any, tb: Any) -> None:
        global _uncaught_exception
        _uncaught_exception = True
        previous(tp, value, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_all)


def _finish_all() -> None:
    for run in list(_active):
        try:
            run.finish(exit_code=1 if _uncaught_exception else 0)
        except Exception:
            pass


def register(run: Run) -> None:
    """Makes ``run`` the current run and finishes it at exit if the program does not."""
    with _state_lock:
        _install_hooks()
        _active.append(run)
        set_current(run)
