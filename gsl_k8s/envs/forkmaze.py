"""Fork-Maze: a corridor that forks into K goal arms; a context value says which goal counts.

Our version of the illustrative example of the GSL paper (Jia et al., ICML 2022), whose
generalist first ignores the context, then cannot memorise all goals. The grid, K = 4::

    # # . G        '#' wall, '.' free. The agent starts at S, walks the shared
    # # . #        corridor to the spine (column `corridor_length`), moves along the
    # # . G        spine to the arm of its goal and follows the arm to its end G.
    S . . #
    # # . G        Observation: (x, y, c) scaled to [-1, 1], with c = 2k/(K-1) - 1 for
    # # . #        goal k. Which arm belongs to goal k is a fixed random permutation
    # # . G        (`layout_seed`): c is a label, not a position, so the policy must
                   memorise K arbitrary context-to-arm mappings.

`partition: features` groups goals by their arm's geometry (`variation_features`): nearby
arms share most of the way to them.

Reward: 1 on reaching the own goal, plus potential-based shaping (Ng et al. 1999) of
`shaping` times the decrease in maze distance to the own goal, scaled so that the longest
start-to-goal path earns `shaping` in all. Reaching another goal ends the episode; it is
truncated after `horizon` steps. Variation = goal index k.

With K = 8 and the defaults, PPO learns the shared corridor and about half the goals,
then its softmax saturates on the rest: they get no reward and inherit their neighbours'
actions in context space. A specialist cloned from that policy and trained on one or two
of those goals alone solves them; see docs/benchmarks.md for measured curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

UP, DOWN, LEFT, RIGHT = range(4)
_MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])


@dataclass(frozen=True)
class ForkMazeLayout:
    """The maze geometry, shared by every role of an experiment."""

    goals: int = 8
    corridor_length: int = 2
    arm_length: int = 1
    horizon: int = 40
    layout_seed: int = 0
    shaping: float = 1.0
    free: np.ndarray = field(init=False, repr=False, compare=False)
    goal_cells: np.ndarray = field(init=False, repr=False, compare=False)
    distance: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.goals < 2 or self.corridor_length < 1 or self.arm_length < 1:
            raise ValueError("forkmaze needs goals >= 2, corridorLength >= 1, armLength >= 1")
        width = self.corridor_length + 1 + self.arm_length
        height = 2 * self.goals - 1
        free = np.zeros((width, height), dtype=bool)
        free[: self.corridor_length, self.start[1]] = True
        free[self.corridor_length, :] = True
        arm_rows = 2 * np.random.default_rng(self.layout_seed).permutation(self.goals)
        for row in arm_rows:
            free[self.corridor_length + 1 :, row] = True
        goal_cells = np.stack([np.full(self.goals, width - 1), arm_rows], axis=1)
        object.__setattr__(self, "free", free)
        object.__setattr__(self, "goal_cells", goal_cells)
        object.__setattr__(self, "distance", np.stack([_bfs(free, g) for g in goal_cells]))

    @property
    def start(self) -> tuple[int, int]:
        """The start cell (x, y): the corridor's left end, on the middle row."""
        return 0, self.goals - 1

    @property
    def longest_path(self) -> int:
        """The longest shortest path from the start to a goal."""
        return int(self.distance[:, self.start[0], self.start[1]].max())

    @property
    def shape(self) -> tuple[int, int]:
        """(width, height) of the grid."""
        return self.free.shape


def _bfs(free: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Shortest-path distance from `source` to every free cell (unreachable: -1)."""
    distance = np.full(free.shape, -1, dtype=np.int64)
    distance[tuple(source)] = 0
    frontier = [tuple(source)]
    while frontier:
        nxt = []
        for x, y in frontier:
            for dx, dy in _MOVES:
                cx, cy = x + dx, y + dy
                inside = 0 <= cx < free.shape[0] and 0 <= cy < free.shape[1]
                if inside and free[cx, cy] and distance[cx, cy] < 0:
                    distance[cx, cy] = distance[x, y] + 1
                    nxt.append((cx, cy))
        frontier = nxt
    return distance


class ForkMazeVecEnv(gym.vector.VectorEnv):
    """Numpy-vectorized Fork-Maze: all sub-envs step in a handful of array operations."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        layout: ForkMazeLayout,
        variations: Sequence[int],
        num_envs: int,
        seed: int,
        pinned: bool = False,
    ):
        if pinned and len(variations) != num_envs:
            raise ValueError("pinned envs need exactly one variation per sub-env")
        if not set(variations) <= set(range(layout.goals)):
            raise ValueError(f"forkmaze variations must lie in 0..{layout.goals - 1}")
        self.layout = layout
        self.variations = np.asarray(variations, dtype=np.int64)
        self.pinned = pinned
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.single_action_space = gym.spaces.Discrete(4)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self._scale = np.array(layout.shape, dtype=np.float32) - 1
        self._position = np.zeros((num_envs, 2), dtype=np.int64)
        self._goal = np.zeros(num_envs, dtype=np.int64)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)

    def _begin_episodes(self, mask: np.ndarray) -> None:
        count = int(mask.sum())
        self._position[mask] = self.layout.start
        self._elapsed[mask] = 0
        if self.pinned:
            self._goal[mask] = self.variations[mask]
        else:
            self._goal[mask] = self._rng.choice(self.variations, size=count)

    def _observe(self) -> np.ndarray:
        xy = 2.0 * self._position / self._scale - 1.0
        context = 2.0 * self._goal / (self.layout.goals - 1) - 1.0
        return np.concatenate([xy, context[:, None]], axis=1).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._begin_episodes(np.ones(self.num_envs, dtype=bool))
        return self._observe(), {"variation": self._goal.copy()}

    def step(self, actions):
        before = self.layout.distance[self._goal, self._position[:, 0], self._position[:, 1]]
        target = self._position + _MOVES[np.asarray(actions)]
        width, height = self.layout.shape
        inside = (target[:, 0] >= 0) & (target[:, 0] < width)
        inside &= (target[:, 1] >= 0) & (target[:, 1] < height)
        clipped = np.clip(target, 0, [width - 1, height - 1])
        can_move = inside & self.layout.free[clipped[:, 0], clipped[:, 1]]
        self._position = np.where(can_move[:, None], target, self._position)
        self._elapsed += 1

        at_goal = (self._position[:, None, :] == self.layout.goal_cells[None]).all(axis=2)
        reached_any = at_goal.any(axis=1)
        success = at_goal[np.arange(self.num_envs), self._goal]
        terminated = reached_any
        truncated = ~terminated & (self._elapsed >= self.layout.horizon)
        after = self.layout.distance[self._goal, self._position[:, 0], self._position[:, 1]]
        reward = success + self.layout.shaping * (before - after) / self.layout.longest_path
        info = {"variation": self._goal.copy(), "success": success}
        if truncated.any():
            info["final_obs"] = self._observe()
        self._begin_episodes(terminated | truncated)
        return self._observe(), reward.astype(np.float32), terminated, truncated, info


class ForkMazeFamily:
    """The forkmaze family: variation k = goal k."""

    def __init__(self, goals: int, **kwargs):
        self.layout = ForkMazeLayout(goals=goals, **kwargs)
        self.max_episode_steps: int | None = self.layout.horizon

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> ForkMazeVecEnv:
        """See `EnvFamily.make_vec`."""
        return ForkMazeVecEnv(self.layout, variations, num_envs, seed, pinned)

    def variation_features(self, variation: int) -> np.ndarray:
        """Goal `variation`'s arm geometry: its goal cell (x, y) scaled to [-1, 1] as the
        observations are, and the shortest path to it from the start over the longest one."""
        if not 0 <= variation < self.layout.goals:
            raise ValueError(f"forkmaze variations lie in 0..{self.layout.goals - 1}")
        cell = self.layout.goal_cells[variation]
        scale = np.array(self.layout.shape, dtype=np.float64) - 1
        path = self.layout.distance[variation][self.layout.start] / self.layout.longest_path
        return np.array([*(2.0 * cell / scale - 1.0), path], dtype=np.float32)
