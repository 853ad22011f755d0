"""Procgen as a family: variation = level seed.

Runs procgen-mirror's native gym3 `ProcgenGym3Env` (one C env for all sub-envs) behind a
gymnasium vector env. Procgen itself can only draw levels from a contiguous range
(`start_level`, `num_levels`), but specialists train on the generalist's weakest levels,
which are scattered. So each sub-env is steered: whenever its episode ends, it draws its next
level from the variations it was given and loads that level's start state, serialized once
from a one-level env. Procgen levels are fully determined by their seed, so a loaded start
state is exactly a fresh episode of that level (`tests/test_procgen.py` checks this).

Success is Procgen's `level_complete`. Episodes end when Procgen starts a new one (its `first`
flag; Procgen does not say whether that was its own timeout, so every such end counts as
terminated), or are truncated after `max_episode_steps` if that is set.
Observations are (64, 64, 3) uint8 frames, so `encoder: auto` picks the IMPALA-CNN.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

MAX_LEVEL_SEED = 2**31 - 1
PLAYABLE_MODES = ("easy", "hard", "extreme", "memory")  # "exploration" fixes the level itself


def procgen_env(**kwargs: Any):
    """A `ProcgenGym3Env`."""
    return import_procgen().ProcgenGym3Env(**kwargs)


def import_procgen():
    """The procgen module. It imports the old `gym` package, whose notice ("Gym has been
    unmaintained...") would otherwise open every trainer's log."""
    with contextlib.redirect_stderr(io.StringIO()):
        import procgen
        import procgen.env
    return procgen


class LevelStarts:
    """The serialized first frame of each level, made on first use and kept."""

    def __init__(self, game: str, distribution_mode: str, options: dict[str, Any]):
        self.env_kwargs = {"env_name": game, "distribution_mode": distribution_mode, **options}
        self._states: dict[int, bytes] = {}

    def __getitem__(self, level: int) -> bytes:
        if level not in self._states:
            env = procgen_env(
                num=1, num_levels=1, start_level=level, rand_seed=0, **self.env_kwargs
            )
            self._states[level] = env.get_state()[0]
            env.close()
        return self._states[level]


class ProcgenVecEnv(gym.vector.VectorEnv):
    """`num_envs` Procgen games in one gym3 env, each playing levels drawn from `variations`."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        starts: LevelStarts,
        variations: Sequence[int],
        num_envs: int,
        seed: int,
        pinned: bool,
        num_threads: int,
        max_episode_steps: int | None,
    ):
        self.starts = starts
        self.variations = np.asarray(variations, dtype=np.int64)
        self.pinned = pinned
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.procgen = procgen_env(
            num=num_envs, rand_seed=seed, num_threads=num_threads, **starts.env_kwargs
        )
        self.single_observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.single_action_space = gym.spaces.Discrete(self.procgen.ac_space.eltype.n)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self._levels = np.zeros(num_envs, dtype=np.int64)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)

    def _begin_episodes(self, indices: np.ndarray) -> None:
        """Load a fresh episode of a newly drawn level into each sub-env in `indices`."""
        if self.pinned:
            self._levels[indices] = self.variations[indices]
        else:
            self._levels[indices] = self._rng.choice(self.variations, size=len(indices))
        self._elapsed[indices] = 0
        for i in indices:  # `set_state` replaces every sub-env; its C call takes one
            state = self.starts[int(self._levels[i])]
            self.procgen.call_c_func("set_state", int(i), state, len(state))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._begin_episodes(np.arange(self.num_envs))
        _, obs, _ = self.procgen.observe()
        return obs["rgb"], {"variation": self._levels.copy()}

    def step(self, actions):
        self.procgen.act(np.asarray(actions, dtype=np.int32))
        reward, obs, terminated = self.procgen.observe()
        self._elapsed += 1
        truncated = np.zeros_like(terminated)
        if self.max_episode_steps is not None:
            truncated = ~terminated & (self._elapsed >= self.max_episode_steps)
        info = {"variation": self._levels.copy(), "success": np.zeros(self.num_envs, dtype=bool)}
        if terminated.any():
            completed = self.procgen.get_info()
            info["success"] = np.array([i["prev_level_complete"] for i in completed], bool)
            info["success"] &= terminated
        ended = np.flatnonzero(terminated | truncated)
        if truncated.any():
            info["final_obs"] = obs["rgb"].copy()
        if len(ended):
            self._begin_episodes(ended)
            _, obs, _ = self.procgen.observe()
        return obs["rgb"], reward, terminated, truncated, info

    def close_extras(self, **kwargs) -> None:
        self.procgen.close()


class ProcgenFamily:
    """One Procgen game; see the module docstring."""

    def __init__(
        self,
        game: str = "bigfish",
        distribution_mode: str = "easy",
        num_threads: int = 0,
        max_episode_steps: int | None = None,
        **options: Any,
    ):
        try:
            games = import_procgen().env.ENV_NAMES
        except ImportError as err:
            raise ValueError(
                f"procgen is not installed ({err}): pip install 'gsl-k8s[procgen]'"
            ) from None
        if game not in games:
            raise ValueError(f"unknown Procgen game {game!r}: use one of {', '.join(games)}")
        if distribution_mode not in PLAYABLE_MODES:
            raise ValueError(
                f"distributionMode {distribution_mode!r}: use one of {', '.join(PLAYABLE_MODES)}"
            )
        self.starts = LevelStarts(game, distribution_mode, options)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"maxEpisodeSteps must be at least 1, got {max_episode_steps}")
        self.num_threads = num_threads
        self.max_episode_steps = max_episode_steps
        try:
            self.starts[0]  # builds the game once, so bad options fail here, not in a trainer
        except Exception as err:
            raise ValueError(f"cannot create Procgen {game} with {options}: {err}") from None

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> ProcgenVecEnv:
        """See `EnvFamily.make_vec`."""
        if pinned and len(variations) != num_envs:
            raise ValueError("pinned envs need exactly one variation per sub-env")
        if not all(0 <= v <= MAX_LEVEL_SEED for v in variations):
            raise ValueError(f"Procgen level seeds must lie in 0..{MAX_LEVEL_SEED}")
        return ProcgenVecEnv(
            self.starts,
            variations,
            num_envs,
            seed,
            pinned,
            self.num_threads,
            self.max_episode_steps,
        )
