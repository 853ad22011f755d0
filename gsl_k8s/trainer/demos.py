"""Demonstration collection: roll out a policy and keep its (successful) episodes.

The episodes are stored as the shards of `gsl_k8s.records.demos`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gsl_k8s.envs.base import ActFn, EnvFamily
from gsl_k8s.records.demos import Episode


@dataclass(frozen=True)
class Collection:
    """What `collect_demos` gathered, and what it cost."""

    episodes: list[Episode]
    attempts: int
    env_steps: int


def collect_demos(
    act: ActFn,
    family: EnvFamily,
    variations: Sequence[int],
    episodes: int,
    seed: int,
    success_only: bool = True,
    max_attempts: int | None = None,
    num_envs: int = 32,
) -> Collection:
    """Roll out `act` on `variations` until `episodes` episodes are kept (successful ones only
    with `success_only`) or `max_attempts` episodes (default 4x) have been tried."""
    max_attempts = max_attempts or 4 * episodes
    envs = family.make_vec(variations, num_envs, seed)
    obs, _ = envs.reset(seed=seed)
    pending: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in range(num_envs)]
    kept: list[Episode] = []
    attempts = env_steps = 0
    while len(kept) < episodes and attempts < max_attempts:
        actions = act(obs)
        next_obs, reward, terminated, truncated, info = envs.step(actions)
        env_steps += num_envs
        for i in range(num_envs):
            pending[i].append((obs[i], actions[i], float(reward[i])))
            if terminated[i] or truncated[i]:
                attempts += 1
                if (info["success"][i] or not success_only) and len(kept) < episodes:
                    o, a, r = zip(*pending[i], strict=True)
                    kept.append(
                        Episode(np.stack(o), np.stack(a), np.array(r), int(info["variation"][i]))
                    )
                pending[i] = []
        obs = next_obs
    envs.close()
    return Collection(kept, attempts, env_steps)
