"""diced's benchmark harness: diced against zarr, TensorStore and Icechunk in one run.

``python -m benchmarks`` runs every workload on every installed system, each system ×
workload × repetition in a fresh subprocess, on the same local disk with the same chunk
shape and codec, and prints (or writes, with ``--out``) a markdown table of medians with
ratios to TensorStore and to plain zarr. See docs/benchmarks.md for how to read it.
``python -m benchmarks --cloud`` runs the cloud benchmark instead (:mod:`benchmarks.cloud`:
the same data on emulated S3 and GCS behind latency proxies).

Modules, one concern each:

- :mod:`benchmarks.plan` — sizes and repetitions (full and ``--quick``), and where files go;
- :mod:`benchmarks.data` — the synthetic image and label volumes and the random selections;
- :mod:`benchmarks.systems` — one adapter per system behind a common interface;
- :mod:`benchmarks.workloads` — what is timed, run inside a worker process;
- :mod:`benchmarks.worker` — the subprocess entry point (one task, JSON in and out);
- :mod:`benchmarks.runner` — the task schedule, subprocesses and medians;
- :mod:`benchmarks.report` — the table, the machine facts and the markdown document.
"""
