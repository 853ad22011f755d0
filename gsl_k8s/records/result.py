"""A task's result, `<task>/result.json`: written once, when the task completes.

env_steps       env steps trained
demo_env_steps  env steps spent recording demonstrations (the finetune's include the
                generalist's demos, recorded once)
reason          why training ended: budget, stopped (by the controller) or plateau
final_eval      the last evaluation's metrics (`eval/*`)
demos           per demo prefix the task recorded under (`demos/<i>`, `demos/generalist`),
                episodes asked for, attempted and kept, and their env steps
wall_seconds    seconds the trainer ran, summed over its restarts (waiting included)
cpus, gpus      what it held meanwhile: on Kubernetes its pod's requests, locally its torch
                threads and 1 GPU if it trained on CUDA (0 for results older than these fields)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gsl_k8s.layout import Task
from gsl_k8s.records.demos import DemoCount
from gsl_k8s.records.record import read_record, write_record
from gsl_k8s.store import ArtifactStore

Reason = Literal["budget", "stopped", "plateau"]


@dataclass(frozen=True)
class TaskResult:
    """The fields above."""

    env_steps: int
    demo_env_steps: int
    reason: Reason
    final_eval: dict[str, Any]
    demos: dict[str, DemoCount] = field(default_factory=dict)
    wall_seconds: float = 0.0
    cpus: float = 0.0
    gpus: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "demo_env_steps": self.demo_env_steps,
            "reason": self.reason,
            "final_eval": self.final_eval,
            "demos": {prefix: count.to_json() for prefix, count in self.demos.items()},
            "wall_seconds": self.wall_seconds,
            "cpus": self.cpus,
            "gpus": self.gpus,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskResult:
        demos = {p: DemoCount.from_json(c) for p, c in data.get("demos", {}).items()}
        return cls(
            env_steps=data["env_steps"],
            demo_env_steps=data["demo_env_steps"],
            reason=data["reason"],
            final_eval=data["final_eval"],
            demos=demos,
            wall_seconds=data.get("wall_seconds", 0.0),
            cpus=data.get("cpus", 0.0),
            gpus=data.get("gpus", 0.0),
        )

    @property
    def env_steps_used(self) -> int:
        """Env steps spent in all: training and demo recording."""
        return self.env_steps + self.demo_env_steps


def read_result(store: ArtifactStore, task: Task) -> TaskResult:
    """The result of a completed task."""
    return read_record(store, task.result, TaskResult.from_json)


def write_result(store: ArtifactStore, task: Task, result: TaskResult) -> None:
    """Store the task's result (the mark that it completed)."""
    write_record(store, task.result, result)
