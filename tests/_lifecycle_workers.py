"""Processes the storage-lifecycle tests start: writers and lockers racing a collector, and
a collector or a copy killed with SIGKILL.

* :func:`palette_writer` and :func:`gc_loop` run in ``spawn`` processes through
  :func:`_workers.run_processes`;
* ``python tests/_lifecycle_workers.py <command> <json args>`` runs a collector
  (``gc``) or a copy (``copy``) that kills itself right after its n-th backend write
  (see :func:`_workers._arm_kill`); it prints ``ready`` first and ``done`` at the end.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import _workers as w

from diced import DicedStore
from diced.lifecycle.gc import collect_garbage
from diced.lifecycle.sync import copy_versions

#: The array every palette writer fills: 4×4×4 chunks of 16³ uint16.
SHAPE = (64, 64, 64)
CHUNKS = (16, 16, 16)
#: Chunk contents come from these few values, shared by every writer.
PALETTE = tuple(range(1, 9))
#: Values a writer cycles through in its scratch chunk, which it clears before each lock:
#: their blobs are never in a locked version, so they keep turning into garbage, growing
#: old, and being written again (a reuse of an object the collector is moving).
SCRATCH = tuple(range(1000, 1040))


def digest_of(array: np.ndarray[Any, Any]) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _chunk(index: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, CHUNKS, strict=True))


def palette_writer(path: str, node: str, p: int, seconds: float, lock_every: int,
                   barrier: Barrier) -> dict[str, Any]:
    """Write whole chunks into ``node``'s array ``a`` for ``seconds``, locking and
    continuing the branch every ``lock_every`` writes; chunk ``(p, 3, 3)`` is the
    writer's scratch chunk (see :data:`SCRATCH`), the others get palette values.

    Returns what must hold afterwards, from the writer's own model: per locked node the
    digest of its array and of its file, the same for the last (open) node, and counts.
    """
    rng = random.Random(p)
    scratch = (p, 3, 3)
    with DicedStore(path) as store:
        repo = store.open_repo(uuid=node)
        model = repo.get_array("a")[...]
        locked: list[tuple[str, str, str]] = []
        text = b""
        barrier.wait()
        end = time.monotonic() + seconds
        writes = 0
        while time.monotonic() < end:
            arr = repo.get_array("a")
            writes += 1
            if writes % 2:
                index = tuple(rng.randrange(n // c) for n, c in zip(SHAPE, CHUNKS, strict=True))
                if index == scratch:
                    continue
                value = rng.choice(PALETTE)
            else:
                index, value = scratch, SCRATCH[(writes // 2) % len(SCRATCH)]
            arr[_chunk(index)] = value
            model[_chunk(index)] = value
            if writes % 7 == 0:
                text = bytes([rng.choice(PALETTE)]) * 100
                repo.upload_filedata("notes", text)
            if writes % lock_every == 0:
                arr[_chunk(scratch)] = 0
                model[_chunk(scratch)] = 0
                repo.lock_node(f"lock {writes}")
                locked.append((repo.uuid, digest_of(model), hashlib.sha256(text).hexdigest()))
                repo.change_version(repo.create_branch(f"after {writes}"))
        return {"locked": locked, "open": (repo.uuid, digest_of(model),
                                           hashlib.sha256(text).hexdigest()),
                "writes": writes}


def gc_loop(path: str, grace: float, seconds: float) -> list[dict[str, int]]:
    """Collect garbage again and again for ``seconds``; what each run did."""
    runs = []
    end = time.monotonic() + seconds
    with DicedStore(path) as store:
        while time.monotonic() < end:
            report = store.gc(grace, progress=False)
            runs.append({"trashed": report.trashed.objects, "deleted": report.deleted.objects,
                         "restored": report.restored.objects, "skipped": report.skipped})
    return runs


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def killed_gc(path: str, grace: float, kill_after: int) -> None:
    """A collector that SIGKILLs itself after ``kill_after`` backend writes."""
    with DicedStore(path) as store:
        w._arm_kill(store.backend, kill_after)
        _say("ready")
        collect_garbage(store.backend, grace=grace, progress=False)
    _say("done")


def killed_copy(src: str, dst: str, kill_after: int) -> None:
    """A copy of every repo of ``src`` to ``dst`` that SIGKILLs itself after
    ``kill_after`` writes to ``dst``."""
    with DicedStore(src) as source, DicedStore(dst) as target:
        w._arm_kill(target.backend, kill_after)
        _say("ready")
        copy_versions(source.backend, target.backend, progress=False, jobs=4)
    _say("done")


def _main(argv: list[str]) -> None:
    commands: dict[str, Callable[..., None]] = {"gc": killed_gc, "copy": killed_copy}
    commands[argv[0]](**json.loads(argv[1]))


if __name__ == "__main__":
    _main(sys.argv[1:])
