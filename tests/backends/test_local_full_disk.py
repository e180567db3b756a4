"""A full disk leaves no temporary files behind, and opening a store sweeps old ones (defect 12).

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

import pytest

from diced import DicedStore, StorageError
from diced.backends import LocalObjectStore
from diced.backends._local import STALE_TEMP_SECONDS


def _temporaries(root: Path) -> list[str]:
    tmp = root / ".diced-local" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


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
