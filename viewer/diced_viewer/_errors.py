"""JSON error responses: every failure reaches the client as ``{"error": ..., "status": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from diced.errors import (
    AlreadyExistsError,
    ConflictError,
    DicedException,
    InvalidInputError,
    LockedError,
    MergeConflict,
    MergeConflictError,
    NotFoundError,
)

__all__ = ["ApiError", "Busy", "TooLarge", "WritesDisabled", "conflict_json",
           "error_response", "exception_handlers"]

_log = logging.getLogger("diced_viewer")

#: diced's error tree mapped to HTTP statuses; anything else is a 500 without details.
_STATUS: list[tuple[type[DicedException], int]] = [
    (NotFoundError, 404),
    (InvalidInputError, 400),
    (AlreadyExistsError, 409),
    (LockedError, 409),
    (ConflictError, 409),
]


class ApiError(Exception):
    """An error with its HTTP status, a message for the client and extra response headers."""

    status = 400

    def __init__(self, message: str, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers = headers or {}


class TooLarge(ApiError):
    """A request or response would exceed a size limit (HTTP 413, the limit in the message)."""

    status = 413


class Busy(ApiError):
    """The server's memory budget stayed taken for too long (HTTP 503, ``Retry-After``)."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class WritesDisabled(ApiError):
    """A write on a server started without ``--allow-writes`` (HTTP 403)."""

    status = 403

    def __init__(self) -> None:
        super().__init__("this viewer is read-only; restart it with --allow-writes "
                         "(or serve(allow_writes=True)) to change the store")


def error_response(status: int, message: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    """The JSON body every error has: ``{"error": message, "status": status}``."""
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, str(exc), exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "error", exc.headers)


def conflict_json(conflict: MergeConflict) -> dict[str, Any]:
    """A merge conflict as JSON (``chunk`` and ``box`` in numpy axis order)."""
    return {"kind": conflict.kind, "name": conflict.name,
            "chunk": None if conflict.chunk is None else list(conflict.chunk),
            "voxels": conflict.voxels,
            "box": None if conflict.box is None else [list(b) for b in conflict.box],
            "detail": conflict.detail, "message": str(conflict)}


async def _diced_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, MergeConflictError):  # 409, with every conflict for the client
        return JSONResponse({"error": " ".join(str(exc).split()), "status": 409,
                             "conflicts": [conflict_json(c) for c in exc.conflicts]},
                            status_code=409)
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)
    if status == 500:
        _log.error("diced error serving %s", request.url.path, exc_info=exc)
        return error_response(500, f"the store failed: {exc}")
    return error_response(status, " ".join(str(exc).split()))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server log, never to the client.
    _log.error("unexpected error serving %s", request.url.path, exc_info=exc)
    return error_response(500, "internal server error; see the server log")


exception_handlers = {
    ApiError: _api_error,
    HTTPException: _http_error,
    DicedException: _diced_error,
    Exception: _unexpected,
}
