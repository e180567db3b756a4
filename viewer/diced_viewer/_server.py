"""Run the viewer app with uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import errno
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Self

import uvicorn

from diced.errors import InvalidInputError, StorageError
from diced_viewer._app import create_app

if TYPE_CHECKING:
    from diced.store import DicedStore

__all__ = ["ViewerServer"]

_START_TIMEOUT = 20.0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a diced error naming the fix."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer from 0 to 65535, not {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: a port held by another server must fail here, not be shared.
        sock.bind((host, port))
        sock.listen(128)
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
    """

    def __init__(self, store: DicedStore, host: str = "127.0.0.1", port: int = 8000, *,
                 allow_writes: bool = False) -> None:
        self.store = store
        self.host = host
        self.allow_writes = allow_writes
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        # Requests still running after 5 s of shutdown are cancelled, so stop() is bounded.
        config = uvicorn.Config(create_app(store, allow_writes=allow_writes), log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

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
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
