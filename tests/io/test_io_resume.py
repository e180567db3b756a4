"""Streaming: bounded memory, and imports that are interrupted (SIGINT, SIGKILL) and re-run.

The volumes here are big enough to span many slabs: 512 TIFF slices of 512² uint8
(128 MiB) in 64³ chunks, so a slab (64 slices) is 16 MiB, an eighth of the volume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import pytest

from diced import ConflictError, DicedRepo, DicedStore
from diced.io import Source, import_array
from tests.io.conftest import CHUNKS, write_stack

ROOT = Path(__file__).resolve().parents[2]
EDGE = 512
SLAB_BYTES = 64 * EDGE * EDGE
CLI = "import sys; from diced.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, npt.NDArray[Any]]:
    """A 512-slice TIFF stack of 512² uint8 (mostly smooth, some noise) and its volume."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(*(np.arange(EDGE, dtype=np.uint16),) * 3, indexing="ij",
                          sparse=True)
    volume = ((z + y // 2 + x // 3) % 251).astype(np.uint8)
    volume[::3, ::5] ^= rng.integers(0, 8, size=(1, 1, EDGE), dtype=np.uint8)
    directory = tmp_path_factory.mktemp("big") / "stack"
    write_stack(directory, volume)
    return directory, volume


def env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "viewer"),
                                         os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def new_store(location: Path) -> None:
    with DicedStore(str(location)) as store:
        store.create_repo("r")


#: Chunks of the interrupted imports: thin slabs (16 slices), 32 of them, so an
#: interruption lands while many slabs are still to come.
THIN = (16, 64, 64)
TOTAL_THIN = (EDGE // 16) * (EDGE // 64) ** 2


def _as_in_a_terminal() -> None:
    """Start a child to be interrupted as a command typed in a terminal.

    SIGINT gets its default action: a test run started in the background (``cmd &`` in a
    script, as CI runners may) ignores SIGINT, children inherit that, and Python then
    installs no KeyboardInterrupt handler, so the child would run to the end. And the child
    runs below the test's priority, so on a loaded machine it cannot finish all its slabs
    between storing its first chunk and the test noticing it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.nice(10)


def start_import(location: Path, source: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, "import", str(location), "r", "em",
                             str(source), "--chunks", ",".join(map(str, THIN))], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_in_a_terminal)


def stored_chunks(location: Path) -> int:
    """Chunks of array "em" stored so far (0 before the array exists)."""
    with DicedStore(str(location)) as store:
        repo = store.open_repo("r")
        if "em" not in [name for name, _ in repo.list_instances()]:
            return 0
        return len(repo.get_array("em").chunk_digests())


def interrupt_midway(location: Path, source: Path, sig: int) -> tuple[int, str]:
    """Start a CLI import, send ``sig`` once it stored a chunk; its exit status and stderr."""
    proc = start_import(location, source)
    deadline = time.monotonic() + 120
    while stored_chunks(location) == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the import never stored a chunk"
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def check_partial(location: Path, volume: npt.NDArray[Any]) -> int:
    """Every stored chunk equals the source's; returns how many are stored."""
    with DicedStore(str(location)) as store:
        arr = store.open_repo("r").get_array("em")
        stored = arr.chunk_digests()
        data = arr[...]
    for coords in stored:
        box = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, THIN, strict=True))
        assert np.array_equal(data[box], volume[box]), coords
    return len(stored)


def finish_and_check(location: Path, source: Path, volume: npt.NDArray[Any]) -> None:
    proc = start_import(location, source)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    with DicedStore(str(location)) as store:
        assert np.array_equal(store.open_repo("r").get_array("em")[...], volume)


def test_sigkill_midway_then_rerun_finishes(tmp_path: Path,
                                            big: tuple[Path, npt.NDArray[Any]]) -> None:
    source, volume = big
    new_store(tmp_path / "s")
    status, _ = interrupt_midway(tmp_path / "s", source, signal.SIGKILL)
    assert status == -signal.SIGKILL
    assert 0 < check_partial(tmp_path / "s", volume) < TOTAL_THIN
    finish_and_check(tmp_path / "s", source, volume)


def test_ctrl_c_stops_cleanly_then_rerun_finishes(tmp_path: Path,
                                                  big: tuple[Path, npt.NDArray[Any]]) -> None:
    source, volume = big
    new_store(tmp_path / "s")
    status, err = interrupt_midway(tmp_path / "s", source, signal.SIGINT)
    assert status == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
    # Stopped within the few slabs in flight, not at the end (32 slabs of 64 chunks).
    assert 0 < check_partial(tmp_path / "s", volume) <= TOTAL_THIN // 2
    finish_and_check(tmp_path / "s", source, volume)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def test_rerun_of_a_finished_import_writes_nothing(store: DicedStore, tmp_path: Path,
                                                   volume: npt.NDArray[Any]) -> None:
    repo = store.create_repo("r")
    volume[:, :16] = 0  # some chunks are all fill: not stored, skipped on the re-run too
    import_array(repo, "em", volume, chunks=CHUNKS, progress=False)
    before = snapshot(tmp_path / "store.diced")
    import_array(repo, "em", volume, progress=False)
    assert snapshot(tmp_path / "store.diced") == before


def test_rerun_rewrites_only_the_chunks_that_changed(repo: DicedRepo, tmp_path: Path,
                                                     volume: npt.NDArray[Any]) -> None:
    write_stack(tmp_path / "stack", volume)
    first = import_array(repo, "em", tmp_path / "stack", chunks=CHUNKS,
                         progress=False).chunk_digests()
    volume[20, 3:5, 40] += 1  # chunks (1, 0, 2)
    write_stack(tmp_path / "stack", volume)
    arr = import_array(repo, "em", tmp_path / "stack", progress=False)
    second = arr.chunk_digests()
    assert {c for c in first if first[c] != second[c]} == {(1, 0, 2)}
    assert np.array_equal(arr[...], volume)


_MEMORY_CHILD = """
import json, sys
import numpy as np
from diced import DicedStore
from diced.io import Source, import_array

def vm_hwm():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))

store = DicedStore(sys.argv[1])
repo = store.create_repo("r")
import_array(repo, "warm", sys.argv[2] + "/z0.tif", progress=False)  # load every module
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the peak (VmHWM) to the current resident size
before = vm_hwm()
import_array(repo, "em", sys.argv[2], progress=False)
print(json.dumps({"before": before, "peak": vm_hwm()}))
"""


def test_peak_memory_stays_a_few_slabs(tmp_path: Path,
                                       big: tuple[Path, npt.NDArray[Any]]) -> None:
    """Importing 8 slabs' worth holds a few slabs (measured: ~3.5), never the volume."""
    source, volume = big
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_MEMORY_CHILD),
                             str(tmp_path / "s"), str(source)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = psutil.Process(proc.pid)
    sampled = 0
    while proc.poll() is None:  # psutil's view from outside, as a cross-check
        try:
            sampled = max(sampled, child.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.002)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    figures = json.loads(out)
    growth = figures["peak"] - figures["before"]
    bound = 6 * SLAB_BYTES  # 3 slabs in flight, plus chunk buffers and allocator slack
    assert growth < bound < volume.nbytes, (growth / 2**20, bound / 2**20)
    assert sampled <= figures["peak"] + 2**20
    with DicedStore(str(tmp_path / "s")) as store:
        assert np.array_equal(store.open_repo("r").get_array("em")[...], volume)


def test_ctrl_c_during_export_leaves_no_destination(tmp_path: Path,
                                                    big: tuple[Path, npt.NDArray[Any]]) -> None:
    volume = big[1]
    with DicedStore(str(tmp_path / "s")) as store:
        import_array(store.create_repo("r"), "em", volume, chunks=THIN, progress=False)
    proc = subprocess.Popen([sys.executable, "-c", CLI, "export", str(tmp_path / "s"), "r",
                             "em", str(tmp_path / "out")], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*/*.tif")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the export never wrote a slice"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "was not written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


class _LockingSource(Source):
    """Rows of 1; reading slab ``lock_at`` first locks the node from another store."""

    def __init__(self, location: Path, node: str, lock_at: int) -> None:
        self.shape, self.dtype, self.description = (64 * 4, 8, 8), np.dtype(np.uint8), "test"
        self.location, self.node, self.lock_at = location, node, lock_at

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        if start == 64 * self.lock_at:
            with DicedStore(str(self.location)) as other:
                other.open_repo(uuid=self.node).lock_node("locked during the import")
        return np.ones((stop - start, 8, 8), np.uint8)


def test_a_lock_during_an_import_is_a_conflict(tmp_path: Path) -> None:
    """Slabs are separate writes: when another process locks the node after some landed,
    the import raises ConflictError (part of it is in the locked version), not LockedError,
    which says nothing was written."""
    location = tmp_path / "store"
    with DicedStore(str(location)) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=(64 * 4, 8, 8), chunks=(64, 8, 8))
        source = _LockingSource(location, repo.uuid, lock_at=2)
        with pytest.raises(ConflictError, match="during the import into array 'a'"):
            import_array(repo, "a", source, workers=1)
        locked = store.open_repo(uuid=repo.uuid)
        assert locked.locked and locked.get_array("a")[:64].all()
