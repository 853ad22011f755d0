"""Meta-World 3.x as a family: variation = (task, goal) of an MT1, MT10 or MT50 benchmark.

Variation v is goal `v % goals` of task `v // goals`, in the benchmark's task order, so the
variations of one task are contiguous (`partition: contiguous` gives one task per specialist).
Each sub-env applies its variation with `set_task` on the benchmark's explicitly built
`Task` objects, never through the random redraw on reset that Meta-World's own wrappers do.
Meta-World arms (one MuJoCo model each, about 20 MB) are pooled per process: a sub-env
borrows an arm of its episode's task at reset and returns it at the next reset or on close,
so a process holds about as many arms as episodes run at once (training, evaluation and demo
envs together), not one per sub-env and task.
Success is `info["success"]` at any step of the episode, as the benchmark defines it;
episodes end after `max_episode_steps` or, with `terminate_on_success`, at the first
success. `one_hot` appends the task's one-hot id to the observation (the paper's MT-10 setup).
`variation_features` (for `partition: features`) is the task one-hot and the goal position.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from gsl_k8s.envs.gymnasium_family import sync_variation_envs

BENCHMARKS = ("MT1", "MT10", "MT50")


@functools.cache
def benchmark_tasks(name: str, task: str | None, goals: int, seed: int) -> tuple[list, list]:
    """(env classes, per task its `goals` Task objects), in the benchmark's task order."""
    import metaworld

    default_goals = metaworld._N_GOALS
    metaworld._N_GOALS = goals  # how many goals Meta-World builds per task
    try:
        benchmark = (
            metaworld.MT1(task, seed=seed) if name == "MT1" else getattr(metaworld, name)(seed=seed)
        )
    finally:
        metaworld._N_GOALS = default_goals
    names = list(benchmark.train_classes)
    tasks = [[t for t in benchmark.train_tasks if t.env_name == n][:goals] for n in names]
    return [benchmark.train_classes[n] for n in names], tasks


class MetaWorldEnv(gym.Env):
    """One Meta-World arm that plays the variations it is given, one episode at a time."""

    def __init__(
        self, family: MetaWorldFamily, variations: Sequence[int], rng: np.random.Generator
    ):
        self.family = family
        self.variations = list(variations)
        self.rng = rng
        self.classes, self.tasks = family.tasks()
        self.arm: Any = None  # borrowed from the family's pool for the current episode
        extra = len(self.classes) if family.one_hot else 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (39 + extra,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.variation, self.task_index, self.steps, self.succeeded = 0, 0, 0, False

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        obs = obs.astype(np.float32)
        if self.family.one_hot:
            obs = np.concatenate(
                [obs, np.eye(len(self.classes), dtype=np.float32)[self.task_index]]
            )
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.close()
        self.variation = int(self.rng.choice(self.variations))
        self.task_index, goal = divmod(self.variation, self.family.goals)
        self.arm = self.family.borrow_arm(self.task_index)
        self.arm.set_task(self.tasks[self.task_index][goal])
        obs, _ = self.arm.reset(seed=int(self.rng.integers(2**31)))
        self.steps, self.succeeded = 0, False
        return self._observe(obs), {"variation": self.variation, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.arm.step(action)
        self.steps += 1
        self.succeeded |= bool(info["success"])
        terminated = bool(terminated) or (self.family.terminate_on_success and self.succeeded)
        truncated = bool(truncated) or self.steps >= self.family.max_episode_steps
        info = {"variation": self.variation, "success": self.succeeded}
        return self._observe(obs), float(reward), terminated, truncated, info

    def close(self) -> None:
        """Return the arm to the pool."""
        if self.arm is not None:
            self.family.return_arm(self.task_index, self.arm)
            self.arm = None


class MetaWorldFamily:
    """An MT1, MT10 or MT50 benchmark; see the module docstring."""

    def __init__(
        self,
        benchmark: str = "MT10",
        task: str | None = None,
        goals: int = 1,
        one_hot: bool = True,
        max_episode_steps: int = 500,
        terminate_on_success: bool = True,
        benchmark_seed: int = 0,
    ):
        if benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark {benchmark!r}: use one of {', '.join(BENCHMARKS)}")
        if (benchmark == "MT1") != (task is not None):
            raise ValueError("name a `task` (e.g. reach-v3) with MT1, and only with MT1")
        if not 1 <= goals <= 50:
            raise ValueError(f"goals must be 1..50 per task, got {goals}")
        if not 1 <= max_episode_steps <= 500:
            raise ValueError(f"maxEpisodeSteps must be 1..500, got {max_episode_steps}")
        self.benchmark, self.task, self.goals = benchmark, task, goals
        self.one_hot = one_hot
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = terminate_on_success
        self.benchmark_seed = benchmark_seed
        self._idle_arms: dict[int, list[Any]] = {}  # task index -> arms no episode uses
        self.arms_built = 0
        try:
            self.num_variations = len(self.tasks()[0]) * goals
        except (ImportError, ValueError) as err:
            raise ValueError(f"cannot build Meta-World {benchmark}: {err}") from None

    def tasks(self) -> tuple[list, list]:
        """The env classes and Task objects (built once per process)."""
        return benchmark_tasks(self.benchmark, self.task, self.goals, self.benchmark_seed)

    def borrow_arm(self, task_index: int) -> Any:
        """An arm of task `task_index` for one episode: an idle one, else a new one."""
        idle = self._idle_arms.get(task_index)
        if idle:
            return idle.pop()
        self.arms_built += 1
        return self.tasks()[0][task_index]()

    def return_arm(self, task_index: int, arm: Any) -> None:
        """Give an arm back for the next episode of its task."""
        self._idle_arms.setdefault(task_index, []).append(arm)

    def variation_features(self, variation: int) -> np.ndarray:
        """Variation `variation`'s task one-hot and goal position (the last three entries of
        its Task's `rand_vec`, where every Meta-World env keeps its target)."""
        if not 0 <= variation < self.num_variations:
            raise ValueError(f"variation {variation} outside 0..{self.num_variations - 1}")
        classes, tasks = self.tasks()
        task_index, goal = divmod(variation, self.goals)
        goal_position = pickle.loads(tasks[task_index][goal].data)["rand_vec"][-3:]
        one_hot = np.eye(len(classes))[task_index]
        return np.concatenate([one_hot, goal_position]).astype(np.float32)

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> gym.vector.VectorEnv:
        """See `EnvFamily.make_vec`."""
        unknown = sorted(set(variations) - set(range(self.num_variations)))
        if unknown:
            raise ValueError(f"variations {unknown} outside 0..{self.num_variations - 1}")
        return sync_variation_envs(
            lambda chosen, rng: MetaWorldEnv(self, chosen, rng), variations, num_envs, seed, pinned
        )
