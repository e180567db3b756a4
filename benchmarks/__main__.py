"""``python -m benchmarks``: run the benchmarks, print the table, optionally write the doc.

Exit status 0 when every figure was measured, 1 when a task failed (the table then says
which), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.measures import ALL_SYSTEMS, WORKLOADS
from benchmarks.plan import FULL, QUICK
from benchmarks.report import render, write_document
from benchmarks.runner import run


def _choices(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark diced (open and locked nodes) against zarr, TensorStore and "
                    "Icechunk on the local disk, each task in a fresh process.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one repetition: a smoke test of the harness "
                             "(its numbers mean nothing)")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        type=lambda s: _choices(s, ALL_SYSTEMS, "system"),
                        help=f"comma-separated subset of {','.join(ALL_SYSTEMS)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        type=lambda s: _choices(s, WORKLOADS, "workload"),
                        help=f"comma-separated subset of {','.join(WORKLOADS)} "
                             "(bulk-read also measures peak memory)")
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions per figure (default {FULL.reps}, quick {QUICK.reps})")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write the results into (between its "
                             "benchmarks markers), e.g. docs/benchmarks.md")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where stores are written and kept (default: a temporary "
                             "directory, removed afterwards); must be on the disk under test")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one worker process may take (default 1800)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run, print the report, write ``--out``; return the exit status."""
    args = _parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        _parser().error("--reps must be at least 1")
    plan = (QUICK if args.quick else FULL).with_reps(args.reps)
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None
                                                           else argv)])
    result = run(plan, args.systems, args.workloads, workdir=args.workdir,
                 timeout=args.timeout, progress=lambda line: print(line, file=sys.stderr,
                                                                    flush=True))
    section = render(result, command)
    print(section)
    if args.out is not None:
        write_document(args.out, section)
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
