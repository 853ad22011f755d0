"""Our environment families as Sample Factory environments.

One SF env is one of our vector envs, presented to SF as a multi-agent env with one agent per
sub-env: both reset finished episodes within the same step, so SF's batched sampler can step
it as it is. Per-episode `success` and `variation` reach SF's episode statistics through the
info dict (tensors with one value per agent, read where an episode ended).

`install_gymnasium1_fix()` lets SF 2.1.1 (written for gymnasium 0.x) see the agent count
under gymnasium 1.x; see its docstring.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from sample_factory.algo.utils import make_env


def install_gymnasium1_fix() -> None:
    """Forward `num_agents`/`is_multiagent` through SF's `BatchedListToDictWrapper`.

    gymnasium 1.x wrappers no longer forward unknown attributes, so SF 2.1.1 would read a
    multi-agent env through that wrapper as a single agent (`make_env.get_multiagent_info`).
    """
    wrapper = make_env.BatchedListToDictWrapper
    wrapper.num_agents = property(lambda self: self.env.num_agents)
    wrapper.is_multiagent = property(lambda self: self.env.is_multiagent)


class FamilyEnv(gym.Env):
    """A family vector env with SF's multi-agent interface."""

    is_multiagent = True

    def __init__(self, envs: gym.vector.VectorEnv, seed: int):
        self.envs = envs
        self.num_agents = envs.num_envs
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        self.seed = seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = self.envs.reset(seed=self.seed if seed is None else seed)
        return obs, [{} for _ in range(self.num_agents)]

    def step(self, actions):
        actions = np.asarray(actions)
        if isinstance(self.action_space, gym.spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        stats = {
            "success": torch.as_tensor(np.asarray(info["success"], dtype=np.float32)),
            "variation": torch.as_tensor(np.asarray(info["variation"], dtype=np.float32)),
        }
        return obs, np.asarray(reward, dtype=np.float32), terminated, truncated, stats

    def close(self) -> None:
        self.envs.close()
