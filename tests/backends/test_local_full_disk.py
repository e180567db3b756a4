"""A full disk leaves no temporary files behind; opening a store and gc sweep old ones (defect 12).

Writes fail for real: on a 1 MiB tmpfs (ENOSPC) where this machine lets root mount one,
and always under a file-size limit (EFBIG) in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore, InvalidInputError, StorageError
from diced.backends import LocalObjectStore
from diced.backends._local import STALE_TEMP_SECONDS


def _temporaries(root: Path) -> list[str]:
    """Temporary files in the private directory, and those ``put`` writes beside targets."""
    tmp = root / ".diced-local" / "tmp"
    private = sorted(os.listdir(tmp)) if tmp.exists() else []
    beside = sorted(str(p.relative_to(root)) for p in root.rglob("%tmp-*"))
    return private + beside


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_writes_on_a_full_disk_leave_no_temporaries(tiny_disk: Path) -> None:
    root = tiny_disk / "store"
    with DicedStore(str(root)) as store:
        repo = store.create_repo("r")
        failures = 0
        for i in range(8):
            try:
                repo.upload_filedata(f"f{i}", os.urandom(300 * 1024))
            except StorageError as exc:
                assert "No space left" in str(exc)
                failures += 1
        assert failures >= 5  # the disk filled up, for real
        assert _temporaries(root) == []
        repo.upload_filedata("small", b"still fits")  # the freed room is usable
        assert repo.download_filedata("small") == b"still fits"


def test_write_failures_under_a_file_size_limit_leave_no_temporaries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    DicedStore(str(root)).create_repo("r")
    child = textwrap.dedent(f"""
        import resource, signal
        from diced import DicedStore, StorageError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        repo = DicedStore({str(root)!r}).open_repo("r")
        for i in range(5):
            try:
                repo.upload_filedata(f"big{{i}}", b"x" * 1_000_000)
            except StorageError as exc:
                assert "too large" in str(exc).lower(), exc
            else:
                raise SystemExit("the write should have failed")
        print("refused")
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"
    assert _temporaries(root) == []


def test_opening_a_store_sweeps_stale_temporaries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    DicedStore(str(root)).create_repo("r")
    tmp = root / ".diced-local" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    stale, fresh = tmp / "stale-from-a-killed-writer", tmp / "a-live-writer"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    LocalObjectStore(str(root))
    assert _temporaries(root) == ["a-live-writer"]
    assert LocalObjectStore(str(root)).sweep_temporaries(older_than=0) == (1, 1)
    assert _temporaries(root) == []


def test_gc_sweeps_stale_temporaries_beside_their_targets(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with DicedStore(str(root)) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("a", "uint8", shape=(64, 64), chunks=(32, 32))
        arr[:] = 7
        pointer = next(p for p in root.rglob("*") if p.is_file() and "/open/" in str(p)
                       and "/chunks/" in str(p))
        assert _temporaries(root) == []  # a finished write leaves none
        stale, young = pointer.parent / "%tmp-1-dead-0", pointer.parent / "%tmp-1-live-0"
        stale.write_bytes(b"x" * 10)
        young.write_bytes(b"y")
        old = time.time() - STALE_TEMP_SECONDS - 60
        os.utime(stale, (old, old))
        backend = LocalObjectStore(str(root))  # opening looks only in its private directory
        assert sorted(_temporaries(root)) == sorted(
            str(p.relative_to(root)) for p in (stale, young))
        listed = list(backend.list_prefix(""))
        assert listed and not any("%tmp-" in key for key in listed)
        report = store.gc(STALE_TEMP_SECONDS, progress=False)
        assert (report.temporaries.objects, report.temporaries.bytes) == (1, 10)
        assert _temporaries(root) == [str(young.relative_to(root))]
        assert np.all(repo.get_array("a")[:] == 7)


def test_local_keys_may_not_name_temporary_files(tmp_path: Path) -> None:
    backend = LocalObjectStore(str(tmp_path / "store"))
    for key in ("%tmp-1", "a/%tmp-1-x-0", "a/b/%tmp-"):
        with pytest.raises(InvalidInputError, match="reserved for temporary files"):
            backend.put(key, b"x")
        with pytest.raises(InvalidInputError, match="reserved for temporary files"):
            backend.get(key)
    backend.put("a/x%tmp-1", b"fine")  # only a segment's start is reserved
    assert backend.get("a/x%tmp-1") == b"fine"
