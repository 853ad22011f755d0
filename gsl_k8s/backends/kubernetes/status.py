"""The observed state of a GSLExperiment (`.status`): small at any number of specialists."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CONDITION_TYPES = ("GeneralistPlateaued", "SpecialistsComplete", "Succeeded", "Failed")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str = ""


class SpecialistCounts(_Model):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0


class ExperimentStatus(_Model):
    """What the operator last observed; per-specialist detail lives on the Jobs."""

    stage: str = "Pending"
    message: str = ""
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    specialists: SpecialistCounts = Field(default_factory=SpecialistCounts)
    specialists_ready: str = Field("0/0", description="succeeded/total, for kubectl get")
    best_success: float | None = Field(None, description="Best evaluation success so far.")
    plateau_step: int | None = None
    plateau_checkpoint: str | None = Field(None, description="URI of the pinned checkpoint.")
