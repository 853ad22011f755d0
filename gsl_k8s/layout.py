"""The experiment layout: trainer tasks and the store keys they read and write.

    spec.json                      the validated spec (camelCase)
    plan.json                      plateau step, per-variation scores, specialist subsets
    plateau/checkpoint.pt          the pinned plateau checkpoint (written once)
    plateau/pinned.json            the env step of the pinned checkpoint
    <task>/progress.jsonl          progress records, one JSON object per line
    <task>/checkpoints/step-N.pt   checkpoints (the newest few are kept)
    <task>/result.json             written when the task completes: env steps used, reason
    <task>/STOP                    a request to stop, written by the controller
    <task>/log.txt                 the process's output (local backend)
    demos/<i>/shard-N.npz          specialist i's demonstrations
    demos/generalist/shard-N.npz   the generalist's demonstrations
    baseline/budget.json           the env steps the baseline may use
    report.json, report.png        the summary

where <task> is generalist, specialists/<i>, finetune or baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["generalist", "specialist", "finetune", "baseline"]
ROLES: tuple[Role, ...] = ("generalist", "specialist", "finetune", "baseline")

SPEC = "spec.json"
PLAN = "plan.json"
PLATEAU_CHECKPOINT = "plateau/checkpoint.pt"
PLATEAU_PINNED = "plateau/pinned.json"
BASELINE_BUDGET = "baseline/budget.json"
REPORT_JSON = "report.json"
REPORT_PNG = "report.png"
GENERALIST_DEMOS = "demos/generalist"


@dataclass(frozen=True, order=True)
class Task:
    """One trainer process (a Job on Kubernetes): a role, and an index for specialists."""

    role: Role
    index: int = 0

    @property
    def name(self) -> str:
        """Deterministic, DNS-safe name: generalist, specialist-3, finetune, baseline."""
        return f"specialist-{self.index}" if self.role == "specialist" else self.role

    @property
    def prefix(self) -> str:
        """The task's directory in the store."""
        return f"specialists/{self.index}" if self.role == "specialist" else self.role

    @property
    def progress(self) -> str:
        return f"{self.prefix}/progress.jsonl"

    @property
    def result(self) -> str:
        return f"{self.prefix}/result.json"

    @property
    def stop(self) -> str:
        return f"{self.prefix}/STOP"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}/checkpoints"

    @property
    def demos(self) -> str:
        """Where a specialist writes its demonstrations."""
        return f"demos/{self.index}"

    def checkpoint(self, step: int) -> str:
        """The key of the checkpoint taken at env step `step`."""
        return f"{self.checkpoints}/step-{step:012d}.pt"


GENERALIST = Task("generalist")
FINETUNE = Task("finetune")
BASELINE = Task("baseline")
