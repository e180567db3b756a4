"""How big, how slow and how often: the cloud benchmark's plan, and one task of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["CLOUDS", "FULL", "QUICK", "CloudPlan", "CloudTask"]

#: The emulated clouds, in table order.
CLOUDS = ("s3", "gcs")


@dataclass(frozen=True)
class CloudPlan:
    """Sizes, latencies and repetitions of one cloud run.

    The volumes are cubes of edge ``size`` in cubic chunks of edge ``chunk`` (the local
    suite's data at a size the emulators serve in seconds). ``random_reads`` whole chunks
    are read one at a time; the request count reads ``count_grid``³ chunks of a locked
    version at once. Each figure is the median of ``reps`` repetitions at every latency.
    """

    size: int
    chunk: int
    random_reads: int
    count_grid: int
    latencies: tuple[int, ...]
    reps: int
    clouds: tuple[str, ...] = CLOUDS
    seed: int = 2024

    def with_options(self, reps: int | None, clouds: tuple[str, ...] | None) -> CloudPlan:
        """This plan with other repetitions or clouds (unchanged where ``None``)."""
        plan = self if reps is None else replace(self, reps=reps)
        return plan if clouds is None else replace(plan, clouds=clouds)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CloudPlan:
        return cls(**{**data, "latencies": tuple(data["latencies"]),
                      "clouds": tuple(data["clouds"])})


#: 256³ volumes (64 chunks of 64³ each), 200 random chunk reads, a 1,000-chunk count,
#: 0 and 20 ms per request, 3 repetitions.
FULL = CloudPlan(size=256, chunk=64, random_reads=200, count_grid=10, latencies=(0, 20), reps=3)

#: A smoke test of the harness (numbers are meaningless).
QUICK = CloudPlan(size=128, chunk=64, random_reads=10, count_grid=3, latencies=(20,), reps=1)


@dataclass(frozen=True)
class CloudTask:
    """One unit of work for one worker process.

    ``endpoint`` is the proxy adding ``latency`` ms in front of ``cloud``'s emulator,
    ``direct`` the emulator itself (for untimed setup). ``keep`` makes a bulk write the
    *prepared* store that the read workloads of every latency read.
    """

    workload: str
    system: str
    cloud: str
    latency: int
    rep: int
    plan: CloudPlan
    workdir: Path
    endpoint: str
    direct: str
    array: str = "image"
    keep: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plan": self.plan.to_json(), "workdir": str(self.workdir)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CloudTask:
        return cls(**{**data, "plan": CloudPlan.from_json(data["plan"]),
                      "workdir": Path(data["workdir"])})
