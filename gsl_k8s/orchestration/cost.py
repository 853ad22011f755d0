"""What each phase of an experiment cost, from its finished tasks' results: the generalist,
the specialists and the finetune of every round, GSL in all, and the baseline. A task that
has not written its result (running, or failed) counts nothing yet."""

from __future__ import annotations

from typing import Any

from gsl_k8s.core.cost import Cost, total_cost
from gsl_k8s.layout import BASELINE, Task
from gsl_k8s.records.plan import gsl_tasks
from gsl_k8s.records.result import read_result
from gsl_k8s.store import ArtifactStore

GSL_PHASES = ("generalist", "specialists", "finetune")
PHASES = (*GSL_PHASES, "gsl", "baseline")


def phase_of(task: Task) -> str:
    """The phase whose cost `task` adds to: its role, pluralised for the specialists."""
    return "specialists" if task.role == "specialist" else task.role


class PhaseCostReader:
    """The costs by phase so far. A result never changes, so each is read once."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._costs: dict[Task, Cost] = {}

    def read(self) -> dict[str, Cost]:
        """Each phase's cost (`PHASES`), over the tasks that finished so far."""
        for task in [*gsl_tasks(self.store), BASELINE]:
            if task not in self._costs and self.store.exists(task.result):
                result = read_result(self.store, task)
                self._costs[task] = Cost.of_task(result.wall_seconds, result.cpus, result.gpus)
        by_phase = {phase: Cost() for phase in PHASES}
        for task, cost in self._costs.items():
            by_phase[phase_of(task)] += cost
        by_phase["gsl"] = total_cost([by_phase[p] for p in GSL_PHASES])
        return by_phase


def cost_summary(costs: dict[str, Cost]) -> dict[str, dict[str, Any]]:
    """The report's `cost` section: each phase's cost, and GSL's CPU-hours and GPU-hours
    over the baseline's (None where the baseline used none)."""
    summary: dict[str, dict[str, Any]] = {p: costs[p].to_json() for p in PHASES}
    gsl, baseline = costs["gsl"], costs["baseline"]
    summary["gsl_over_baseline"] = {
        "cpu_hours": gsl.cpu_seconds / baseline.cpu_seconds if baseline.cpu_seconds else None,
        "gpu_hours": gsl.gpu_seconds / baseline.gpu_seconds if baseline.gpu_seconds else None,
    }
    return summary
