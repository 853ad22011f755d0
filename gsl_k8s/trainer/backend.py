"""The contract between the task loop (`gsl_k8s.trainer.task`) and a trainer backend.

The loop owns everything a task does around training: evaluation, checkpoints, the plateau
detector, the stop file, SIGTERM, demonstrations and the result. A backend only trains the
loop's `Agent`, from the loop's `TaskContext`:

    Backend(context)               make what training needs; know the env spaces
    prepare(agent, step, shards)   build the learner around `agent` at env step `step`
                                   (`shards`: the finetune's demo shards, else None)
    load_state_dict(state, resumed)  the learner's state from a checkpoint: the task's own
                                   (`resumed`) or the plateau's, cloned
    train_until(target)            train towards env step `target`, never past it; returns
                                   the env step reached (the loop calls again until there)
    evaluated(success)             the task's latest evaluation: success rate per variation
    state_dict()                   the learner's state, stored in the task's checkpoints
    close()                        release what the backend holds

`gsl_k8s.trainer.builtin` trains with our PPO; `gsl_k8s.trainer.sample_factory.backend`
with Sample Factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import torch

from gsl_k8s.envs import EnvFamily
from gsl_k8s.errors import GSLError
from gsl_k8s.layout import Task
from gsl_k8s.seeds import SeedStreams
from gsl_k8s.spec import ExperimentSpec
from gsl_k8s.store import ArtifactStore
from gsl_k8s.trainer.agent import Agent


class TrainingFailed(GSLError):
    """The trainer backend failed (a crashed or stuck Sample Factory run)."""

    reason = "TrainingFailed"


@dataclass(frozen=True)
class TaskContext:
    """What a backend may use of its task."""

    spec: ExperimentSpec
    store: ArtifactStore
    task: Task
    variations: list[int]
    budget: int  # the env steps the task may train
    seed: int
    family: EnvFamily
    device: torch.device
    log: Callable[[int, dict[str, Any]], None]  # a progress record at an env step
    interrupted: Callable[[], bool]  # SIGTERM arrived: stop training soon

    @property
    def seeds(self) -> SeedStreams:
        """The task's seed streams."""
        return SeedStreams(self.seed)


class TrainerBackend(Protocol):
    """See the module docstring."""

    observation_space: gym.Space
    action_space: gym.Space
    granularity: int  # training stops only on env steps this far apart

    def __init__(self, context: TaskContext): ...
    def prepare(self, agent: Agent, step: int, demo_shards: list[str] | None) -> None: ...
    def load_state_dict(self, state: dict[str, Any], resumed: bool) -> None: ...
    def train_until(self, target: int) -> int: ...
    def evaluated(self, success: dict[int, float]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def close(self) -> None: ...
