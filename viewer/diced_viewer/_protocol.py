"""uvicorn's h11 protocol with diced's JSON errors and a deadline for request heads.

A malformed request line or header (a non-numeric ``Content-Length``, headers too large)
never reaches the app: uvicorn answers 400 itself, in plain text. This subclass sends the
same status as ``{"error": ..., "status": 400}``, like every other error of the server.
uvicorn also waits forever for a request head that never ends (one byte a minute keeps a
connection open); here a connection whose next request head is not complete within
``head_timeout`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

__all__ = ["DicedH11Protocol", "protocol_class"]

_MESSAGE = ("the request is not valid HTTP/1.1 (a malformed request line or header, such as "
            "a Content-Length that is not a number, or headers over 64 KiB)")


class DicedH11Protocol(H11Protocol):
    """:class:`H11Protocol` with a JSON 400 and a deadline for each request head."""

    head_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self.loop.call_later(self.head_timeout, self._head_deadline, self.cycle)

    def _head_deadline(self, cycle: RequestResponseCycle | None) -> None:
        # Still the same cycle: no new request head was completed since the deadline was set.
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # Same sequence as uvicorn's own: status, body, end, close.
        body = json.dumps({"error": _MESSAGE, "status": 400}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def protocol_class(head_timeout: float) -> type[DicedH11Protocol]:
    """:class:`DicedH11Protocol` with its own request-head deadline, for one server."""
    return type("DicedH11Protocol", (DicedH11Protocol,), {"head_timeout": head_timeout})
