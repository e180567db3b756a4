"""The garbage collector's lease: at most one collector changes a store at a time.

Two collectors must not run together: one could delete a trash copy (its grace period
over, nothing referencing it) right after the other moved that very object to the trash
again, and a reader falling back to the trash would then find nothing. The lease is one
object, ``gc/lease``, created create-only and renewed by compare-and-swap while the
collector runs. A collector that was killed leaves its lease behind; it expires after
``seconds`` and the next collector takes it over. A holder stops deleting before its
lease expires (with a margin for clocks that disagree a little), so a taker-over never
overlaps it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid as uuidlib
from typing import Any, Self

from diced.backends import ObjectStore
from diced.errors import ConflictError
from diced.versioning import keys
from diced.versioning.records import now

__all__ = ["GcLease"]


class GcLease:
    """The lease of one collector run; :meth:`check` before every deletion.

    Parameters
    ----------
    backend
        The store's backend.
    seconds
        How long the lease lasts without renewal; it is renewed every third of it.
    """

    def __init__(self, backend: ObjectStore, seconds: float) -> None:
        self.backend = backend
        self.seconds = seconds
        self.owner = uuidlib.uuid4().hex
        self._held: bytes | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _body(self, expires: float, released: bool = False) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(),
                           "pid": os.getpid(), "written": now(), "expires": expires,
                           "released": released}, sort_keys=True).encode()

    def acquire(self) -> Self:
        """Take the lease.

        Raises
        ------
        ConflictError
            Another collector holds it (the message says which, and until when).
        """
        expires = time.time() + self.seconds
        body = self._body(expires)
        if not self.backend.put_if_absent(keys.GC_LEASE, body):
            found = self.backend.get_versioned(keys.GC_LEASE)
            if found is not None:
                holder = _parse(found.data)
                if not holder.get("released") and float(holder.get("expires", 0)) > time.time():
                    until = time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(float(holder["expires"])))
                    raise ConflictError(
                        f"another diced gc is running on this store (host "
                        f"{holder.get('host')!r}, pid {holder.get('pid')}, lease renewed "
                        f"{holder.get('written')}); wait for it to finish, or, if it was "
                        f"killed, until its lease expires at {until}")
            token = None if found is None else found.token
            if not self.backend.put_if_match(keys.GC_LEASE, body, token):
                raise ConflictError("another diced gc took this store's gc lease just now; "
                                    "wait for it to finish")
        self._held, self._expires = body, expires
        return self

    def check(self) -> None:
        """Renew the lease when a third of it has passed; raise once it may have lapsed.

        Raises
        ------
        ConflictError
            The lease expired (this collector was paused too long) or another collector
            took it over: nothing more may be deleted.
        """
        with self._lock:
            assert self._held is not None, "check() before acquire()"
            remaining = self._expires - time.time()
            if remaining < self.seconds / 6:
                raise ConflictError("this gc's lease ran out (the process was paused?); it "
                                    "stopped before deleting more: run diced gc again")
            if remaining > self.seconds * 2 / 3:
                return
            expires = time.time() + self.seconds
            body = self._body(expires)
            if not self.backend.compare_and_swap(keys.GC_LEASE, self._held, body):
                raise ConflictError("another diced gc took over this store's gc lease; this "
                                    "one stopped before deleting more")
            self._held, self._expires = body, expires

    def release(self) -> None:
        """Give the lease up (a later collector takes it over at once)."""
        with self._lock:
            if self._held is not None:
                self.backend.compare_and_swap(keys.GC_LEASE, self._held,
                                              self._body(0.0, released=True))
                self._held = None


def _parse(data: bytes) -> dict[str, Any]:
    """The lease's fields; an unreadable lease counts as released (it protects nothing)."""
    try:
        found = json.loads(data)
    except ValueError:
        return {"released": True}
    return found if isinstance(found, dict) else {"released": True}
