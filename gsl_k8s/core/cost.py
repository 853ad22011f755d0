"""What a task cost: its wall seconds times the CPUs and GPUs it held, in CPU-hours and
GPU-hours. Pure: the trainer measures, the report and the operator add up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_CPU_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(m?)")


def parse_cpu_quantity(quantity: str | int | float) -> float:
    """CPUs in a Kubernetes CPU quantity: "2", "1.5", "500m" (millicores)."""
    match = _CPU_QUANTITY.fullmatch(str(quantity).strip())
    if match is None:
        raise ValueError(
            f"{quantity!r} is not a CPU quantity: use cores (2, 1.5) or millicores (500m)"
        )
    number, milli = match.groups()
    return float(number) / 1000 if milli else float(number)


@dataclass(frozen=True)
class Cost:
    """Wall seconds, and the CPU and GPU seconds held over them; tasks' costs add up."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0

    @classmethod
    def of_task(cls, wall_seconds: float, cpus: float, gpus: float) -> Cost:
        """One task that held `cpus` and `gpus` for `wall_seconds`."""
        return cls(wall_seconds, wall_seconds * cpus, wall_seconds * gpus)

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.wall_seconds + other.wall_seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.gpu_seconds + other.gpu_seconds,
        )

    @property
    def cpu_hours(self) -> float:
        return self.cpu_seconds / 3600

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    def to_json(self) -> dict[str, float]:
        """Wall seconds (summed over tasks, not elapsed time), CPU-hours and GPU-hours."""
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "cpu_hours": round(self.cpu_hours, 6),
            "gpu_hours": round(self.gpu_hours, 6),
        }


def total_cost(costs: list[Cost]) -> Cost:
    """The sum of `costs` (zero for none)."""
    return sum(costs, Cost())


# Set by the Kubernetes Job from the role's resource requests; read by the trainer.
CPUS_ENV = "GSL_TASK_CPUS"
GPUS_ENV = "GSL_TASK_GPUS"


def held_resources(environ: Mapping[str, str], threads: int, on_cuda: bool) -> tuple[float, float]:
    """The CPUs and GPUs a trainer holds: its pod's requests where the Job says them (in
    `environ`), else (locally) its CPU threads and one GPU if it trains on CUDA."""
    if CPUS_ENV in environ:
        return parse_cpu_quantity(environ[CPUS_ENV]), float(environ.get(GPUS_ENV, "0"))
    return float(threads), 1.0 if on_cuda else 0.0
