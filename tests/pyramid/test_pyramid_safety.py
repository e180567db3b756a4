"""Pyramids stay right when things go wrong: bad input, a killed build, an unfinished lock,
writers racing the lock, and codec chains the fast path does not handle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zarr
from _pyramid_oracle import pyramid_oracle

from diced import (
    AlreadyExistsError,
    ConflictError,
    DicedRepo,
    DicedStore,
    InvalidInputError,
    LockedError,
    NotFoundError,
)
from diced.versioning.graph import VersionGraph
from diced.versioning.node import NodeView

ROOT = Path(__file__).resolve().parents[2]


def _means(data: npt.NDArray[Any], levels: int) -> list[npt.NDArray[Any]]:
    """Factor-2 mean pyramid of a uint8 volume whose axes divide by 2**levels (numpy only)."""
    out = [data]
    for _ in range(levels):
        z, y, x = out[-1].shape
        blocks = out[-1].reshape(z // 2, 2, y // 2, 2, x // 2, 2).astype(np.float64)
        out.append(np.rint(blocks.mean(axis=(1, 3, 5))).astype(np.uint8))
    return out


def _assert_declared_levels_exact(repo: DicedRepo, name: str) -> int:
    """The levels ``name`` declares equal the reference pyramid; return how many there are."""
    arr = repo.get_array(name)
    spec = arr.pyramid
    count = 0 if spec is None else spec.levels
    want = _means(arr[...], count)
    for k in range(1, count + 1):
        np.testing.assert_array_equal(arr.level(k)[...], want[k], err_msg=f"level {k}")
    return count


def test_bad_requests_are_refused_and_change_nothing(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    arr = repo.create_array("em", np.uint8, shape=(16, 16, 16), chunks=(8, 8, 8))
    arr[...] = 3
    with pytest.raises(InvalidInputError, match="reserved for pyramid levels"):
        repo.create_array("em.s1", np.uint8, shape=(4, 4, 4))
    for kwargs, message in (({"factors": (1, 1, 1)}, "downsample nothing"),
                            ({"factors": (2, 2)}, "3 integers"),
                            ({"factors": (2, 0, 2)}, "from 1 to"),
                            ({"method": "median"}, "unknown pyramid method"),
                            ({"levels": 0}, "levels must be"),
                            ({"levels": 2, "factors": [(2, 2, 2)] * 3}, "disagrees")):
        with pytest.raises(InvalidInputError, match=message):
            arr.build_pyramid(**kwargs)
    with pytest.raises(NotFoundError, match="no pyramid"):
        arr.update_pyramid()
    assert [n for n, _ in repo.list_instances()] == ["em"] and arr.pyramid is None

    arr.build_pyramid(levels=2)
    level = repo.get_array("em.s1")
    with pytest.raises(InvalidInputError, match="level 1 of the pyramid of 'em'"):
        level[0, 0, 0] = 9
    with pytest.raises(InvalidInputError, match="level 1 of the pyramid"):
        level.resize((2, 2, 2))
    with pytest.raises(InvalidInputError, match="delete_pyramid"):
        repo.delete_array("em.s1")
    with pytest.raises(InvalidInputError, match="level 1 of the pyramid"):
        level.build_pyramid()
    with pytest.raises(NotFoundError, match="levels 0 to 2"):
        arr.level(3)
    repo.lock_node("v1")
    with pytest.raises(LockedError):
        repo.get_array("em").build_pyramid()
    with pytest.raises(LockedError):
        repo.get_array("em").update_pyramid()
    assert _assert_declared_levels_exact(repo, "em") == 2


def test_an_array_in_the_way_of_a_level_is_never_overwritten(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    arr = repo.create_array("em", np.uint8, shape=(16, 16, 16), chunks=(8, 8, 8))
    arr[...] = 5
    # A zarr client may create any name; diced's own create_array refuses level names.
    theirs = zarr.create_array(repo.zarr_store(), name="em.s2", shape=(3,), dtype="u1")
    theirs[...] = [1, 2, 3]
    with pytest.raises(AlreadyExistsError, match=r"'em\.s2' is in the way"):
        arr.build_pyramid(levels=2)
    assert arr.pyramid is None
    assert list(repo.get_array("em.s2")[...]) == [1, 2, 3]
    repo.lock_node("their array kept")
    assert sorted(n for n, _ in repo.list_instances()) == ["em", "em.s2"]


def test_an_unfinished_lock_is_finished_with_exact_levels(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    data = np.random.default_rng(1).integers(0, 256, (16, 32, 32)).astype(np.uint8)
    arr = repo.create_array("em", np.uint8, shape=data.shape, chunks=(8, 8, 8), pyramid=True)
    repo.lock_node("empty pyramid")
    repo.change_version(repo.create_branch("fill"))
    repo.get_array("em")[...] = data
    # Seal the node and stop, as a process killed in the middle of lock_node would.
    graph = VersionGraph(store.backend, repo.repo_uuid)
    view = NodeView.open(store.backend, graph.node(repo.uuid), store.page_cache, graph.node)

    def killed(arrays: Any) -> dict[str, dict[tuple[int, ...], bytes | None]]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        view.lock("interrupted", prepare=killed)
    assert repo.state == "sealing"
    repo.lock_node("finished")
    assert repo.state == "locked"
    arr = repo.get_array("em")
    assert arr.pyramid is not None
    assert _assert_declared_levels_exact(repo, "em") == arr.pyramid.levels == 2


def test_a_killed_build_leaves_a_store_that_locks_with_exact_levels(tmp_path: Path) -> None:
    location = str(tmp_path / "store.diced")
    data = np.random.default_rng(8).integers(0, 256, (64, 256, 256)).astype(np.uint8)
    with DicedStore(location) as store:
        repo = store.create_repo("em", "")
        repo.create_array("em", np.uint8, shape=data.shape, chunks=(16, 16, 16))[...] = data
    script = textwrap.dedent(f"""
        from diced import DicedStore
        store = DicedStore({location!r})
        store.open_repo("em").get_array("em").build_pyramid(levels=3)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "viewer"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        with DicedStore(location) as store:
            repo = store.open_repo("em")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if "em.s2" in dict(repo.list_instances()):  # level 1 done, 2 started
                    break
                time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with DicedStore(location) as store:
        repo = store.open_repo("em")
        repo.lock_node("after a killed build")
        _assert_declared_levels_exact(repo, "em")
        declared = repo.get_array("em").pyramid
        count = 0 if declared is None else declared.levels
        assert sorted(n for n, _ in repo.list_instances()) == \
            ["em"] + [f"em.s{k}" for k in range(1, count + 1)]
        repo.change_version(repo.create_branch("finish the pyramid"))
        repo.get_array("em").build_pyramid(levels=3)
        repo.lock_node("built")
        assert _assert_declared_levels_exact(repo, "em") == 3


def _keep_writing(target: Any, seed: int, stop: threading.Event,
                  errors: list[BaseException]) -> None:
    """Write small random boxes to ``target`` until stopped or the node takes no writes."""
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        z, y, x = (int(rng.integers(0, n - 4)) for n in target.shape)
        try:
            target[z:z + 4, y:y + 5, x:x + 3] = int(rng.integers(0, 256))
        except (LockedError, ConflictError):
            return
        except BaseException as exc:
            errors.append(exc)
            return


def test_writers_racing_the_lock_never_leave_stale_levels(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    repo.create_array("em", np.uint8, shape=(16, 64, 64), chunks=(8, 8, 8), pyramid=True)
    for attempt in range(4):
        handle = repo.get_array("em")
        stop = threading.Event()
        errors: list[BaseException] = []
        writers = [threading.Thread(target=_keep_writing,
                                    args=(handle, attempt * 10 + i, stop, errors))
                   for i in range(3)]
        for thread in writers:
            thread.start()
        time.sleep(0.2)
        repo.lock_node(f"raced {attempt}")
        stop.set()
        for thread in writers:
            thread.join()
        assert not errors, errors
        assert _assert_declared_levels_exact(repo, "em") == 3
        repo.change_version(repo.create_branch(f"again {attempt}"))


def test_jpeg_and_sharded_arrays_get_pyramids(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    rng = np.random.default_rng(6)
    data = rng.integers(0, 256, (8, 32, 32)).astype(np.uint8)
    sharded = zarr.create_array(repo.zarr_store(), name="sharded", shape=data.shape,
                                chunks=(4, 8, 8), shards=(8, 16, 16), dtype="u1",
                                fill_value=0)
    sharded[...] = data
    arr = repo.get_array("sharded")
    arr.build_pyramid(levels=2)
    want = pyramid_oracle(data, [(2, 2, 2)] * 2, "mean")
    for k in (1, 2):
        np.testing.assert_array_equal(arr.level(k)[...], want[k])
        assert "sharding_indexed" in str(arr.level(k).zarr.metadata.to_dict()["codecs"])

    jpeg = repo.create_array("jpeg", np.uint8, shape=(4, 64, 64), chunks=(1, 32, 32),
                             lossycompression=True)
    jpeg[...] = np.tile(np.arange(64, dtype=np.uint8) * 3, (4, 64, 1))
    jpeg.build_pyramid(levels=2, factors=(1, 2, 2))
    repo.lock_node("lossy")
    repo.change_version(repo.create_branch("edit"))
    jpeg = repo.get_array("jpeg")
    jpeg[2, 0:10, 0:10] = 255
    repo.lock_node("edited")
    updated = [jpeg.level(k).chunk_digests() for k in (1, 2)]
    # A fresh build from the same level 0 gives the same bytes (the codec is lossy, not
    # random): the incremental update is exactly a rebuild.
    repo.change_version(repo.create_branch("rebuild"))
    jpeg = repo.get_array("jpeg")
    jpeg.delete_pyramid()
    jpeg.build_pyramid(levels=2, factors=(1, 2, 2))
    assert [jpeg.level(k).chunk_digests() for k in (1, 2)] == updated
