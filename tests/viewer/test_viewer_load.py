"""Load on a real ``diced serve`` process: memory stays bounded in total, nothing fails.

The server's peak resident memory (psutil, sampled, and the kernel's high-water mark) must
stay under the bound docs/viewer.md states for the default limits while 16 clients read
maximum-size raw subvolumes and 200 more send small requests, all at once.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from diced_viewer._raw import MAX_RAW_BYTES

from diced import DicedStore

pytestmark = pytest.mark.slow

#: The bound docs/viewer.md states for the default limits ("Memory").
PEAK_RSS_BOUND = 1536 * 2**20
SHAPE = (1024, 512, 512)  # uint8: exactly MAX_RAW_BYTES


@dataclass
class Running:
    url: str
    pid: int
    repo_uuid: str
    expected_sha1: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _volume_slab(z0: int, z1: int) -> np.ndarray:
    y, x = np.indices(SHAPE[1:])
    plane = ((x * 3 + y * 5) % 251).astype(np.uint8)
    z = (np.arange(z0, z1, dtype=np.uint16) * 7 % 251).astype(np.uint8)
    return plane[None, :, :] + z[:, None, None]  # uint8 wraps, as the expected bytes do


def _build(location: Path) -> tuple[str, str]:
    """A store whose array ``vol`` is one maximum-size subvolume; its node and SHA-1."""
    assert np.prod(SHAPE) == MAX_RAW_BYTES
    digest = hashlib.sha1()
    with DicedStore(str(location)) as store:
        repo = store.create_repo("load")
        vol = repo.create_array("vol", np.uint8, shape=SHAPE, chunks=(64, 64, 64))
        for z0 in range(0, SHAPE[0], 128):
            slab = _volume_slab(z0, z0 + 128)
            vol[z0:z0 + 128] = slab
            digest.update(slab.tobytes())
        rows, cols = np.indices((2048, 2048))
        repo.create_array("plane", np.uint16, shape=(2048, 2048), chunks=(256, 256))[...] = \
            (rows * 3 + cols).astype(np.uint16)
        repo.upload_filedata("README.md", "# load test\n")
        return repo.uuid, digest.hexdigest()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``diced serve`` (default limits) in its own process, over the load-test store."""
    directory = tmp_path_factory.mktemp("load")
    uuid, sha1 = _build(directory / "store.diced")
    port = _free_port()
    log = directory / "serve.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", "from diced.cli import main; main()",
                                 "serve", str(directory / "store.diced"), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/server", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "diced serve did not start"
                time.sleep(0.1)
        yield Running(url, proc.pid, uuid, sha1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert "Traceback" not in log.read_text(), log.read_text()


class _PeakRss:
    """Samples a process's resident memory in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.01)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def high_water_mark(self) -> int:
        """The kernel's own peak resident size of the process (Linux ``VmHWM``)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


def _big_read(url: str) -> tuple[int, str, int]:
    digest = hashlib.sha1()
    size = 0
    with httpx.stream("GET", url, timeout=600) as response:
        for piece in response.iter_bytes(2**20):
            digest.update(piece)
            size += len(piece)
        return response.status_code, digest.hexdigest(), size


def _small_request(client: httpx.Client, path: str) -> tuple[int, str]:
    response = client.get(path)
    if response.status_code >= 400:
        return response.status_code, response.text
    return response.status_code, ""


def test_sixteen_max_size_reads_and_two_hundred_small_requests(running: Running) -> None:
    node = f"/api/node/{running.repo_uuid}"
    z, y, x = SHAPE
    big_url = f"{running.url}{node}/vol/raw/0_1_2/{x}_{y}_{z}/0_0_0"
    small_paths = [p for i in range(40) for p in (
        "/api/repos", node, f"{node}/plane/slice.png?index={i},0",
        f"{node}/vol/raw/0_1_2/16_16_16/{i * 8}_0_{i}",
        f"/zarr/load/{running.repo_uuid}/vol/c/{i % 16}/0/0")]
    assert len(small_paths) == 200
    with _PeakRss(running.pid) as rss, ThreadPoolExecutor(16 + 200) as pool, \
            httpx.Client(base_url=running.url, timeout=600,
                         limits=httpx.Limits(max_connections=200)) as client:
        big = [pool.submit(_big_read, big_url) for _ in range(16)]
        small = [pool.submit(_small_request, client, path) for path in small_paths]
        big_results = [f.result() for f in big]
        small_results = [f.result() for f in small]
    peak = max(rss.peak, rss.high_water_mark())
    print(f"peak RSS of diced serve: {peak / 2**20:.0f} MiB "
          f"(sampled {rss.peak / 2**20:.0f} MiB)")
    assert [r[0] for r in big_results] == [200] * 16
    assert all(digest == running.expected_sha1 and size == MAX_RAW_BYTES
               for _, digest, size in big_results)
    assert [s for s, _ in small_results] == [200] * 200, [r for r in small_results if r[0] != 200]
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB"
