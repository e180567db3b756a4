"""``python -m benchmarks --cloud``: diced against its peers on object storage.

Every system reads and writes the same volumes (the local suite's data, chunks and codec)
in moto (S3) and fake-gcs-server (GCS) on 127.0.0.1, each reached through a proxy that adds
a fixed latency to every request (:mod:`benchmarks.cloud.proxy`), so the figures show how
many requests a client sends and how many it keeps in flight, not how fast the emulator on
these few cores is. Modules, one concern each:

- :mod:`benchmarks.cloud.plan` — sizes, latencies, repetitions; one task;
- :mod:`benchmarks.cloud.emulators` — the emulators and their proxies, started and stopped;
- :mod:`benchmarks.cloud.proxy` — the latency-adding, request-counting proxy;
- :mod:`benchmarks.cloud.systems` — one adapter per system and client;
- :mod:`benchmarks.cloud.workloads` — what is timed or counted, inside a worker process
  (:mod:`benchmarks.worker` runs it);
- :mod:`benchmarks.cloud.runner` — the schedule and the medians;
- :mod:`benchmarks.cloud.report` — the tables and the targets.
"""
