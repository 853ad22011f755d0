"""The env steps the PPO baseline may use, written by the controller, read by the baseline
trainer and the progress display:

- the budget (`baseline/budget.json`): GSL's total, written once GSL has finished;
- the allowance (`baseline/allowance.json`): GSL's env steps so far, how far a concurrent
  baseline may train before its budget is known (rewritten as GSL goes on).

Both are `{"env_steps": N}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsl_k8s.layout import BASELINE_ALLOWANCE, BASELINE_BUDGET
from gsl_k8s.records.record import read_optional, write_record
from gsl_k8s.store import ArtifactStore


@dataclass(frozen=True)
class BaselineSteps:
    """A number of env steps the baseline may train up to."""

    env_steps: int

    def to_json(self) -> dict[str, int]:
        return {"env_steps": self.env_steps}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaselineSteps:
        return cls(env_steps=data["env_steps"])


def read_baseline_budget(store: ArtifactStore) -> int | None:
    """The baseline's budget, or None before GSL's total is known."""
    budget = read_optional(store, BASELINE_BUDGET, BaselineSteps.from_json)
    return None if budget is None else budget.env_steps


def write_baseline_budget(store: ArtifactStore, env_steps: int) -> None:
    """Fix the baseline's budget at GSL's total."""
    write_record(store, BASELINE_BUDGET, BaselineSteps(env_steps))


def read_baseline_allowance(store: ArtifactStore) -> int:
    """How far a concurrent baseline may train for now: 0 before the first allowance."""
    allowance = read_optional(store, BASELINE_ALLOWANCE, BaselineSteps.from_json)
    return 0 if allowance is None else allowance.env_steps


def write_baseline_allowance(store: ArtifactStore, env_steps: int) -> None:
    """Allow a concurrent baseline GSL's env steps so far."""
    write_record(store, BASELINE_ALLOWANCE, BaselineSteps(env_steps))
