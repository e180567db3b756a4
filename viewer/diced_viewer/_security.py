"""Who may reach the server, and who may change the store through it.

:class:`AccessGuard` is an ASGI middleware in front of every route (pages, ``/api``,
``/zarr``, and any route added later), applying the server's :class:`AccessPolicy`:

- the ``Host`` header must name this server (DNS rebinding gets 421);
- a state-changing request (any method but GET, HEAD, OPTIONS) is refused unless it comes
  from the server's own pages or from a program: a browser's ``Origin`` must be this
  server's, ``Sec-Fetch-Site`` must be ``same-origin``, and the body must be
  ``application/json`` or ``application/octet-stream`` (never the form and ``text/plain``
  types a foreign page can send without a CORS preflight; only DVID keyvalue writes from
  programs, which send neither ``Origin`` nor ``Sec-Fetch-Site``, may carry any type, since
  DVID stores those bodies as they are); with a token, it must carry
  ``Authorization: Bearer TOKEN``;
- ``/zarr/`` answers cross-origin reads only for the origins the policy lists;
- every response says it may not be framed, sniffed or embedded by another site.

docs/viewer.md states the model for users.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from diced.errors import InvalidInputError
from diced_viewer._errors import error_response

__all__ = ["WRITE_MEDIA_TYPES", "AccessGuard", "AccessPolicy", "is_loopback", "media_type"]

#: Body types a state-changing request may carry; a request without one counts as
#: octet-stream (RFC 9110 §8.3), which is what DVID clients send raw data as.
WRITE_MEDIA_TYPES = frozenset({"application/json", "application/octet-stream"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: DVID keyvalue writes store their body as it is, of whatever type DVID clients label it;
#: programs (no Origin, no Sec-Fetch-Site) may send them with any Content-Type.
_OPAQUE_WRITES = re.compile(r"^/api/node/[^/]+/[^/]+/(key/.+|keyvalues)$")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_ZARR_PREFIX = "/zarr/"
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
    "Access-Control-Max-Age": "600",
}
# Sent with every response: no framing (a foreign page cannot overlay the lock button), no
# content sniffing, no embedding by other sites (CORS reads of /zarr/ are unaffected).
_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _host_name(value: str) -> str:
    """The name part of a ``Host`` value, lower case, IPv6 in brackets: ``[::1]:80`` → ``[::1]``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _normal_netloc(netloc: str, scheme: str) -> str:
    """``host[:port]`` in lower case, without the scheme's default port."""
    netloc = netloc.lower()
    for default in ((":80",) if scheme == "http" else (":443",) if scheme == "https" else ()):
        if netloc.endswith(default):
            return netloc.removesuffix(default)
    return netloc


def normal_origin(value: str) -> str:
    """``scheme://host[:port]`` of a web origin, or ``*``; :class:`InvalidInputError` if neither."""
    value = value.strip()
    if value == "*":
        return value
    parts = urlsplit(value.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or \
            parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidInputError(f"{value!r} is not a web origin: give scheme://host[:port], "
                                "e.g. http://127.0.0.1:9000, or '*' for any origin")
    return f"{parts.scheme}://{_normal_netloc(parts.netloc, parts.scheme)}"


def media_type(content_type: str | None) -> str | None:
    """The media type of a ``Content-Type`` value without parameters, lower case."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class AccessPolicy:
    """Which hosts, origins and credentials one viewer server accepts.

    Build it with :meth:`for_server`, which validates and normalises the options.
    """

    host_names: frozenset[str]
    any_ip_literal: bool = False
    cors_origins: frozenset[str] = field(default_factory=frozenset)
    token: str | None = None

    @classmethod
    def for_server(cls, bind_host: str, *, allowed_hosts: Iterable[str] = (),
                   cors_origins: Iterable[str] = (), token: str | None = None) -> AccessPolicy:
        """The policy of a server bound to ``bind_host``.

        It answers to the loopback names, the bound address, and ``allowed_hosts`` (names a
        proxy forwards, given without a port). A server bound to a wildcard address
        (``0.0.0.0``, ``::``) also answers to this machine's host name and to any IP
        address, since a DNS-rebinding page can only reach it through a name.
        ``cors_origins`` may read ``/zarr/`` from other origins (``*``: any).

        Raises
        ------
        InvalidInputError
            An allowed host that is not a host name, an origin that is not
            ``scheme://host[:port]``, or a token shorter than 16 characters.
        """
        names = set(_LOOPBACK_NAMES)
        bound = bind_host.strip("[]").lower()
        names.add(f"[{bound}]" if ":" in bound else bound)
        wildcard = _is_wildcard(bind_host)
        if not is_loopback(bind_host):
            names.add(socket.gethostname().lower())
        for host in allowed_hosts:
            name = _host_name(host)
            if not name or any(c in host for c in "/@ \t*") or name.startswith("."):
                raise InvalidInputError(f"--allowed-host {host!r} is not a host name: give a "
                                        "name such as data.example.org (without scheme or "
                                        "path)")
            names.add(name.rstrip("."))
        if token is not None and len(token) < 16:
            raise InvalidInputError("the write token must have at least 16 characters; make "
                                    "one with: python -c 'import secrets; "
                                    "print(secrets.token_urlsafe())'")
        return cls(frozenset(names), wildcard,
                   frozenset(normal_origin(o) for o in cors_origins), token)

    def with_cors_origin(self, origin: str) -> AccessPolicy:
        """This policy with one more origin allowed to read ``/zarr/``."""
        return AccessPolicy(self.host_names, self.any_ip_literal,
                            self.cors_origins | {normal_origin(origin)}, self.token)

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is meant for this server."""
        if not host:
            return False
        name = _host_name(host)
        return name in self.host_names or (self.any_ip_literal and _ip_literal(name))

    def same_origin(self, origin: str, host: str) -> bool:
        """Whether the page that sent ``Origin: origin`` was served by this server as ``host``."""
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            return False  # includes "null", sent by sandboxed frames and some redirects
        mine = host.strip().lower()
        for default in (":80", ":443"):
            mine = mine.removesuffix(default)
        return _normal_netloc(parts.netloc, parts.scheme) == mine

    def cors_origin(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``; ``None``: not allowed."""
        if "*" in self.cors_origins:
            return "*"
        try:
            return origin if normal_origin(origin) in self.cors_origins else None
        except InvalidInputError:
            return None

    def token_matches(self, authorization: str | None) -> bool:
        """Whether ``Authorization`` carries the token (always true without a token)."""
        if self.token is None:
            return True
        expected = f"Bearer {self.token}".encode()
        return authorization is not None and hmac.compare_digest(
            authorization.strip().encode("utf-8", "replace"), expected)


def _write_refusal(policy: AccessPolicy, method: str, headers: Headers,
                   host: str, path: str = "") -> tuple[int, str, dict[str, str]] | None:
    """Why a state-changing request is refused (status, message, headers), or ``None``."""
    origin = headers.get("origin")
    if origin is not None and not policy.same_origin(origin, host):
        return 403, (f"{method} from the web page at {origin[:100]!r} refused: only this "
                     "server's own pages and programs (which send no Origin header) may "
                     "change the store"), {}
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return 403, (f"{method} from a {site[:20]} page refused: only this server's own pages "
                     "and programs may change the store"), {}
    kind = media_type(headers.get("content-type"))
    from_program = origin is None and site is None
    if kind is not None and kind not in WRITE_MEDIA_TYPES \
            and not (from_program and _OPAQUE_WRITES.match(path)):
        return 415, (f"{method} with Content-Type {kind[:80]!r} refused: send "
                     "application/json or application/octet-stream, as the API documents"), {}
    if not policy.token_matches(headers.get("authorization")):
        return 401, ("this server needs its token for changes: send 'Authorization: Bearer "
                     "TOKEN' (in the pages, open the address with ?token=TOKEN once)"), \
            {"WWW-Authenticate": 'Bearer realm="diced"'}
    return None


class AccessGuard:
    """ASGI middleware applying the :class:`AccessPolicy` at ``app.state.access_policy``.

    The policy is read per request, so :meth:`ViewerServer.allow_cors_origin` takes effect
    at once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        policy: AccessPolicy = scope["app"].state.access_policy
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        origin = headers.get("origin")
        if scope["type"] == "websocket":
            if policy.host_allowed(host) and (origin is None or policy.same_origin(origin, host)):
                await self.app(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        extra = dict(_ALWAYS)
        method: str = scope["method"]
        is_zarr = scope["path"].startswith(_ZARR_PREFIX)
        refusal: tuple[int, str, dict[str, str]] | None = None
        if not policy.host_allowed(host):
            refusal = 421, (f"this server does not answer to host {host[:100]!r}; it answers "
                            f"to {', '.join(sorted(policy.host_names))} (add names with "
                            "diced serve --allowed-host NAME)"), {}
        elif method not in _SAFE_METHODS:
            refusal = _write_refusal(policy, method, headers, host, scope["path"])
        elif is_zarr and origin is not None:
            allowed = policy.cors_origin(origin) or (
                origin if policy.same_origin(origin, host) else None)
            if allowed is not None:
                extra.update({"Access-Control-Allow-Origin": allowed, **_CORS_HEADERS})
            if method == "OPTIONS":  # a CORS preflight
                refusal = (204, "", {}) if allowed is not None else (
                    403, (f"the page at {origin[:100]!r} may not read /zarr/ here: start diced "
                          "serve with --cors-origin ORIGIN (or --cors '*') to allow it"), {})
            extra["Vary"] = "Origin"
        elif is_zarr and method == "OPTIONS":
            refusal = 204, "", {"Allow": "GET, HEAD, OPTIONS"}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    response_headers[name] = value
            await send(message)

        if refusal is None:
            await self.app(scope, receive, send_with_headers)
            return
        status, message, refusal_headers = refusal
        extra.update(refusal_headers)
        if status == 204:
            await send_with_headers({"type": "http.response.start", "status": 204,
                                     "headers": []})
            await send_with_headers({"type": "http.response.body", "body": b""})
            return
        await error_response(status, message)(scope, receive, send_with_headers)
