"""The store, repo and array a request names (shared by the API's route modules)."""

from __future__ import annotations

import re

from starlette.requests import Request

from diced.array import DicedArray
from diced.errors import NotFoundError
from diced.repo import DicedRepo
from diced.store import DicedStore

__all__ = ["array_of", "repo_at", "store_of", "writes_allowed"]

_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


def store_of(request: Request) -> DicedStore:
    """The store the server serves."""
    store: DicedStore = request.app.state.store
    return store


def writes_allowed(request: Request) -> bool:
    """Whether the server was started with writes allowed."""
    return bool(request.app.state.allow_writes)


def repo_at(request: Request, uuid: str) -> DicedRepo:
    """The repo holding version ``uuid`` (full or unique prefix), positioned there."""
    if not uuid or len(uuid) > 256:  # a UUID, a prefix, :branch or tag:NAME
        raise NotFoundError(f"no version node {uuid[:80]!r}")
    return store_of(request).open_repo(uuid=uuid, readonly=not writes_allowed(request))


def array_of(repo: DicedRepo, name: str) -> DicedArray:
    """Array ``name`` of the repo's current version; :class:`NotFoundError` if absent."""
    if not _ARRAY_NAME.match(name):
        raise NotFoundError(f"no array {name[:80]!r} at version {repo.uuid}")
    return repo.get_array(name)
