"""A latency-adding, request-counting HTTP reverse proxy in front of an object-store emulator.

``python -m benchmarks.cloud.proxy --upstream URL --latency-ms 20 --port P`` listens on
127.0.0.1:P, waits the given latency before forwarding each request to ``URL`` unchanged
(method, raw path and query, headers, body), and returns the emulator's response unchanged.
So every request costs a fixed round trip, as to a real bucket, and a client's figures show
its concurrency and request count rather than the emulator's speed.

``GET /__proxy__/count`` answers ``{"requests": n}``: the requests forwarded so far (the
cloud benchmark reads it before and after an operation to count that operation's requests).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

__all__ = ["COUNT_PATH", "main"]

#: Path of the proxy's own counter (never forwarded).
COUNT_PATH = "/__proxy__/count"
#: Headers that describe one hop's connection or framing, not the message, and the host
#: (the emulator's, as a reverse proxy does; fake-gcs-server routes by it): aiohttp sets
#: its own on each side.
_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate", "content-length"}


class _Proxy:
    def __init__(self, upstream: str, latency: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.latency = latency
        self.requests = 0
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        # No connection limit: the proxy must never be what bounds a client's concurrency.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None))

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == COUNT_PATH:
            return web.json_response({"requests": self.requests})
        self.requests += 1
        body = await request.read()
        if self.latency:
            await asyncio.sleep(self.latency)
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in _HOP)
        assert self.session is not None
        async with self.session.request(
                request.method, URL(self.upstream + request.raw_path, encoded=True),
                headers=headers, data=body if body else None, allow_redirects=False,
                skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent")) as answer:
            payload = await answer.read()
            out = CIMultiDict((k, v) for k, v in answer.headers.items()
                              if k.lower() not in _HOP)
            if request.method == "HEAD":
                # No body, but the object's size, as the emulator said it.
                if "Content-Length" in answer.headers:
                    out["Content-Length"] = answer.headers["Content-Length"]
                return web.Response(status=answer.status, headers=out)
            return web.Response(status=answer.status, headers=out, body=payload)


def main(argv: list[str] | None = None) -> int:
    """Run the proxy until killed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cloud.proxy")
    parser.add_argument("--upstream", required=True, help="emulator URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    proxy = _Proxy(args.upstream, args.latency_ms / 1000)
    app = web.Application(client_max_size=1 << 30)
    app.on_startup.append(proxy.start)
    app.on_cleanup.append(proxy.stop)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
