"""The environment-family interface: vectorized envs restricted to a set of variations.

Every family returns a `gymnasium.vector.VectorEnv` that auto-resets in the same step and,
on every step, reports per sub-env in `info`:

- ``variation``: the variation id of the episode that was just stepped (for a sub-env whose
  episode ended, the finished episode's, not the next one's);
- ``success``: whether that episode has succeeded (read it where the episode ended);

and, on a step where any episode was truncated, ``final_obs``: an array shaped like the
observations whose row i is the last observation of sub-env i's episode if it was truncated
(the learner bootstraps its value); other rows are unspecified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np

ActFn = Callable[[np.ndarray], np.ndarray]
"""A policy as the env sees it: a batch of observations in, a batch of actions out."""


class EnvFamily(Protocol):
    """A family of environment variations (goals, level seeds, tasks...)."""

    max_episode_steps: int | None  # the longest an episode can be; None: unbounded or unknown

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> gym.vector.VectorEnv:
        """A vector env whose episodes only ever use `variations`.

        Unpinned, each episode draws its variation uniformly from `variations`. Pinned,
        `num_envs` must equal `len(variations)` and sub-env i always plays `variations[i]`.
        """
        ...


@dataclass(frozen=True)
class VariationResult:
    """Evaluation outcome of one variation."""

    success_rate: float
    mean_return: float
    episodes: int


def evaluate(
    act: ActFn, family: EnvFamily, variations: Sequence[int], episodes: int, seed: int
) -> dict[int, VariationResult]:
    """Run `episodes` episodes on each variation, all at once, and report each variation."""
    schedule = [v for v in variations for _ in range(episodes)]
    envs = family.make_vec(schedule, len(schedule), seed, pinned=True)
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(len(schedule))
    running = np.ones(len(schedule), dtype=bool)
    successes = np.zeros(len(schedule), dtype=bool)
    while running.any():
        obs, reward, terminated, truncated, info = envs.step(act(obs))
        returns += np.where(running, reward, 0.0)
        ended = running & (terminated | truncated)
        successes |= ended & info["success"]
        running &= ~ended
    envs.close()
    schedule_array = np.asarray(schedule)
    results = {}
    for variation in variations:
        mask = schedule_array == variation
        results[int(variation)] = VariationResult(
            success_rate=float(successes[mask].mean()),
            mean_return=float(returns[mask].mean()),
            episodes=int(mask.sum()),
        )
    return results
