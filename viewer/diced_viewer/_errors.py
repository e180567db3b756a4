"""JSON error responses: every failure reaches the client as ``{"error": ..., "status": ...}``."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from diced.errors import (
    AlreadyExistsError,
    ConflictError,
    DicedException,
    InvalidInputError,
    LockedError,
    NotFoundError,
)

__all__ = ["ApiError", "TooLarge", "WritesDisabled", "exception_handlers"]

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
    """An error with its HTTP status and a message for the client."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class TooLarge(ApiError):
    """A request or response would exceed a size limit (HTTP 413, the limit in the message)."""

    status = 413


class WritesDisabled(ApiError):
    """A write on a server started without ``--allow-writes`` (HTTP 403)."""

    status = 403

    def __init__(self) -> None:
        super().__init__("this viewer is read-only; restart it with --allow-writes "
                         "(or serve(allow_writes=True)) to change the store")


def _json(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers={"Access-Control-Allow-Origin": "*"})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json(exc.status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _json(exc.status_code, exc.detail or "error")


async def _diced_error(request: Request, exc: Exception) -> Response:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)
    if status == 500:
        _log.error("diced error serving %s", request.url.path, exc_info=exc)
        return _json(500, f"the store failed: {exc}")
    return _json(status, " ".join(str(exc).split()))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server log, never to the client.
    _log.error("unexpected error serving %s", request.url.path, exc_info=exc)
    return _json(500, "internal server error; see the server log")


exception_handlers = {
    ApiError: _api_error,
    HTTPException: _http_error,
    DicedException: _diced_error,
    Exception: _unexpected,
}
