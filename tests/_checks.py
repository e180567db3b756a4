"""Checks shared by the misuse tests: the error raised, and the state that must not change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from diced import DicedException, DicedRepo


def raises(exc_type: type[DicedException], words: str | tuple[str, ...],
            call: Callable[[], Any]) -> DicedException:
    """Run ``call``; it must raise ``exc_type`` whose message holds one of ``words``."""
    with pytest.raises(exc_type) as info:
        call()
    assert isinstance(info.value, DicedException)
    message = str(info.value).lower()
    options = (words,) if isinstance(words, str) else words
    assert any(w.lower() in message for w in options), (options, message)
    return info.value


def state(repo: DicedRepo) -> dict[str, Any]:
    """Everything a test can observe about a repo's current node, for before/after checks."""
    arrays = {}
    for name, dtype in repo.list_instances():
        arr = repo.get_array(name)
        data = arr[...] if not arr.unbounded else arr[arr.get_extents()]
        arrays[name] = (dtype, arr.shape, arr.chunks, arr.islabel3D, data.tobytes())
    return {
        "uuid": repo.get_current_version(),
        "locked": repo.locked,
        "log": repo.get_commit_log(),
        "nodes": sorted((n.uuid, n.parents, n.branch, n.locked) for n in repo.list_nodes()),
        "files": {f: repo.download_filedata(f) for f in repo.list_files()},
        "arrays": arrays,
    }
