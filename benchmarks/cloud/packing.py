"""Would packing a locked node's chunks into larger objects win? A measurement, not a format.

``python -m benchmarks.cloud.packing`` starts moto behind the latency proxies (0 and 20 ms)
and compares, with obstore (diced's S3 client), two layouts of the same 512 chunks of about
87 KB (the benchmark image's compressed 64³ chunks):

* **one object per chunk**, as diced stores blobs: a read of *k* chunks is *k* GETs, all in
  flight at once;
* **packed**: the chunks of each 8×8×8 block concatenated in C order into one object, read
  with ranged GETs that obstore coalesces when the ranges are adjacent (as zarr sharding
  and TensorStore's coalescing do).

Workloads: a 4×4×4-chunk box (a 256³ bulk read), the whole 8×8×8 block, and 200 single
chunks one at a time. Prints the median seconds of 5 repetitions and the requests the proxy
counted. docs/benchmarks.md records the result and the decision.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import numpy as np

from benchmarks.cloud.emulators import BUCKET, ENVIRONMENT, Emulators, request_count

EDGE = 8          # chunks per axis of the block
CHUNK_BYTES = 87_000
REPS = 5


def _store(endpoint: str, prefix: str) -> Any:
    from obstore.store import S3Store

    return S3Store(BUCKET, prefix=prefix, endpoint=endpoint, region="us-east-1",
                   client_options={"allow_http": True})


def _index(z: int, y: int, x: int) -> int:
    return (z * EDGE + y) * EDGE + x


async def _write(store: Any, chunks: list[bytes]) -> None:
    import obstore

    await asyncio.gather(*(obstore.put_async(store, f"chunk/{i}", c)
                           for i, c in enumerate(chunks)))
    await obstore.put_async(store, "packed", b"".join(chunks))


async def _loose(store: Any, wanted: list[int]) -> None:
    import obstore

    async def one(i: int) -> None:
        await (await obstore.get_async(store, f"chunk/{i}")).bytes_async()

    await asyncio.gather(*(one(i) for i in wanted))


async def _packed(store: Any, wanted: list[int]) -> None:
    import obstore

    starts = [i * CHUNK_BYTES for i in wanted]
    await obstore.get_ranges_async(store, "packed", starts=starts,
                                   lengths=[CHUNK_BYTES] * len(wanted))


async def _one_by_one(read: Reader, store: Any, wanted: list[int]) -> None:
    for i in wanted:
        await read(store, [i])


Reader = Callable[[Any, list[int]], Coroutine[Any, Any, None]]
LAYOUTS: tuple[tuple[str, Reader], ...] = (("one object per chunk", _loose), ("packed", _packed))


def _measure(endpoint: str, run: Callable[[], Coroutine[Any, Any, None]]) -> tuple[float, int]:
    times, before = [], request_count(endpoint)
    for _ in range(REPS):
        start = time.perf_counter()
        asyncio.run(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times), (request_count(endpoint) - before) // REPS


def main() -> int:
    os.environ.update(ENVIRONMENT)
    rng = np.random.default_rng(2024)
    chunks = [rng.integers(0, 256, CHUNK_BYTES, dtype=np.uint8).tobytes()
              for _ in range(EDGE ** 3)]
    box = [_index(z, y, x) for z in range(4) for y in range(4) for x in range(4)]
    block = list(range(EDGE ** 3))
    singles = [int(i) for i in rng.integers(0, EDGE ** 3, 200)]
    with Emulators(("s3",), (20,)) as emulators:
        asyncio.run(_write(_store(emulators.endpoint("s3", 0).direct, "packing"), chunks))
        print("| latency | workload | layout | median s | requests |")
        print("|---|---|---|---|---|")
        for latency in (0, 20):
            endpoint = emulators.endpoint("s3", latency).url
            store = _store(endpoint, "packing")
            for name, wanted in (("4×4×4 chunks", box), ("8×8×8 chunks", block)):
                for layout, read in LAYOUTS:
                    seconds, requests = _measure(endpoint, partial(read, store, wanted))
                    print(f"| +{latency} ms | {name} | {layout} | {seconds:.3f} | {requests} |")
            for layout, read in LAYOUTS:
                seconds, requests = _measure(endpoint, partial(_one_by_one, read, store, singles))
                print(f"| +{latency} ms | 200 single chunks, one at a time | {layout} | "
                      f"{seconds / len(singles) * 1000:.1f} ms each | {requests} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
