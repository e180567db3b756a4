"""Starting and stopping the viewer: port handling, clean shutdown, the CLI, writes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from _viewer_data import Served

from diced import DicedStore, InvalidInputError, StorageError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _viewer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("diced-viewer")]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_port_argument_serves_until_the_with_block_ends(tmp_path: Path) -> None:
    port = _free_port()
    with DicedStore(str(tmp_path / "s.diced"), port=port) as store:
        store.create_repo("r", "described")
        repos = httpx.get(f"http://127.0.0.1:{port}/api/repos", timeout=30).json()
        assert [r["name"] for r in repos] == ["r"]
        assert len(_viewer_threads()) == 1
    assert _viewer_threads() == []
    assert _port_free(port)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(StorageError, match=f"port {port}.*in use"):
            DicedStore(str(tmp_path / "s.diced"), port=port)
        with DicedStore(str(tmp_path / "s.diced")) as store, \
                pytest.raises(StorageError, match="in use"):
            store.serve(port=port)
    assert _viewer_threads() == []


def test_serve_returns_a_handle_that_stops(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "s.diced")) as store:
        handle = store.serve(port=0)
        assert handle.running and handle.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{handle.url}/api/repos", timeout=30).json() == []
        handle.stop()
        assert not handle.running and _port_free(handle.port)
        with pytest.raises(InvalidInputError, match="port"):
            store.serve(port=70000)


def test_cli_serve(tmp_path: Path) -> None:
    location = tmp_path / "s.diced"
    with DicedStore(str(location)) as store:
        store.create_repo("cli-repo")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from diced.cli import main; main()",
                             "serve", str(location),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in (proc.stdout.readline() if proc.stdout else "")
        deadline = time.monotonic() + 30
        while True:
            try:
                repos = httpx.get(f"http://127.0.0.1:{port}/api/repos", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "diced serve did not answer"
                time.sleep(0.1)
        assert [r["name"] for r in repos] == ["cli-repo"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/server").json()["writable"] is False
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=30)
        rest = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert code == 0 and "stopped" in rest
    assert _port_free(port)


def test_writes_through_the_api(served_rw: Served) -> None:
    with httpx.Client(base_url=served_rw.url, timeout=30) as http:
        block = np.arange(2 * 3 * 4, dtype="<u1").reshape(2, 3, 4)
        written = http.post(f"/api/node/{served_rw.v3}/img/raw/0_1_2/4_3_2/1_2_3",
                            content=block.tobytes())
        assert written.status_code == 204, written.text
        repo = served_rw.store.open_repo(uuid=served_rw.v3)
        np.testing.assert_array_equal(repo.get_array("img")[3:5, 2:5, 1:5], block)
        short = http.post(f"/api/node/{served_rw.v3}/img/raw/0_1_2/4_3_2/1_2_3", content=b"12")
        assert short.status_code == 400
        huge = http.post(f"/api/node/{served_rw.v3}/img/raw/0_1_2/4_3_2/1_2_3",
                         content=b"x" * 100)
        assert huge.status_code == 413
        locked_write = http.post(f"/api/node/{served_rw.root}/img/raw/0_1_2/1_1_1/0_0_0",
                                 content=b"\x01")
        assert locked_write.status_code == 409
        assert http.post(f"/api/node/{served_rw.v3}/lock",
                         json={"message": "done"}).json()["locked"]
        assert repo.locked
        made = http.post(f"/api/node/{served_rw.v3}/branch",
                         json={"message": "next", "name": "feature"})
        assert made.status_code == 201
        child = served_rw.store.open_repo(uuid=made.json()["uuid"])
        assert child.node_record().branch == "feature"
        again = http.post(f"/api/node/{served_rw.v3}/lock", json={"message": "again"})
        assert again.status_code == 409 and "already locked" in again.json()["error"]
        as_json = {"Content-Type": "application/json"}
        bad = http.post(f"/api/node/{served_rw.v3}/branch", content=b"[1]", headers=as_json)
        assert bad.status_code == 400
        untyped = http.post(f"/api/node/{served_rw.v3}/branch", content=b"{}")
        assert untyped.status_code == 415 and "application/json" in untyped.json()["error"]
        big = http.post(f"/api/node/{served_rw.v3}/branch", content=b"x" * 10**6,
                        headers=as_json)
        assert big.status_code == 413
