"""uvicorn's h11 protocol, answering requests it cannot parse with diced's JSON error body.

A malformed request line or header (a non-numeric ``Content-Length``, headers too large)
never reaches the app: uvicorn answers 400 itself, in plain text. This subclass sends the
same status as ``{"error": ..., "status": 400}``, like every other error of the server.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["JsonErrorH11Protocol"]

_MESSAGE = ("the request is not valid HTTP/1.1 (a malformed request line or header, such as "
            "a Content-Length that is not a number, or headers over 64 KiB)")


class JsonErrorH11Protocol(H11Protocol):
    """:class:`H11Protocol` whose unparseable-request 400 has a JSON body."""

    def send_400_response(self, msg: str) -> None:
        # Same sequence as uvicorn's own: status, body, end, close.
        body = json.dumps({"error": _MESSAGE, "status": 400}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
