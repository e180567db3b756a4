"""Bounds on what requests may hold: memory across all requests, and time to send a body.

Handlers that hold large buffers (raw subvolumes, planes, zarr chunks, files) take a
:class:`Lease` of that many bytes from the server's :class:`ByteBudget` before they
allocate, and give it back once the response is sent. A request that cannot get its lease
within :attr:`ServerLimits.queue_wait` seconds gets 503 with ``Retry-After``; one that
needs more than the whole budget gets 413. :class:`BodyTimeout` answers 408 when a client
stops sending a request body it announced.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from diced.errors import InvalidInputError
from diced_viewer._errors import ApiError, Busy, TooLarge
from diced_viewer._security import media_type

__all__ = ["BodyTimeout", "ByteBudget", "Lease", "LeasedResponse", "MiB", "ServerLimits",
           "budget", "hold", "leased", "read_body"]

MiB = 2**20


@dataclass(frozen=True)
class ServerLimits:
    """Limits of one viewer server (``diced serve`` options in brackets).

    Attributes
    ----------
    memory_budget
        Bytes of request and response data all requests together may hold at once
        [``--memory-budget`` MiB]. A request that needs more (a raw write of more than
        the budget) gets 413.
    slab_bytes
        Largest piece a streamed raw read holds; it holds two (one read, one sending).
    queue_wait
        Seconds a request waits for its share of the budget before a 503.
    body_timeout
        Seconds a request body may pause before the request fails with 408
        [``--body-timeout``].
    """

    memory_budget: int = 1024 * MiB
    slab_bytes: int = 16 * MiB
    queue_wait: float = 10.0
    body_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.memory_budget, int) or self.memory_budget < MiB:
            raise InvalidInputError(f"memory_budget must be at least 1 MiB, not "
                                    f"{self.memory_budget!r} bytes")
        if not 64 * 2**10 <= self.slab_bytes <= self.memory_budget // 2:
            raise InvalidInputError("slab_bytes must be from 64 KiB to half the memory budget")
        for name in ("queue_wait", "body_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value <= 3600):
                raise InvalidInputError(f"{name} must be a number of seconds in (0, 3600], "
                                        f"not {value!r}")


class Lease:
    """Bytes taken from a :class:`ByteBudget`; :meth:`release` (idempotent) gives them back."""

    def __init__(self, budget: ByteBudget, nbytes: int) -> None:
        self._budget: ByteBudget | None = budget
        self.nbytes = nbytes

    def release(self) -> None:
        """Return the bytes to the budget (once; later calls do nothing)."""
        if self._budget is not None:
            budget, self._budget = self._budget, None
            budget._give_back(self.nbytes)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()


@dataclass
class _Waiter:
    nbytes: int
    granted: asyncio.Future[None]


class ByteBudget:
    """A count of bytes in flight across requests, granted in arrival order.

    Used from the server's event loop only. First come, first served: a large request at
    the head of the queue is not overtaken by small ones, so it cannot starve.
    """

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self.used = 0
        self._waiters: deque[_Waiter] = deque()

    async def acquire(self, nbytes: int, what: str, *, wait: float | None = None) -> Lease:
        """A lease of ``nbytes``; waits up to ``wait`` (default :attr:`wait`) seconds for them.

        Raises
        ------
        TooLarge
            ``nbytes`` exceeds the whole budget (HTTP 413).
        Busy
            The bytes did not come free in time (HTTP 503 with ``Retry-After``).
        """
        if nbytes > self.limit:
            raise TooLarge(f"{what} needs {nbytes} bytes of memory, more than this server's "
                           f"budget of {self.limit} bytes (diced serve --memory-budget MiB)")
        if nbytes <= 0 or (not self._waiters and self.used + nbytes <= self.limit):
            nbytes = max(nbytes, 0)
            self.used += nbytes
            return Lease(self, nbytes)
        if wait == 0:
            raise self._busy()
        waiter = _Waiter(nbytes, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait if wait is None else wait):
                await waiter.granted
        except BaseException as exc:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._give_back(nbytes)  # granted just as the wait ended
            else:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._grant()  # the next waiter may fit now
            if isinstance(exc, TimeoutError):
                raise self._busy() from None
            raise
        return Lease(self, nbytes)

    def _busy(self) -> Busy:
        return Busy(f"the server is busy: {self.used} of the {self.limit} bytes of its memory "
                    f"budget are in use and {len(self._waiters)} requests wait; retry shortly",
                    retry_after=max(1, math.ceil(self.wait / 4)))

    def _give_back(self, nbytes: int) -> None:
        self.used -= nbytes
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0].nbytes <= self.limit:
            waiter = self._waiters.popleft()
            if waiter.granted.done():
                continue  # cancelled while queued
            self.used += waiter.nbytes
            waiter.granted.set_result(None)


class LeasedResponse(Response):
    """A response that gives its lease back once sent, failed or abandoned."""

    def __init__(self, inner: Response, lease: Lease) -> None:
        self.inner = inner
        self.lease = lease
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.lease.release()


def budget(request: Request) -> ByteBudget:
    """The budget of the server handling ``request``."""
    found: ByteBudget = request.app.state.byte_budget
    return found


async def leased(request: Request, nbytes: int, what: str,
                 produce: Callable[[], Awaitable[Response]]) -> Response:
    """The response ``produce()`` builds, under a lease of ``nbytes`` held until it is sent."""
    lease = await budget(request).acquire(nbytes, what)
    try:
        response = await produce()
    except BaseException:
        lease.release()
        raise
    return LeasedResponse(response, lease)


async def hold(request: Request, nbytes: int, what: str, response: Response) -> Response:
    """``response``, already built, counted under a lease of ``nbytes`` until sent.

    It does not wait: if the budget is taken the response is dropped with a 503.
    """
    lease = await budget(request).acquire(nbytes, what, wait=0)
    return LeasedResponse(response, lease)


async def read_body(request: Request, *, limit: int, expect: str,
                    exact: int | None = None) -> bytearray:
    """The request body, checked against the endpoint's media type ``expect`` and size.

    A missing ``Content-Type`` counts as ``application/octet-stream`` (RFC 9110 §8.3).
    ``exact``: the body must have exactly this many bytes.

    Raises
    ------
    ApiError
        415 for another media type, 413 beyond ``limit``, 400 for a short ``exact`` body.
    """
    kind = media_type(request.headers.get("content-type")) or "application/octet-stream"
    if kind != expect:
        raise ApiError(f"this endpoint takes Content-Type {expect}, not {kind[:80]!r}", 415)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray(exact or 0)
    size = 0
    async for piece in request.stream():
        if size + len(piece) > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes")
        body[size:size + len(piece)] = piece
        size += len(piece)
    if exact is not None and size != exact:
        raise ApiError(f"the body has {size} bytes; this subvolume needs {exact}")
    return body


class BodyTimeout:
    """ASGI middleware: a request body that pauses for ``body_timeout`` seconds gets 408.

    Only reads of an unfinished body are timed; waiting for a disconnect (as streaming
    responses do) is not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits: ServerLimits = scope["app"].state.limits
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(limits.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise ApiError(f"the request body stopped arriving for {limits.body_timeout:g} "
                               "s (shorter than its Content-Length?)", 408,
                               {"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, timed_receive, send)
