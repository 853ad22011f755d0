"""The observed state of a GSLExperiment (`.status`): small at any number of specialists."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str | None = None  # never "": Kubernetes 1.20 built with Go 1.19 reads it as null
    last_transition_time: str | None = None


class SpecialistCounts(_Model):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0


class PhaseCost(_Model):
    """What one phase's finished tasks cost."""

    wall_seconds: float = Field(0.0, description="Summed over its tasks.")
    cpu_hours: float = Field(0.0, description="Requested CPUs x wall hours.")
    gpu_hours: float = Field(0.0, description="Requested GPUs x wall hours.")


class PhaseCosts(_Model):
    """The cost of each phase; `gsl` is the generalist, specialists and finetune together
    (every round's)."""

    generalist: PhaseCost = Field(default_factory=PhaseCost)
    specialists: PhaseCost = Field(default_factory=PhaseCost)
    finetune: PhaseCost = Field(default_factory=PhaseCost)
    gsl: PhaseCost = Field(default_factory=PhaseCost)
    baseline: PhaseCost = Field(default_factory=PhaseCost)


class StageProgressStatus(_Model):
    """How far one stage (of one round) has come."""

    stage: str
    round: int = 1
    steps_done: int = Field(0, description="Env steps trained (demo recording aside).")
    steps_planned: int = Field(
        0, description="Its budget; a finished task counts the steps it trained."
    )
    elapsed_seconds: float = Field(0.0, description="Since its first progress record.")
    eta_seconds: float | None = Field(
        None, description="Until its budget is trained, at the recent rate; null while unknown."
    )


class ProgressStatus(_Model):
    """How far the experiment has come."""

    summary: str | None = Field(
        None,
        description="The current stage's, for kubectl get: e.g. 37% ETA 12m; Queued while "
        "every started Job waits for admission.",
    )
    steps_done: int = Field(0, description="GSL's env steps trained so far.")
    steps_planned: int = Field(0, description="GSL's budget so far.")
    stages: list[StageProgressStatus] = Field(default_factory=list)


class ExperimentStatus(_Model):
    """What the operator last observed; per-specialist detail lives on the Jobs."""

    stage: str = "Pending"
    message: str | None = None
    stage_since: float | None = Field(None, description="When the stage began (epoch s).")
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    round: int = Field(1, description="The GSL round of the specialists and finetune.")
    specialists: SpecialistCounts = Field(default_factory=SpecialistCounts)
    specialists_ready: str = Field("0/0", description="succeeded/total, for kubectl get")
    best_success: float | None = Field(
        None,
        description="Best evaluation success so far: the generalist's, or the final one of "
        "any round's finetune.",
    )
    plateau_step: int | None = Field(
        None,
        description="Env step where the generalist's plateau was detected; null while it "
        "trains, and where it ran to generalist.envSteps without one.",
    )
    pinned_step: int | None = Field(
        None,
        description="Env step of the pinned checkpoint (plateauCheckpoint): the first one "
        "evaluated at or after the plateau, else the generalist's last.",
    )
    plateau_checkpoint: str | None = Field(None, description="URI of the pinned checkpoint.")
    demo_shortfall: str | None = Field(
        None, description="The demo sources that kept fewer episodes than asked."
    )
    resumed: str | None = Field(
        None,
        description="What the store already held when the operator took this experiment "
        "over (after an operator restart, or applied anew in another cluster).",
    )
    cpu_hours: float = Field(0.0, description="GSL's CPU-hours so far (finished tasks).")
    gpu_hours: float = Field(0.0, description="GSL's GPU-hours so far (finished tasks).")
    baseline_cpu_hours: float = Field(0.0, description="The baseline's CPU-hours, once done.")
    baseline_gpu_hours: float = Field(0.0, description="The baseline's GPU-hours, once done.")
    cost: PhaseCosts = Field(default_factory=PhaseCosts, description="Cost by phase.")
    queued: list[str] = Field(
        default_factory=list,
        description="The tasks whose Jobs wait for admission (Kueue): suspended, or no pod yet.",
    )
    progress: ProgressStatus = Field(
        default_factory=ProgressStatus,
        description="Env steps done and planned, elapsed time and ETA, by stage.",
    )

    def to_patch(self, only: set[str] | None = None) -> dict:
        """A merge patch for `.status`: None clears a field; conditions carry no nulls.
        With `only` (field names), the other fields stay as they are."""
        patch = self.model_dump(by_alias=True, include=only)
        if "conditions" in patch:
            patch["conditions"] = [
                c.model_dump(by_alias=True, exclude_none=True) for c in self.conditions
            ]
        return patch
