"""The cloud schedule: which tasks run, in which order, each in its own worker process.

Per cloud: every system first writes both volumes at every latency (the last repetition at
the first latency is kept as the *prepared* store the reads start from), then reads them
whole, then reads random chunks, at every latency; finally each system's request count.
Repetitions are the outer loop and systems the inner one, so a change in the machine's load
touches every system alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.cloud.emulators import ENVIRONMENT, Emulators
from benchmarks.cloud.plan import CloudPlan, CloudTask
from benchmarks.cloud.systems import CLOUD_SYSTEMS
from benchmarks.data import ARRAYS, ensure_volumes
from benchmarks.measures import Measure
from benchmarks.plan import Layout
from benchmarks.runner import Figure, run_worker

__all__ = ["CLOUD_LABELS", "CLOUD_WORKLOADS", "CloudRun", "catalogue", "run_cloud"]

#: Workloads selectable with ``--workloads`` in ``--cloud`` mode, in the order they run.
CLOUD_WORKLOADS = ("bulk-write", "bulk-read", "random-reads", "request-count")
#: How the tables name the emulated clouds.
CLOUD_LABELS = {"s3": "S3 (moto)", "gcs": "GCS (fake-gcs-server)"}


@dataclass
class CloudRun:
    """Everything a finished cloud run knows, for the report."""

    plan: CloudPlan
    systems: list[str]
    skipped: dict[str, str]
    figures: list[Figure]
    errors: list[str]
    loads: list[float]
    seconds: float
    tasks: int
    workdir: Path
    codecs: dict[str, list[dict[str, Any]]]


@dataclass
class _State:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    #: (system, cloud, array) → the codec chain its bulk write stored.
    codecs: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    tasks: int = 0


def _key(cloud: str, latency: int | None, base: str) -> str:
    return f"{cloud}.{'count' if latency is None else latency}.{base}"


def catalogue(plan: CloudPlan) -> list[Measure]:
    """Every figure a cloud run of ``plan`` reports, in table order."""
    n, c = plan.size, plan.chunk
    out: list[Measure] = []
    for cloud in plan.clouds:
        for latency in plan.latencies:
            where = f"{CLOUD_LABELS[cloud]} +{latency} ms"
            for task, verb, label in (("bulk-write", "write", "throughput (incl. lock/commit)"),
                                      ("bulk-read", "read", "throughput")):
                for name, dtype in ARRAYS.items():
                    out.append(Measure(_key(cloud, latency, f"{verb}.{name}.throughput"), task,
                                       f"{where} · bulk {verb} · {name} {n}³ {dtype}", label,
                                       "GB/s", True, tuple(CLOUD_SYSTEMS)))
            group = f"{where} · random reads · {plan.random_reads} × {c}³ chunks"
            for stat in ("median", "p90"):
                out.append(Measure(_key(cloud, latency, f"reads.{stat}"), "random-reads", group,
                                   f"latency {stat}", "ms", False, tuple(CLOUD_SYSTEMS)))
        out.append(Measure(
            _key(cloud, None, "count.requests"), "request-count",
            f"{CLOUD_LABELS[cloud]} · read {plan.count_grid**3:,} chunks of a committed "
            "version", "requests (counted at the proxy)", "requests", False,
            tuple(CLOUD_SYSTEMS)))
    return out


def _schedule(plan: CloudPlan, workdir: Path, emulators: Emulators, workloads: Iterable[str],
              active: list[str]) -> list[tuple[CloudTask, bool]]:
    """``(task, counts)`` in run order; tasks that only prepare stores do not count."""
    selected = set(workloads)
    schedule: list[tuple[CloudTask, bool]] = []

    def task(workload: str, key: str, cloud: str, latency: int, rep: int, array: str = "image",
             keep: bool = False) -> CloudTask:
        endpoint = emulators.endpoint(cloud, latency)
        return CloudTask(workload, key, cloud, latency, rep, plan, workdir, endpoint.url,
                         endpoint.direct, array, keep)

    for cloud in plan.clouds:
        readers = [k for k in active if CLOUD_SYSTEMS[k].cannot(cloud, False) is None]
        writers = [k for k in CLOUD_SYSTEMS
                   if (k in active or k in {CLOUD_SYSTEMS[r].prepared_by(cloud) for r in readers})
                   and CLOUD_SYSTEMS[k].cannot(cloud, True) is None]
        writes = "bulk-write" in selected
        for rep in range(plan.reps if writes else 1):
            for latency in plan.latencies if writes else plan.latencies[:1]:
                for key in writers:
                    for array in ARRAYS:
                        keep = rep == (plan.reps - 1 if writes else 0) \
                            and latency == plan.latencies[0]
                        schedule.append((task("bulk-write", key, cloud, latency, rep, array,
                                              keep), writes and key in active))
        for workload in ("bulk-read", "random-reads"):
            if workload not in selected:
                continue
            for rep in range(plan.reps):
                for latency in plan.latencies:
                    for key in readers:
                        for array in ARRAYS if workload == "bulk-read" else ("image",):
                            schedule.append((task(workload, key, cloud, latency, rep, array),
                                             True))
        if "request-count" in selected:
            schedule.extend((task("request-count", key, cloud, 0, 0), True) for key in readers)
    return schedule


def run_cloud(plan: CloudPlan, systems: list[str], workloads: list[str],
              workdir: Path | None = None, timeout: float = 1800.0,
              progress: Callable[[str], None] | None = None) -> CloudRun:
    """Start the emulators, run ``workloads`` on ``systems`` under ``plan``, stop them.

    Systems whose package is missing are skipped with a note; a failing task is reported in
    ``CloudRun.errors`` and as a note in its figures. ``workdir`` (default: a new temporary
    directory, removed afterwards) holds the generated volumes and the task files.
    """
    say = progress or (lambda line: None)
    started = time.perf_counter()
    skipped = {key: f"not installed ({missing})" for key in systems
               if (missing := CLOUD_SYSTEMS[key].missing()) is not None}
    active = [key for key in CLOUD_SYSTEMS if key in systems and key not in skipped]
    place = (contextlib.nullcontext(str(workdir)) if workdir is not None
             else tempfile.TemporaryDirectory(prefix="diced-cloud-bench-"))
    state = _State()
    with place as where:
        root = Path(where)
        say(f"generating {plan.size}³ volumes in {root}/data")
        ensure_volumes(Layout(root), plan)
        scratch = root / "tasks"
        scratch.mkdir(parents=True, exist_ok=True)
        say(f"starting the emulators ({', '.join(plan.clouds)}) and their proxies")
        with Emulators(plan.clouds, plan.latencies) as emulators:
            schedule = _schedule(plan, root, emulators, workloads, active)
            _execute(schedule, scratch, timeout, state, say)
    _check_codecs(state)
    figures = _figures(plan, systems, skipped, workloads, state)
    return CloudRun(plan=plan, systems=[s for s in CLOUD_SYSTEMS if s in systems],
                    skipped=skipped, figures=figures, errors=state.errors, loads=state.loads,
                    seconds=time.perf_counter() - started, tasks=state.tasks, workdir=root,
                    codecs={array: chain for (_, _, array), chain in state.codecs.items()})


def _describe(task: CloudTask) -> str:
    detail = f" {task.array}" if task.workload.startswith("bulk") else ""
    return (f"{task.workload} {task.system}{detail} {task.cloud} +{task.latency} ms "
            f"rep {task.rep + 1}")


def _execute(schedule: list[tuple[CloudTask, bool]], scratch: Path, timeout: float,
             state: _State, say: Callable[[str], None]) -> None:
    broken: set[tuple[str, str, str]] = set()
    for number, (task, counts) in enumerate(schedule, 1):
        label = f"[{number}/{len(schedule)}] {_describe(task)}"
        source = CLOUD_SYSTEMS[task.system].prepared_by(task.cloud)
        needs = [] if task.workload in ("bulk-write", "request-count") else \
            [(task.cloud, source, task.array if task.workload == "bulk-read" else "image")]
        if any(need in broken for need in needs):
            _fail(state, task, f"skipped: its input ({source}) failed")
            say(f"{label}: skipped, input failed")
            continue
        state.loads.append(os.getloadavg()[0])
        start = time.perf_counter()
        name = f"{task.workload}-{task.system}-{task.array}-{task.cloud}-{task.latency}-{task.rep}"
        result, reason = run_worker(name, task.to_json(), scratch, timeout, env=ENVIRONMENT)
        state.tasks += 1
        if result is None:
            if task.keep:
                broken.add((task.cloud, task.system, task.array))
            _fail(state, task, reason)
            say(f"{label}: FAILED: {reason}")
            continue
        say(f"{label}: {time.perf_counter() - start:.1f} s")
        if "codecs" in result["info"]:
            state.codecs[(task.system, task.cloud, task.array)] = result["info"]["codecs"]
        if counts:
            latency = None if task.workload == "request-count" else task.latency
            for base, values in result["samples"].items():
                state.samples.setdefault((_key(task.cloud, latency, base), task.system),
                                         []).extend(values)


def _fail(state: _State, task: CloudTask, reason: str) -> None:
    state.errors.append(f"{_describe(task)}: {reason}")
    state.failed.setdefault((f"{task.cloud}.{task.workload}", task.system), reason)


def _check_codecs(state: _State) -> None:
    """Every system must have stored each array with the same codec chain."""
    for array in ARRAYS:
        chains = {f"{system} on {cloud}": codecs
                  for (system, cloud, name), codecs in state.codecs.items() if name == array}
        if len({json.dumps(c, sort_keys=True) for c in chains.values()}) > 1:
            state.errors.append(f"the systems stored {array} with different codecs: "
                                f"{json.dumps(chains, sort_keys=True)}")


def _figures(plan: CloudPlan, systems: list[str], skipped: dict[str, str],
             workloads: list[str], state: _State) -> list[Figure]:
    figures = []
    for measure in catalogue(plan):
        if measure.task not in workloads:
            continue
        cloud = measure.key.split(".", 1)[0]
        for key in (s for s in CLOUD_SYSTEMS if s in systems):
            adapter = CLOUD_SYSTEMS[key]
            cannot = adapter.cannot(cloud, measure.task == "bulk-write")
            values = state.samples.get((measure.key, key))
            if key in skipped:
                figures.append(Figure(measure, key, None, note=skipped[key]))
            elif cannot is not None:
                figures.append(Figure(measure, key, None, note=f"could not: {cannot}"))
            elif values:
                note = "" if adapter.prepared_by(cloud) == key else \
                    f"reads {CLOUD_SYSTEMS[adapter.prepared_by(cloud)].label}'s stores"
                figures.append(Figure(measure, key, statistics.median(values), len(values),
                                      note))
            else:
                reason = state.failed.get((f"{cloud}.{measure.task}", key),
                                          "the worker did not report it")
                figures.append(Figure(measure, key, None, note=f"failed: {reason}"))
    return figures
