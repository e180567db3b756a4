"""``python -m benchmarks``: run the benchmarks, print the table, optionally write the doc.

Exit status 0 when every figure was measured, 1 when a task failed (the table then says
which), 2 on a usage error. ``--cloud`` runs the cloud benchmark (:mod:`benchmarks.cloud`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.cloud.plan import CLOUDS
from benchmarks.cloud.plan import FULL as CLOUD_FULL
from benchmarks.cloud.plan import QUICK as CLOUD_QUICK
from benchmarks.cloud.report import CLOUD_BEGIN, CLOUD_END, render_cloud
from benchmarks.cloud.runner import CLOUD_WORKLOADS, run_cloud
from benchmarks.cloud.systems import CLOUD_SYSTEMS
from benchmarks.measures import ALL_SYSTEMS, WORKLOADS
from benchmarks.plan import FULL, QUICK
from benchmarks.report import BEGIN, END, render, write_document
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
                    "Icechunk on the local disk (or, with --cloud, on emulated S3 and GCS "
                    "behind latency proxies), each task in a fresh process.")
    parser.add_argument("--cloud", action="store_true",
                        help="the cloud benchmark: moto and fake-gcs-server on loopback, "
                             "each behind proxies adding a fixed latency per request")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one repetition: a smoke test of the harness "
                             "(its numbers mean nothing)")
    parser.add_argument("--systems", default=None,
                        help=f"comma-separated subset of {','.join(ALL_SYSTEMS)} (with "
                             f"--cloud: of {','.join(CLOUD_SYSTEMS)})")
    parser.add_argument("--workloads", default=None,
                        help=f"comma-separated subset of {','.join(WORKLOADS)} "
                             "(bulk-read also measures peak memory; with --cloud: of "
                             f"{','.join(CLOUD_WORKLOADS)})")
    parser.add_argument("--clouds", default=",".join(CLOUDS),
                        help=f"with --cloud: comma-separated subset of {','.join(CLOUDS)}")
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions per figure (default {FULL.reps}, quick {QUICK.reps}; "
                             f"cloud {CLOUD_FULL.reps}, quick {CLOUD_QUICK.reps})")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write the results into (between its "
                             "benchmarks markers, the cloud ones with --cloud), e.g. "
                             "docs/benchmarks.md")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where stores are written and kept (default: a temporary "
                             "directory, removed afterwards); must be on the disk under test")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one worker process may take (default 1800)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run, print the report, write ``--out``; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    systems_allowed = tuple(CLOUD_SYSTEMS) if args.cloud else ALL_SYSTEMS
    workloads_allowed = CLOUD_WORKLOADS if args.cloud else WORKLOADS
    try:
        systems = _choices(args.systems or ",".join(systems_allowed), systems_allowed, "system")
        workloads = _choices(args.workloads or ",".join(workloads_allowed), workloads_allowed,
                             "workload")
        clouds = tuple(_choices(args.clouds, CLOUDS, "cloud"))
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None
                                                           else argv)])

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.cloud:
        cloud_plan = (CLOUD_QUICK if args.quick else CLOUD_FULL).with_options(args.reps, clouds)
        cloud_run = run_cloud(cloud_plan, systems, workloads, workdir=args.workdir,
                              timeout=args.timeout, progress=progress)
        section, errors = render_cloud(cloud_run, command), cloud_run.errors
        markers = (CLOUD_BEGIN, CLOUD_END)
    else:
        plan = (QUICK if args.quick else FULL).with_reps(args.reps)
        result = run(plan, systems, workloads, workdir=args.workdir, timeout=args.timeout,
                     progress=progress)
        section, errors = render(result, command), result.errors
        markers = (BEGIN, END)
    print(section)
    if args.out is not None:
        write_document(args.out, section, *markers)
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
