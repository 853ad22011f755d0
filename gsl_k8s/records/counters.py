"""The training loop's counters, which every trainer checkpoint holds under `counters`
(the torch file itself is `gsl_k8s.trainer.checkpoint`'s):

env_steps       env steps trained when the checkpoint was taken
next_eval       the env step of the next evaluation
demo_env_steps  env steps spent recording demonstrations so far
wall_seconds    seconds the task had run, over its restarts
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CHECKPOINT_KEY = "counters"


@dataclass
class LoopCounters:
    """The fields above, updated as the loop goes; a missing field reads as 0."""

    env_steps: int = 0
    next_eval: int = 0
    demo_env_steps: int = 0
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopCounters:
        return cls(**data)


def checkpoint_counters(state: dict[str, Any]) -> LoopCounters:
    """The counters of a loaded checkpoint."""
    return LoopCounters.from_json(state[CHECKPOINT_KEY])


def with_counters(state: dict[str, Any], counters: LoopCounters) -> dict[str, Any]:
    """A checkpoint's state with the loop's counters added."""
    return {**state, CHECKPOINT_KEY: counters.to_json()}
