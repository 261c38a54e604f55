"""Exceptions raised by the SDK.

Server errors (``{"error": {"code", "message", "field"}}``, see docs/api.md) become the subclass
of :class:`TrackstackError` registered for their ``code``; the ``code``, ``message``, ``field`` and
HTTP ``status`` stay available as attributes.
"""

from __future__ import annotations

from typing import Any


class TrackstackError(Exception):
    """Base class of every error the SDK raises on purpose."""

    #: The server's error code this class stands for (``None`` for client-side errors).
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.status = status

    def __str__(self) -> str:
        parts = []
        if self.code:
            parts.append(self.code)
        if self.status:
            parts.append(f"HTTP {self.status}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        suffix = f" (field: {self.field})" if self.field else ""
        return f"{prefix}{self.message}{suffix}"


class UsageError(TrackstackError, RuntimeError):
    """The SDK was used in an unsupported way (e.g. ``track.log`` before ``track.init``)."""


class TrackstackConnectionError(TrackstackError, ConnectionError):
    """The server could not be reached (connection refused, DNS failure, timeout)."""


class InvalidArgumentError(TrackstackError, ValueError):
    code = "invalid_argument"


class MalformedRequestError(TrackstackError):
    code = "malformed_request"


class NotFoundError(TrackstackError, LookupError):
    code = "not_found"


class MethodNotAllowedError(TrackstackError):
    code = "method_not_allowed"


class AlreadyExistsError(TrackstackError):
    code = "already_exists"


class ConflictError(TrackstackError):
    code = "conflict"


class PayloadTooLargeError(TrackstackError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(TrackstackError):
    code = "unsupported_media_type"


class UnavailableError(TrackstackError):
    code = "unavailable"


class InternalError(TrackstackError):
    code = "internal"


_BY_CODE: dict[str, type[TrackstackError]] = {
    str(cls.code): cls
    for cls in (
        InvalidArgumentError,
        MalformedRequestError,
        NotFoundError,
        MethodNotAllowedError,
        AlreadyExistsError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnavailableError,
        InternalError,
    )
}

# Used when a response carries no readable error body (e.g. a proxy in front of the server).
_BY_STATUS: dict[int, str] = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


def from_response(status: int, body: Any) -> TrackstackError:
    """The exception for a non-2xx response whose parsed body is ``body`` (or ``None``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message") or code)
        field = error.get("field") if isinstance(error.get("field"), str) else None
    else:
        code = _BY_STATUS.get(status, "internal" if status >= 500 else "")
        message = f"HTTP {status}" + (f": {body}" if isinstance(body, str) and body else "")
        field = None
    cls = _BY_CODE.get(code, TrackstackError)
    return cls(message, code=code or None, field=field, status=status)


__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "InternalError",
    "InvalidArgumentError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "TrackstackConnectionError",
    "TrackstackError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
    "UsageError",
    "from_response",
]
