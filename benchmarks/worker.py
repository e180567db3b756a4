"""Worker process: run one task and write its samples as JSON.

``python -m benchmarks.worker TASK.json RESULT.json``. A fresh interpreter per task keeps
one system's caches, thread pools and allocator state from colouring another's figures.
A failure exits non-zero with the traceback on stderr; the runner reports it. Tasks of the
cloud benchmark (:mod:`benchmarks.cloud`) name their cloud and run its workloads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.plan import Task
from benchmarks.workloads import RUNNERS


def main(argv: list[str]) -> int:
    """Run the task in ``argv[0]``; write ``{"samples": ..., "info": ...}`` to ``argv[1]``."""
    if len(argv) != 2:
        print("usage: python -m benchmarks.worker TASK.json RESULT.json", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text())
    if "cloud" in data:
        from benchmarks.cloud.plan import CloudTask
        from benchmarks.cloud.workloads import CLOUD_RUNNERS

        cloud_task = CloudTask.from_json(data)
        samples, info = CLOUD_RUNNERS[cloud_task.workload](cloud_task)
    else:
        task = Task.from_json(data)
        samples, info = RUNNERS[task.workload](task)
    Path(argv[1]).write_text(json.dumps({"samples": samples, "info": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
