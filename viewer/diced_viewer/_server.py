"""Run the viewer app with uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import errno
import socket
import threading
import time
import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

import uvicorn

from diced.errors import InvalidInputError, StorageError
from diced_viewer._app import create_app
from diced_viewer._limits import ServerLimits
from diced_viewer._neuroglancer import LocalNeuroglancer
from diced_viewer._protocol import protocol_class
from diced_viewer._security import AccessPolicy, is_loopback

if TYPE_CHECKING:
    from diced.store import DicedStore

__all__ = ["ExposedServerWarning", "ViewerServer", "exposure_warning"]

_START_TIMEOUT = 20.0
_BACKLOG = 2048


class ExposedServerWarning(UserWarning):
    """A viewer listens on an address other machines can reach."""


def exposure_warning(host: str, allow_writes: bool) -> str | None:
    """What a server on ``host`` exposes, or ``None`` on a loopback address."""
    if is_loopback(host):
        return None
    reach = "every machine that can reach this one" if host.strip("[]") in ("0.0.0.0", "::") \
        else f"every machine that can reach {host}"
    what = "read every repo and version, and (with the token) change them" if allow_writes \
        else "read every repo and version"
    return (f"the viewer listens on {host}: {reach} can {what}, over unencrypted HTTP. "
            "Prefer the default 127.0.0.1 with an SSH tunnel (ssh -L 8000:127.0.0.1:8000 "
            "HOST), or a TLS proxy that authenticates users.")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a diced error naming the fix."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer from 0 to 65535, not {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: a port held by another server must fail here, not be shared.
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StorageError(f"port {port} on {host} is already in use; pick another port "
                               "(or port=0 for a free one)") from exc
        raise StorageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class ViewerServer:
    """The web viewer of one store, listening on ``host:port``.

    :meth:`start` serves in a background thread; :meth:`run` serves in the calling thread
    until interrupted. :meth:`stop` closes the socket and joins the thread, so nothing is
    left behind. The constructor binds the socket, so a port in use fails here with
    :class:`~diced.StorageError`.

    Who may use it (docs/viewer.md, "Security model"): the server answers only requests
    whose ``Host`` is the bound address, a loopback name or one of ``allowed_hosts``;
    changes come only from its own pages and from programs, never from other web pages;
    ``cors_origins`` (``"*"``: any) may read ``/zarr/`` from other origins. With ``token``
    every change must carry ``Authorization: Bearer TOKEN``; writes on an address other
    than loopback need one. A non-loopback address warns with
    :class:`ExposedServerWarning`. ``limits`` bound its memory and body waits.
    ``neuroglancer_port`` (``0``: any free port) also starts a local neuroglancer on
    127.0.0.1 (``/neuroglancer/{repo}/{version}`` opens one; its origin may read ``/zarr/``).

    Raises
    ------
    InvalidInputError
        Writes on a non-loopback address without a token, or a bad option.
    StorageError
        The port is in use, or the address cannot be bound.
    """

    def __init__(self, store: DicedStore, host: str = "127.0.0.1", port: int = 8000, *,
                 allow_writes: bool = False, allowed_hosts: Iterable[str] = (),
                 cors_origins: Iterable[str] = (), token: str | None = None,
                 limits: ServerLimits | None = None,
                 neuroglancer_port: int | None = None) -> None:
        if allow_writes and token is None and not is_loopback(host):
            raise InvalidInputError(
                f"writes on {host} (not a loopback address) need a token: pass --token "
                "(or token=...) with a secret of 16+ characters; clients then send "
                "'Authorization: Bearer TOKEN'")
        policy = AccessPolicy.for_server(host, allowed_hosts=allowed_hosts,
                                         cors_origins=cors_origins, token=token)
        warning = exposure_warning(host, allow_writes)
        if warning is not None:
            warnings.warn(warning, ExposedServerWarning, stacklevel=2)
        self.store = store
        self.host = host
        self.allow_writes = allow_writes
        self.limits = limits or ServerLimits()
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.app = create_app(store, allow_writes=allow_writes, policy=policy,
                              limits=self.limits)
        self.neuroglancer: LocalNeuroglancer | None = None
        if neuroglancer_port is not None:
            self.neuroglancer = LocalNeuroglancer(neuroglancer_port)
            self.app.state.neuroglancer = self.neuroglancer
            self.allow_cors_origin(self.neuroglancer.origin)
        # Requests still running after 5 s of shutdown are cancelled, so stop() is bounded.
        # h11 always (not httptools when installed): malformed requests get JSON errors, and
        # a request head gets as long to arrive as a paused body.
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                http=protocol_class(2 * self.limits.body_timeout),
                                backlog=_BACKLOG, h11_max_incomplete_event_size=64 * 2**10)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def policy(self) -> AccessPolicy:
        """The hosts, origins and token this server accepts."""
        policy: AccessPolicy = self.app.state.access_policy
        return policy

    def allow_cors_origin(self, origin: str) -> None:
        """Let pages of ``origin`` (``scheme://host:port``) read ``/zarr/`` from now on.

        For programs that serve a page next to the viewer, such as a local neuroglancer.
        """
        self.app.state.access_policy = self.policy.with_cors_origin(origin)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<ViewerServer {self.url} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C) or :meth:`stop`."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self) -> Self:
        """Serve in a daemon thread; return once the server accepts connections."""
        self._thread = threading.Thread(target=self.run, name=f"diced-viewer-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise StorageError(f"the viewer did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        self._server.should_exit = True
        if self.neuroglancer is not None:
            self.neuroglancer.stop()
            self.neuroglancer = None
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
