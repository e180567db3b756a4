"""The schedule: which tasks run, in which order, each in its own worker process.

Repetitions are the outer loop and systems the inner one, so a change in the machine's
load during a run touches every system alike. Every system first writes the volumes
(``bulk-write``; the last repetition's stores are kept as the *prepared* stores that the
other workloads start from), then the read, write, branch and history workloads follow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.data import ARRAYS, ensure_volumes
from benchmarks.measures import (
    ALL_SYSTEMS,
    DIFFING,
    IMPORTING,
    LIFECYCLE,
    MERGING,
    PYRAMIDS,
    WORKLOADS,
    Measure,
    catalogue,
)
from benchmarks.plan import Layout, Plan, Task
from benchmarks.systems import SYSTEMS

__all__ = ["Figure", "Run", "run", "run_worker"]

_REPO_ROOT = Path(__file__).resolve().parents[1]
_VERSIONED = ("diced-open", "diced-locked", "icechunk")


@dataclass(frozen=True)
class Figure:
    """One cell of the table: the median of a measure for a system, or why there is none."""

    measure: Measure
    system: str
    value: float | None
    samples: int = 0
    note: str = ""


@dataclass
class Run:
    """Everything a finished run knows, for the report."""

    plan: Plan
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
    """Samples and failures gathered while tasks run."""

    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    codecs: dict[tuple[str, str], Any] = field(default_factory=dict)
    tasks: int = 0


def _run_worker(task: Task, scratch: Path, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run ``task`` in a fresh interpreter; return its result, or None and the reason."""
    name = f"{task.workload}-{task.system}-{task.array}-{task.depth}-{task.stored}-{task.rep}"
    return run_worker(name, task.to_json(), scratch, timeout)


def run_worker(name: str, task: dict[str, Any], scratch: Path, timeout: float,
               env: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, str]:
    """Run the task ``task`` (as JSON) in a fresh ``python -m benchmarks.worker``.

    Returns its result, or None and the reason it failed. ``name`` names the task's files
    in ``scratch``; ``env`` adds to the environment.
    """
    task_file, result_file = scratch / f"{name}.task.json", scratch / f"{name}.result.json"
    task_file.write_text(json.dumps(task))
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(_REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(task_file),
                               str(result_file)], cwd=_REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"exit status {proc.returncode}"
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result, ""


def _tasks(plan: Plan, workdir: Path, workloads: Iterable[str], prepare: list[str],
           active: list[str], builders: list[str]) -> list[tuple[Task, bool]]:
    """The schedule: ``(task, counts)``; tasks that only prepare stores do not count."""
    selected = set(workloads)
    schedule: list[tuple[Task, bool]] = []

    def add(workload: str, systems: Iterable[str], reps: int, *, counts: bool = True,
            arrays: Iterable[str] = ("image",), last_keeps: bool = False) -> None:
        for rep in range(reps):
            for key in systems:
                for array in arrays:
                    keep = last_keeps and rep == reps - 1
                    schedule.append((Task(workload, key, rep, plan, workdir, array, keep),
                                     counts and key in active))

    writes = "bulk-write" in selected
    add("bulk-write", prepare, plan.reps if writes else 1, counts=writes, arrays=ARRAYS,
        last_keeps=True)
    if "bulk-read" in selected:
        add("bulk-read", active, plan.reps, arrays=ARRAYS)
    if "random-reads" in selected:
        add("random-reads", active, plan.reps)
    if "rmw" in selected:
        add("rmw", active, plan.reps)
    if "branch-bytes" in selected:
        add("branch-bytes", [s for s in active if s in _VERSIONED], plan.reps)
    if "import" in selected:
        add("import", [s for s in active if s in IMPORTING], plan.reps)
    if "pyramid" in selected:
        add("pyramid", [s for s in active if s in PYRAMIDS], plan.reps)
    if "lifecycle" in selected:
        # One repetition: building a store of 10⁵ objects dominates the task's time.
        add("lifecycle", [s for s in active if s in LIFECYCLE], 1)
    if "diff" in selected:
        diffing = [s for s in active if s in DIFFING]
        for stored in plan.diff_sizes:
            schedule.extend((Task("diff-build", key, 0, plan, workdir, stored=stored), False)
                            for key in diffing)
        for rep in range(plan.reps):
            for stored in plan.diff_sizes:
                schedule.extend((Task("diff", key, rep, plan, workdir, stored=stored), True)
                                for key in diffing)
    if "merge" in selected:
        add("merge", [s for s in active if s in MERGING], plan.reps)
    if "history" in selected:
        add("history", builders, 1)
        for rep in range(plan.reps):
            for depth in plan.depths:
                schedule.extend((Task("history-reads", key, rep, plan, workdir, depth=depth),
                                 True) for key in active if key in _VERSIONED)
    return schedule


def _output(task: Task) -> tuple[str, str] | None:
    """What later tasks read from ``task``: (system, array, history or diff build)."""
    if task.workload == "history":
        return task.system, "history"
    if task.workload == "diff-build":
        return task.system, f"diff-{task.stored}"
    return (task.system, task.array) if task.keep else None


def _depends_on(task: Task) -> list[tuple[str, str]]:
    """The (system, array) prepared stores, history or diff builds a task reads."""
    if task.workload in ("bulk-write", "import", "pyramid", "lifecycle", "diff-build"):
        return []
    if task.workload == "diff":
        return [(task.system, f"diff-{task.stored}")]
    if task.workload == "history-reads":
        builder = "icechunk" if task.system == "icechunk" else "diced-locked"
        return [(builder, "history")]
    if task.workload == "bulk-read":
        return [(task.system, task.array)]
    return [(task.system, "image")]


def run(plan: Plan, systems: list[str], workloads: list[str], workdir: Path | None = None,
        timeout: float = 1800.0, progress: Callable[[str], None] | None = None) -> Run:
    """Run ``workloads`` on ``systems`` under ``plan``; collect medians in a :class:`Run`.

    Systems whose package is missing are skipped with a note. A failing task is reported
    in ``Run.errors`` and as a note in its figures; the tasks that need its output are
    skipped. ``workdir`` (default: a new temporary directory, removed afterwards) must be
    on the local disk under test.
    """
    say = progress or (lambda line: None)
    started = time.perf_counter()
    skipped = {key: f"not installed ({missing})" for key in systems
               if (missing := SYSTEMS[key].missing()) is not None}
    active = [key for key in ALL_SYSTEMS if key in systems and key not in skipped]
    builders = []
    if any(s.startswith("diced") for s in active) and "diced-locked" not in skipped:
        builders.append("diced-locked")
    if "icechunk" in active:
        builders.append("icechunk")
    prepare = [key for key in ALL_SYSTEMS
               if key in active or ("history" in workloads and key in builders)]
    place = (contextlib.nullcontext(str(workdir)) if workdir is not None
             else tempfile.TemporaryDirectory(prefix="diced-bench-"))
    with place as where:
        root = Path(where)
        layout = Layout(root)
        say(f"generating {plan.size}³ volumes in {root}/data")
        ensure_volumes(layout, plan)
        scratch = root / "tasks"
        scratch.mkdir(parents=True, exist_ok=True)
        schedule = _tasks(plan, root, workloads, prepare, active, builders)
        state = _State()
        broken: set[tuple[str, str]] = set()
        for number, (task, counts) in enumerate(schedule, 1):
            label = f"[{number}/{len(schedule)}] {_describe(task)}"
            lost = [dep for dep in _depends_on(task) if dep in broken]
            if lost:
                _fail(state, task, f"skipped: its input ({lost[0][0]}) failed")
                say(f"{label}: skipped, input failed")
                continue
            # Flush the previous task's writes, so their writeback does not slow this one.
            os.sync()
            state.loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            result, reason = _run_worker(task, scratch, timeout)
            state.tasks += 1
            if result is None:
                output = _output(task)
                if output is not None:
                    broken.add(output)
                _fail(state, task, reason)
                say(f"{label}: FAILED: {reason}")
                continue
            say(f"{label}: {time.perf_counter() - start:.1f} s")
            if "codecs" in result["info"]:
                state.codecs[(task.system, task.array)] = result["info"]["codecs"]
            if counts:
                for key, values in result["samples"].items():
                    state.samples.setdefault((key, task.system), []).extend(values)
        # The stores tasks discarded, deleted only now (Layout.discard says why).
        shutil.rmtree(layout.discarded, ignore_errors=True)
    _check_codecs(state)
    figures = _figures(plan, systems, skipped, workloads, state)
    return Run(plan=plan, systems=[s for s in ALL_SYSTEMS if s in systems], skipped=skipped,
               figures=figures, errors=state.errors, loads=state.loads,
               seconds=time.perf_counter() - started, tasks=state.tasks, workdir=root,
               codecs={array: chain for (_, array), chain in state.codecs.items()})


def _describe(task: Task) -> str:
    """``bulk-write diced-open image rep 1``: a task as the progress lines name it."""
    detail = (f" {task.array}" if task.workload.startswith("bulk")
              else f" depth {task.depth}" if task.workload == "history-reads"
              else f" {task.stored} chunks" if task.workload.startswith("diff") else "")
    return f"{task.workload} {task.system}{detail} rep {task.rep + 1}"


def _fail(state: _State, task: Task, reason: str) -> None:
    state.errors.append(f"{_describe(task)}: {reason}")
    workload = {"history-reads": "history", "diff-build": "diff"}.get(task.workload,
                                                                    task.workload)
    state.failed.setdefault((workload, task.system), reason)
    if task.keep:  # every workload reading this system's prepared store is lost too
        for other in WORKLOADS:
            state.failed.setdefault((other, task.system), f"bulk write failed: {reason}")


def _check_codecs(state: _State) -> None:
    """Every system must have stored each array with the same codec chain."""
    for array in ARRAYS:
        chains = {system: codecs for (system, name), codecs in state.codecs.items()
                  if name == array}
        distinct = {json.dumps(c, sort_keys=True) for c in chains.values()}
        if len(distinct) > 1:
            state.errors.append(f"the systems stored {array} with different codecs: "
                                f"{json.dumps(chains, sort_keys=True)}")


def _figures(plan: Plan, systems: list[str], skipped: dict[str, str], workloads: list[str],
             state: _State) -> list[Figure]:
    figures = []
    for measure in catalogue(plan):
        workload = "history" if measure.task == "history-reads" else measure.task
        if workload not in workloads:
            continue
        for key in (s for s in ALL_SYSTEMS if s in systems and s in measure.systems):
            values = state.samples.get((measure.key, key))
            if key in skipped:
                figures.append(Figure(measure, key, None, note=skipped[key]))
            elif values:
                figures.append(Figure(measure, key, statistics.median(values), len(values)))
            else:
                reason = state.failed.get((workload, key), "the worker did not report it")
                if (workload, key) not in state.failed:
                    state.errors.append(f"{measure.key} on {key}: {reason}")
                figures.append(Figure(measure, key, None, note=f"failed: {reason}"))
    return figures
