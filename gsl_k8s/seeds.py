"""The seed streams: each random draw of an experiment is seeded from a stream named for
what it seeds, here, so that no two draw the same episodes unless meant to.

Each task has its own seed (`SeedStreams.for_task`): the experiment's `seed` plus an offset
for its role, its index and its round. It seeds torch's and numpy's global RNGs (network
initialisation, minibatch order), and the task's streams (`SeedStreams`) derive from it;
some split further (`env_worker`, `demo_retry`, `demo_variation`). The experiment's seed
itself seeds the partition of the weak variations (the controller's).

These are the values every earlier version used: changing one changes every result.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLE_OFFSETS = {"generalist": 0, "specialist": 1000, "finetune": 2000, "baseline": 3000}
ROUND_STRIDE = 10_000  # a later round's tasks draw apart from the earlier rounds'
STEP_STRIDE = 7919  # a prime: evaluation and env-worker seeds stay clear of training's


@dataclass(frozen=True)
class SeedStreams:
    """The seed streams of one task (see the module docstring)."""

    task: int

    @classmethod
    def for_task(cls, experiment_seed: int, role: str, index: int, round_: int) -> SeedStreams:
        """The streams of the task of `role`, `index` and `round_` in the experiment."""
        return cls(experiment_seed + ROLE_OFFSETS[role] + index + ROUND_STRIDE * (round_ - 1))

    def training_envs(self, env_steps: int) -> int:
        """The training envs, made and reset at `env_steps`: a resumed task and each Sample
        Factory segment draw new episodes."""
        return self.task + env_steps

    def evaluation(self, env_steps: int) -> int:
        """The evaluation episodes at `env_steps`."""
        return self.task + STEP_STRIDE * (env_steps + 1)

    @property
    def demo_recording(self) -> int:
        """The specialist's or the generalist's demonstrations."""
        return self.task + 1

    @property
    def features(self) -> int:
        """The episodes that give the generalist's variation features."""
        return self.task + 2

    @property
    def behaviour_cloning(self) -> int:
        """The order of the demo minibatches of `finetune.bcSteps`."""
        return self.task + 3

    def demo_batches(self, update: int = 0) -> int:
        """The finetune's demo minibatches from learner update `update` on (the built-in
        trainer draws them all from 0)."""
        return self.task + update


def env_worker(segment: int, worker: int) -> int:
    """Sample Factory's env worker `worker` of a segment whose envs are seeded `segment`."""
    return segment + STEP_STRIDE * worker


def demo_retry(recording: int) -> int:
    """The second collection of a demo recording: sampled actions where greedy ones fell
    short."""
    return recording + 1


def demo_variation(recording: int, position: int) -> int:
    """The collection on the variation at `position` of a recording one variation at a
    time (`demos.perVariation`)."""
    return recording + position
