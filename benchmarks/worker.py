"""Worker process: run one task and write its samples as JSON.

``python -m benchmarks.worker TASK.json RESULT.json``. A fresh interpreter per task keeps
one system's caches, thread pools and allocator state from colouring another's figures.
A failure exits non-zero with the traceback on stderr; the runner reports it.
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
    task = Task.from_json(json.loads(Path(argv[0]).read_text()))
    samples, info = RUNNERS[task.workload](task)
    Path(argv[1]).write_text(json.dumps({"samples": samples, "info": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
