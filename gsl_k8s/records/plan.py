"""The plans of GSL's rounds and what came of them, written by the controller and read by
the trainers, the report, the displays and the operator:

- `RoundPlan` (`plan.json`, `rounds/<r>/plan.json`): the scores the round starts from, its
  weak variations and its specialists' subsets;
- `PinnedPlateau` (`plateau/pinned.json`): the generalist's plateau step and the step of
  the checkpoint pinned for it;
- `SpecialistsOutcome` (`specialists/outcome.json`, per round): which specialists
  succeeded and which failed for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsl_k8s.layout import GENERALIST, PLATEAU_PINNED, Task, plan_key, specialists_done_key
from gsl_k8s.records.record import read_optional, read_record, write_record
from gsl_k8s.store import ArtifactStore


@dataclass(frozen=True)
class RoundPlan:
    """A round's plan. Round 1 starts from the generalist's pinned checkpoint (`plateau_step`
    None where it ran to its cap without a plateau); a later round from the previous round's
    finetune (`plateau_step` None, `pinned_step` that finetune's final step). The scores are
    per variation, in the generalist's plateau metric, at `pinned_step`."""

    plateau_step: int | None
    pinned_step: int
    success_rate_at_pin: float
    return_at_pin: float
    scores: dict[int, float]
    weak_variations: list[int]
    subsets: list[list[int]]

    def to_json(self) -> dict[str, Any]:
        return {
            "plateau_step": self.plateau_step,
            "pinned_step": self.pinned_step,
            "success_rate_at_pin": self.success_rate_at_pin,
            "return_at_pin": self.return_at_pin,
            "scores": {str(v): score for v, score in sorted(self.scores.items())},
            "weak_variations": sorted(self.weak_variations),
            "subsets": self.subsets,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundPlan:
        return cls(
            plateau_step=data["plateau_step"],
            pinned_step=data["pinned_step"],
            success_rate_at_pin=data["success_rate_at_pin"],
            return_at_pin=data["return_at_pin"],
            scores={int(v): score for v, score in data["scores"].items()},
            weak_variations=list(data["weak_variations"]),
            subsets=[list(subset) for subset in data["subsets"]],
        )


def read_plan(store: ArtifactStore, round_: int = 1) -> RoundPlan:
    """A round's plan."""
    return read_record(store, plan_key(round_), RoundPlan.from_json)


def read_plan_if_written(store: ArtifactStore, round_: int = 1) -> RoundPlan | None:
    """A round's plan, or None before it is written."""
    return read_optional(store, plan_key(round_), RoundPlan.from_json)


def write_plan(store: ArtifactStore, round_: int, plan: RoundPlan) -> None:
    """Store a round's plan (the mark that the round is planned)."""
    write_record(store, plan_key(round_), plan)


@dataclass(frozen=True)
class PinnedPlateau:
    """The generalist checkpoint pinned for its plateau: its env step `step`, the oldest
    evaluated checkpoint at or after `plateau_step` (the plateau's, or the final step)."""

    step: int
    plateau_step: int

    def to_json(self) -> dict[str, int]:
        return {"step": self.step, "plateau_step": self.plateau_step}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PinnedPlateau:
        return cls(step=data["step"], plateau_step=data["plateau_step"])


def read_pinned(store: ArtifactStore) -> PinnedPlateau | None:
    """The pinned plateau, or None before the controller chose it."""
    return read_optional(store, PLATEAU_PINNED, PinnedPlateau.from_json)


def write_pinned(store: ArtifactStore, pinned: PinnedPlateau) -> None:
    """Record the choice of the plateau checkpoint (written once, before it is copied)."""
    write_record(store, PLATEAU_PINNED, pinned)


@dataclass(frozen=True)
class SpecialistsOutcome:
    """The indices of a round's specialists that succeeded and of those that failed."""

    succeeded: list[int]
    failed: list[int]

    def to_json(self) -> dict[str, list[int]]:
        return {"succeeded": self.succeeded, "failed": self.failed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpecialistsOutcome:
        return cls(succeeded=list(data["succeeded"]), failed=list(data["failed"]))


def read_specialists_outcome(store: ArtifactStore, round_: int) -> SpecialistsOutcome | None:
    """A round's specialists' outcome, or None while they run."""
    return read_optional(store, specialists_done_key(round_), SpecialistsOutcome.from_json)


def write_specialists_outcome(
    store: ArtifactStore, round_: int, outcome: SpecialistsOutcome
) -> None:
    """Record a round's specialists' outcome, once each succeeded or failed for good."""
    write_record(store, specialists_done_key(round_), outcome)


def planned_rounds(store: ArtifactStore) -> list[int]:
    """The rounds whose plan is written: 1, 2, ... (none before the generalist's plateau)."""
    rounds: list[int] = []
    while store.exists(plan_key(len(rounds) + 1)):
        rounds.append(len(rounds) + 1)
    return rounds


def round_specialists(store: ArtifactStore, round_: int) -> list[Task]:
    """The specialists of a planned round, one per subset."""
    subsets = read_plan(store, round_).subsets
    return [Task("specialist", i, round_) for i in range(len(subsets))]


def gsl_tasks(store: ArtifactStore) -> list[Task]:
    """GSL's trainer tasks so far: the generalist, and the specialists and finetune of each
    planned round."""
    tasks = [GENERALIST]
    for round_ in planned_rounds(store):
        tasks += [*round_specialists(store, round_), Task("finetune", round=round_)]
    return tasks
