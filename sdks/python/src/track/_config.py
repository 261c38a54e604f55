"""``run.config`` and ``run.summary``: dict-like views that queue their changes for the server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from ._values import to_json_value

Notify = Callable[[dict[str, Any]], None]
Warn = Callable[[str], None]


class _AttrMapping(MutableMapping[str, Any]):
    """Attribute access on top of a mapping: ``cfg.lr`` reads and writes ``cfg["lr"]``."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
        else:
            try:
                del self[name]
            except KeyError:
                raise AttributeError(name) from None


class Config(_AttrMapping):
    """The run's configuration (hyperparameters).

    Values are copied into plain JSON types when set; setting or updating keys sends them to the
    server with the next batch as a shallow merge (top-level keys replace). Mutating a nested value
    in place after reading it is not seen: assign the key again. Deleting a key sends ``null``.
    """

    def __init__(
        self, notify: Notify, warn: Warn, initial: Mapping[str, Any] | None = None
    ) -> None:
        self._notify = notify
        self._warn = warn
        self._lock = threading.Lock()
        self._data: dict[str, Any] = dict(initial or {})

    def _clean(self, changes: Mapping[Any, Any]) -> dict[str, Any]:
        problems: list[str] = []
        out = {str(k): to_json_value(v, f"config.{k}", problems) for k, v in changes.items()}
        for p in problems:
            self._warn(p)
        return out

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]
        self._notify({key: None})

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Sets several keys at once; they travel in one batch."""
        changes = dict(other, **kwargs)
        if not changes:
            return
        clean = self._clean(changes)
        with self._lock:
            self._data.update(clean)
        self._notify(clean)

    def setdefaults(self, other: Mapping[str, Any]) -> None:
        """Sets the keys of ``other`` that are not set yet."""
        with self._lock:
            missing = {k: v for k, v in other.items() if k not in self._data}
        self.update(missing)

    def as_dict(self) -> dict[str, Any]:
        """A copy of the current configuration."""
        with self._lock:
            return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self.as_dict()!r})"


class Summary(_AttrMapping):
    """The run's summary: per metric key the value at its highest logged step, overlaid by values
    set explicitly.

    ``summary[k] = v`` sets an explicit value, which the server keeps even when more points are
    logged later; ``del summary[k]`` removes the explicit value, so the logged one shows again.
    """

    def __init__(
        self,
        notify: Notify,
        warn: Warn,
        logged: Callable[[], dict[str, float]],
        explicit: Mapping[str, Any] | None = None,
    ) -> None:
        self._notify = notify
        self._warn = warn
        self._logged = logged
        self._lock = threading.Lock()
        self._explicit: dict[str, Any] = dict(explicit or {})

    def _view(self) -> dict[str, Any]:
        view: dict[str, Any] = self._logged()
        with self._lock:
            view.update(self._explicit)
        return view

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            if key in self._explicit:
                return self._explicit[key]
        return self._logged()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        with self._lock:
            if key not in self._explicit:
                raise KeyError(key)
            del self._explicit[key]
        self._notify({key: None})

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Sets several explicit values at once."""
        changes = dict(other, **kwargs)
        if not changes:
            return
        problems: list[str] = []
        clean = {str(k): to_json_value(v, f"summary.{k}", problems) for k, v in changes.items()}
        for p in problems:
            self._warn(p)
        # Locally a non-finite float stays a float; only the wire format spells it as a string.
        local = {str(k): v if isinstance(v, float) else clean[str(k)] for k, v in changes.items()}
        with self._lock:
            self._explicit.update(local)
        self._notify(clean)

    def as_dict(self) -> dict[str, Any]:
        """A copy of what the summary holds now."""
        return self._view()

    def __repr__(self) -> str:
        return f"Summary({self._view()!r})"
