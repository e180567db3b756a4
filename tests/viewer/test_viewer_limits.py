"""Limits of the viewer server: streamed reads, the memory budget, body timeouts, and a JSON
answer with the right status for every malformed request."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _viewer_data import Served, serve
from diced_viewer import ServerLimits
from diced_viewer._errors import Busy, TooLarge
from diced_viewer._limits import ByteBudget
from diced_viewer._raw import plan_slabs
from hypothesis import given, settings
from hypothesis import strategies as st

from diced import DicedStore, InvalidInputError

MiB = 2**20


def _exchange(url: str, request: bytes, wait: float = 60) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer (read until close)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            piece = conn.recv(65536)
            if not piece:
                break
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").lower().split("\r\n"):
        if line.startswith("content-length:"):
            return len(body) >= int(line.split(":")[1])
    return False


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test store, writes allowed, small slabs and a one-second body timeout."""
    limits = ServerLimits(slab_bytes=64 * 2**10, body_timeout=1.0)
    yield from serve(tmp_path_factory.mktemp("limits") / "store.diced", allow_writes=True,
                     limits=limits)


def test_malformed_requests_get_json_errors(quick: Served) -> None:
    lock = f"/api/node/{quick.v3}/lock"
    cases = [
        (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         b"Content-Length: abc\r\n\r\n{}", 400),
        (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2"
         b"\r\n\r\n{}", 400),
        # Headers over the limit (not yet ended, so the server must refuse to buffer more).
        (b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000, 400),
        (b"GET /%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
        (b"GET %s HTTP/1.0\r\n\r\n", 421),  # HTTP/1.0 without Host
        # A body shorter than its Content-Length: answered once it stops arriving.
        (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         b"Content-Length: 100\r\n\r\n{}", 408),
    ]
    for request, status in cases:
        got, headers, body = _exchange(quick.url, request.replace(b"%s", lock.encode(), 1))
        assert got == status, (request[:80], body)
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["status"] == status
    with httpx.Client(base_url=quick.url, timeout=30) as http:
        nested = http.post(lock, content=b"[" * 30_000 + b"]" * 30_000,
                           headers={"Content-Type": "application/json"})
        assert nested.status_code == 400 and "nested" in nested.json()["error"]
        not_allowed = http.delete(f"/api/node/{quick.v3}")
        assert not_allowed.status_code == 405 and not_allowed.json()["status"] == 405
    assert not quick.store.open_repo(uuid=quick.v3).locked


def test_a_request_head_that_never_ends_is_cut_off(quick: Served) -> None:
    host, port = quick.url.removeprefix("http://").split(":")
    for sent in (b"", b"GET /api/repos HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "):
        with socket.create_connection((host, int(port)), timeout=60) as conn:
            conn.sendall(sent)
            assert conn.recv(1024) == b""  # closed by the server, not by our timeout
    with httpx.Client(base_url=quick.url, timeout=30) as http:  # kept-alive requests work
        assert [http.get("/api/repos").status_code for _ in range(3)] == [200] * 3


def test_streamed_raw_reads_equal_numpy(quick: Served) -> None:
    """Reads of many 64 KiB slabs, aligned and not, give exactly the array's bytes."""
    big = quick.store.open_repo(uuid=quick.root).get_array("big")[...]
    with httpx.Client(base_url=quick.url, timeout=30) as http:
        for size, offset in [((2050, 2050), (0, 0)), ((700, 1500), (13, 511)),
                             ((1, 2050), (5, 0)), ((2050, 1), (0, 7))]:
            path = f"/api/node/{quick.root}/big/raw/0_1/{size[0]}_{size[1]}/" \
                   f"{offset[0]}_{offset[1]}"
            response = http.get(path)
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == size[0] * size[1]
            expected = big[offset[1]:offset[1] + size[1], offset[0]:offset[0] + size[0]]
            assert response.content == expected.tobytes()
            head = http.head(path)
            assert head.headers["content-length"] == str(size[0] * size[1])
        seg = http.get(f"/api/node/{quick.root}/seg/raw/0_1_2/40_30_20/0_0_0").content
        labels = quick.store.open_repo(uuid=quick.root).get_array("seg")[...]
        assert seg == labels.astype("<u8").tobytes()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_slabs_tile_the_selection_in_c_order(data: st.DataObject) -> None:
    ndim = data.draw(st.integers(1, 4))
    shape = data.draw(st.lists(st.integers(1, 12), min_size=ndim, max_size=ndim))
    chunks = data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    itemsize = data.draw(st.sampled_from([1, 2, 8]))
    target = data.draw(st.integers(itemsize, 4 * itemsize * int(np.prod(shape))))
    array = np.arange(int(np.prod(shape))).reshape(shape)
    starts = [data.draw(st.integers(0, n - 1)) for n in shape]
    selection = tuple(slice(lo, data.draw(st.integers(lo + 1, n)))
                      for lo, n in zip(starts, shape, strict=True))
    boxes = list(plan_slabs(selection, chunks, itemsize, target))
    joined = np.concatenate([array[box].ravel() for box in boxes])
    np.testing.assert_array_equal(joined, array[selection].ravel())
    for box in boxes:
        assert np.prod([s.stop - s.start for s in box]) * itemsize <= target


def test_budget_grants_in_order_waits_and_refuses() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100, wait=30)
        first = await budget.acquire(60, "first")
        with pytest.raises(TooLarge, match="--memory-budget"):
            await budget.acquire(101, "too big")
        big = asyncio.create_task(budget.acquire(80, "big"))
        small = asyncio.create_task(budget.acquire(10, "small"))
        await asyncio.sleep(0)
        assert not big.done() and not small.done()  # small waits behind big: no starving
        (await budget.acquire(0, "metadata")).release()  # needing nothing never waits
        first.release()
        first.release()  # idempotent
        big_lease = await big
        small_lease = await small
        assert budget.used == 90
        big_lease.release()
        small_lease.release()
        assert budget.used == 0
        impatient = ByteBudget(10, wait=0.05)
        async with await impatient.acquire(10, "holder"):
            with pytest.raises(Busy) as busy:
                await impatient.acquire(1, "waiter")
            assert busy.value.status == 503 and int(busy.value.headers["Retry-After"]) >= 1
            waiter = asyncio.create_task(impatient.acquire(5, "cancelled"))
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert impatient.used == 0 and not impatient._waiters

    asyncio.run(scenario())


def test_limits_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="memory_budget"):
        ServerLimits(memory_budget=1000)
    with pytest.raises(InvalidInputError, match="slab_bytes"):
        ServerLimits(memory_budget=4 * MiB, slab_bytes=3 * MiB)
    with pytest.raises(InvalidInputError, match="body_timeout"):
        ServerLimits(body_timeout=0)


def _stalled_read(url: str, path: str) -> socket.socket:
    """A connection that asks for a raw read and never reads the answer."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return conn


def test_a_full_budget_answers_503_then_recovers(tmp_path: Path) -> None:
    """Readers that stop reading hold their share; others get 503 with Retry-After."""
    limits = ServerLimits(memory_budget=32 * MiB, slab_bytes=8 * MiB, queue_wait=1.0)
    with DicedStore(str(tmp_path / "s.diced")) as store:
        repo = store.create_repo("r")
        vol = repo.create_array("vol", np.uint8, shape=(256, 512, 512), chunks=(32, 64, 64))
        vol[...] = np.full((256, 512, 512), 3, np.uint8)
        path = f"/api/node/{repo.uuid}/vol/raw/0_1_2/512_512_256/0_0_0"
        with store.serve(port=0, allow_writes=True, limits=limits) as server, \
                httpx.Client(base_url=server.url, timeout=60) as http:
            stalled = [_stalled_read(server.url, path) for _ in range(2)]
            try:
                deadline = time.monotonic() + 60
                while (busy := http.get(path)).status_code != 503:
                    assert time.monotonic() < deadline, "the stalled reads never held the budget"
                assert busy.json()["status"] == 503 and "busy" in busy.json()["error"]
                assert int(busy.headers["retry-after"]) >= 1
                assert http.get("/api/repos").status_code == 200  # small requests still run
                too_big = http.post(path, content=b"\0" * (64 * MiB))
                assert too_big.status_code == 413 and "--memory-budget" in too_big.text
            finally:
                for conn in stalled:
                    conn.close()
            deadline = time.monotonic() + 60
            while (again := http.get(path)).status_code == 503:
                assert time.monotonic() < deadline, "the budget was not given back"
            assert again.status_code == 200 and len(again.content) == 64 * MiB
