"""Turning user values into what the API accepts: metric values, keys, JSON documents, names.

The limits mirror docs/api.md ("Limits"). Checking them here keeps one bad key from getting a whole
batch rejected by the server, which validates every batch as a unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

METRIC_KEY_MAX_BYTES = 256
STEP_MAX = (1 << 53) - 1
TEXT_MAX_BYTES = 256
NOTES_MAX_BYTES = 64 * 1024
TAGS_MAX = 256
TAG_MAX_BYTES = 128
NAME_MAX_CHARS = 128
RUN_ID_MAX_CHARS = 64

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# Unicode category Cc, which is what the server's `char::is_control` rejects.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

NAN = "NaN"
POS_INF = "Infinity"
NEG_INF = "-Infinity"
_DECODE = {NAN: math.nan, POS_INF: math.inf, NEG_INF: -math.inf}


class Skip(Exception):
    """A value that cannot be a metric; the message says why."""


def to_metric_value(value: Any) -> float:
    """Returns ``value`` as a float, or raises :class:`Skip`.

    Accepts bool, int, float (NaN and infinities too) and anything whose ``.item()`` returns one of
    those (numpy scalars, 0-d arrays and one-element tensors), without importing numpy or torch.
    """
    if isinstance(value, (float, int)):  # bool is an int
        try:
            return float(value)
        except OverflowError:
            raise Skip(f"{value!r} is too large for a 64-bit float") from None
    item = getattr(value, "item", None)
    if item is not None and callable(item) and not isinstance(value, (str, bytes)):
        try:
            inner = item()
        except Exception as exc:  # e.g. numpy's "can only convert an array of size 1"
            raise Skip(f"{type(value).__name__}.item() failed: {exc}") from None
        if isinstance(inner, (float, int)):
            try:
                return float(inner)
            except OverflowError:
                raise Skip(f"{inner!r} is too large for a 64-bit float") from None
        if isinstance(inner, complex):
            raise Skip("complex numbers are not metric values")
    raise Skip(f"values of type {type(value).__name__} are not metric values")


def key_problem(key: str) -> str | None:
    """Says why ``key`` cannot be a metric key, or returns ``None`` when it can."""
    if not key:
        return "metric keys must not be empty"
    if key.startswith("_"):
        return f"metric key {key!r} starts with '_', which the server reserves"
    if len(key.encode("utf-8", "surrogatepass")) > METRIC_KEY_MAX_BYTES:
        return f"metric key {key[:40]!r}… is longer than {METRIC_KEY_MAX_BYTES} bytes"
    if _CONTROL_RE.search(key):
        return f"metric key {key!r} contains control characters"
    return None


def flatten(data: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested mappings, joining keys with ``/``: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    out: dict[str, Any] = {}
    _flatten_into(out, data, prefix)
    return out


def _flatten_into(out: dict[str, Any], data: Mapping[Any, Any], prefix: str) -> None:
    for k, v in data.items():
        key = prefix + (k if type(k) is str else str(k))
        if isinstance(v, Mapping):
            _flatten_into(out, v, key + "/")
        else:
            out[key] = v


def encode_float(v: float) -> float | str:
    """A metric value for JSON: finite floats stay numbers, the others become the API's strings."""
    if v != v:
        return NAN
    if v == math.inf:
        return POS_INF
    if v == -math.inf:
        return NEG_INF
    return v


def decode_float(v: Any) -> float | None:
    """The inverse of :func:`encode_float` for values read from the API; ``None`` stays."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return _DECODE[v]
        except KeyError:
            return float(v)
    return float(v)


def to_step(step: Any) -> int:
    """Validates a user-given step; raises ``ValueError`` with the reason."""
    if isinstance(step, bool):
        raise ValueError(f"step must be an integer, got {step!r}")
    if isinstance(step, int):
        value = step
    else:
        index = getattr(step, "__index__", None)
        if index is not None:
            value = index()
        elif isinstance(step, float) and step.is_integer():
            value = int(step)
        else:
            item = getattr(step, "item", None)
            inner = item() if callable(item) else None
            if isinstance(inner, int) and not isinstance(inner, bool):
                value = inner
            else:
                raise ValueError(f"step must be an integer, got {step!r}")
    if not 0 <= value <= STEP_MAX:
        raise ValueError(f"step must be between 0 and 2**53 - 1, got {value}")
    return value


def to_json_value(value: Any, path: str, problems: list[str]) -> Any:
    """A deep copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    numpy scalars and arrays become Python numbers and lists, tuples and sets become lists,
    non-finite floats become the API's strings and other objects become ``str(obj)``; each lossy
    conversion appends a message to ``problems``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return encode_float(float(value))
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v, f"{path}.{k}", problems) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items: Iterable[Any] = (
            sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        )
        return [to_json_value(v, f"{path}[{i}]", problems) for i, v in enumerate(items)]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy scalars and arrays
        try:
            return to_json_value(tolist(), path, problems)
        except Exception:
            pass
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return to_json_value(item(), path, problems)
        except Exception:
            pass
    problems.append(f"{path}: {type(value).__name__} is not JSON; stored as its str()")
    return str(value)


def check_name(what: str, value: Any, max_chars: int = NAME_MAX_CHARS) -> str:
    """Validates a project, run id or artifact name against ``[A-Za-z0-9._-]``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= max_chars or not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be 1 to {max_chars} characters of A-Z a-z 0-9 . _ -"
        )
    return value


def check_project(value: Any) -> str:
    name = check_name("project name", value)
    if name.startswith((".", "-")):
        raise ValueError(f"project name {name!r} must not start with '.' or '-'")
    return name


def check_text(what: str, value: Any, max_bytes: int = TEXT_MAX_BYTES) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValueError(f"{what} is longer than {max_bytes} bytes")
    if max_bytes <= TEXT_MAX_BYTES and _CONTROL_RE.search(value):
        raise ValueError(f"{what} must not contain control characters")
    return value


def check_tags(tags: Any) -> list[str]:
    """Validates a tag list and removes duplicates, keeping the first occurrence (as the server)."""
    if isinstance(tags, str):
        tags = [tags]
    try:
        items = list(tags)
    except TypeError:
        raise ValueError(f"tags must be a list of strings, got {type(tags).__name__}") from None
    out: list[str] = []
    for tag in items:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"every tag must be a non-empty string, got {tag!r}")
        check_text(f"tag {tag[:40]!r}", tag, TAG_MAX_BYTES)
        if tag not in out:
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise ValueError(f"a run has at most {TAGS_MAX} tags, got {len(out)}")
    return out


def sanitize_name(value: str, fallback: str = "artifact") -> str:
    """Maps any string onto the artifact-name charset (used for default artifact names)."""
    cleaned = _NOT_NAME_CHAR.sub("_", value)[:NAME_MAX_CHARS]
    return cleaned or fallback
