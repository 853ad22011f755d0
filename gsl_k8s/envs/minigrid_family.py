"""MiniGrid and BabyAI (Farama MiniGrid 3.2) as a family: level seeds of one env, or a task set.

Two ways to name the variations:

- one env id (`env.id`, e.g. MiniGrid-DoorKey-5x5-v0): variation = level seed, the seed of
  the episode's reset, which fixes its layout (and, in BabyAI, its mission);
- a multi-task set (`kwargs.ids`, a list of env ids): variation i = task `ids[i]`, each
  episode a fresh layout (its seed drawn from the sub-env's generator), and the task's
  one-hot id appended to the observation (`oneHot`, as for Meta-World's MT sets).

The observation is one float32 vector, for an MLP:

- the agent's egocentric view (7x7 cells of object, colour, state indices), each cell as a
  one-hot of its object (11), colour (6) and state (3): 49 x 20 = 980 entries;
- its direction, one-hot (4);
- where the mission varies between episodes (every BabyAI level, and MiniGrid envs whose
  mission space has placeholders, e.g. Fetch; `mission` forces it on or off), the mission as
  a bag of words: each lower-case word of a fixed vocabulary (colour and object names from
  minigrid's tables, and the words of BabyAI's grammar and MiniGrid's missions; 58 words)
  counts in its own entry; each pair of adjacent words, and any other word, counts in one of
  `missionHashSize` (default 128) hashed entries, crc32(text) mod that. Word pairs keep what binds
  ("red ball", "ball next"), and crc32 is the same in every process;
- in a multi-task set, the task's one-hot.

Success is an episode that ended with a positive reward (MiniGrid and BabyAI reward only the
goal, at 1 - 0.9 x steps / max_steps). Episodes are truncated at the env's `max_steps` (a
`kwargs.maxSteps` overrides it); the last observation goes to `final_obs` for bootstrapping.
`variation_features` (for `partition: features`): a task's one-hot, or a level's layout:
the agent's start cell and, per object type, the share of cells it fills and its mean cell.
"""

from __future__ import annotations

import contextlib
import io
import re
import zlib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from gsl_k8s.envs.gymnasium_family import sync_variation_envs

MAX_LEVEL_SEED = 2**31 - 1
DIRECTIONS = 4
LAYOUT_OBJECTS = ("wall", "door", "key", "ball", "box", "goal", "lava")
# The words of BabyAI's instruction grammar and of MiniGrid's missions, besides colour and
# object names (which come from minigrid's own tables).
# fmt: off
INSTRUCTION_WORDS = (
    "go", "to", "pick", "up", "open", "put", "next", "the", "a", "then", "after", "you", "and",
    "in", "front", "of", "behind", "on", "your", "left", "right", "get", "use", "avoid", "find",
    "reach", "traverse", "fetch", "unlock", "near", "from", "at", "end", "must", "matching",
    "object", "square", "opening", "room", "rooms", "hallway",
)
# fmt: on


def import_minigrid():
    """The minigrid package (importing it registers the MiniGrid and BabyAI ids)."""
    try:
        import minigrid
        import minigrid.core.constants
        import minigrid.minigrid_env
    except ImportError as err:
        raise ValueError(
            f"minigrid is not installed ({err}): pip install 'gsl-k8s[minigrid]'"
        ) from None
    return minigrid


class MissionCode:
    """The mission as a bag of words: one entry per vocabulary word, and `hashed` entries
    for word pairs and other words (see the module docstring)."""

    def __init__(self, hashed: int):
        constants = import_minigrid().core.constants
        words = (*constants.COLOR_NAMES, *constants.OBJECT_TO_IDX, *INSTRUCTION_WORDS)
        self.vocabulary = {word: i for i, word in enumerate(dict.fromkeys(words))}
        self.hashed = hashed
        self.size = len(self.vocabulary) + hashed

    def _hashed_entry(self, text: str) -> int:
        return len(self.vocabulary) + zlib.crc32(text.encode()) % self.hashed

    def __call__(self, mission: str) -> np.ndarray:
        words = re.findall(r"[a-z]+", mission.lower())
        vector = np.zeros(self.size, np.float32)
        for word in words:
            vector[self.vocabulary.get(word, self._hashed_entry(word))] += 1.0
        for pair in zip(words, words[1:], strict=False):
            vector[self._hashed_entry(" ".join(pair))] += 1.0
        return vector


class ViewCode:
    """The agent's view, (7, 7, 3) object, colour and state indices, one-hot per cell."""

    def __init__(self):
        constants = import_minigrid().core.constants
        tables = (constants.OBJECT_TO_IDX, constants.COLOR_TO_IDX, constants.STATE_TO_IDX)
        sizes = [len(table) for table in tables]
        self.offsets = np.cumsum([0, *sizes[:-1]])
        self.cell_size = sum(sizes)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        cells = image.reshape(-1, 3).astype(np.int64)
        starts = np.arange(len(cells))[:, None] * self.cell_size
        out = np.zeros(len(cells) * self.cell_size, np.float32)
        out[starts + self.offsets + cells] = 1.0
        return out


def quiet_reset(env: gym.Env, seed: int) -> dict:
    """Reset `env`; BabyAI prints every rejected layout sample, which would flood the logs."""
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=seed)
    return obs


class MiniGridVariationEnv(gym.Env):
    """One sub-env: plays the variations it is given, one episode at a time."""

    def __init__(self, family: MiniGridFamily, variations: Sequence[int], rng: np.random.Generator):
        self.family = family
        self.variations = list(variations)
        self.rng = rng
        self.envs: dict[int, gym.Env] = {}  # task index -> its env, made on first use
        self.observation_space = gym.spaces.Box(0.0, np.inf, (family.obs_size,), np.float32)
        self.action_space = gym.spaces.Discrete(family.num_actions)
        self.env: gym.Env | None = None
        self.variation, self.task, self.context = 0, 0, np.zeros(0, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.variation = int(self.rng.choice(self.variations))
        self.task, level = self.family.task_and_level(self.variation, self.rng)
        if self.task not in self.envs:
            self.envs[self.task] = self.family.make_task_env(self.task)
        self.env = self.envs[self.task]
        obs = quiet_reset(self.env, level)
        self.context = self.family.context(self.task, obs["mission"])  # fixed for the episode
        return self._observe(obs), {"variation": self.variation, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        ended = terminated or truncated
        info = {"variation": self.variation, "success": bool(ended and reward > 0)}
        return self._observe(obs), float(reward), terminated, truncated, info

    def _observe(self, obs: dict) -> np.ndarray:
        direction = np.eye(DIRECTIONS, dtype=np.float32)[obs["direction"]]
        return np.concatenate([self.family.view_code(obs["image"]), direction, self.context])

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


class MiniGridFamily:
    """One MiniGrid/BabyAI env id's level seeds, or a multi-task set; see the module docstring."""

    def __init__(
        self,
        env_id: str | None = None,
        ids: Sequence[str] | None = None,
        one_hot: bool = True,
        mission: bool | None = None,
        mission_hash_size: int = 128,
        **env_kwargs: Any,
    ):
        if (env_id is None) == (ids is None):
            raise ValueError("minigrid takes one env id, or kwargs.ids for a multi-task set")
        if mission_hash_size < 1:
            raise ValueError(f"missionHashSize must be at least 1, got {mission_hash_size}")
        self.ids = [env_id] if ids is None else list(ids)
        self.multi_task = ids is not None
        self.env_kwargs = env_kwargs
        # Every task is built once here, so a bad id or kwarg fails before any training. All
        # MiniGrid envs share the 7 actions, and the kwargs (agentViewSize...) apply to each.
        probes = [self.make_task_env(task) for task in range(len(self.ids))]
        view = probes[0].observation_space["image"].shape
        self.num_actions = int(probes[0].action_space.n)
        varies = any(mission_varies(env) for env in probes)
        self.max_episode_steps: int | None = max(env.unwrapped.max_steps for env in probes)
        for env in probes:
            env.close()
        observe_mission = varies if mission is None else mission
        self.mission_code = MissionCode(mission_hash_size) if observe_mission else None
        self.mission_size = self.mission_code.size if observe_mission else 0
        self.one_hot = one_hot and self.multi_task
        task_size = len(self.ids) if self.one_hot else 0
        self.view_code = ViewCode()
        self.view_shape = view[:2]  # (7, 7) unless kwargs.agentViewSize says otherwise
        view_size = view[0] * view[1] * self.view_code.cell_size
        self.obs_size = view_size + DIRECTIONS + self.mission_size + task_size

    def make_task_env(self, task: int) -> gym.Env:
        """A fresh env of task `task` (`ids[task]`), made with the family's env kwargs."""
        env_id = self.ids[task]
        minigrid = import_minigrid()
        try:
            gym.spec(env_id)
        except gym.error.Error:
            raise ValueError(f"unknown MiniGrid or BabyAI env id {env_id!r}") from None
        try:
            env = gym.make(env_id, **self.env_kwargs)
        except Exception as err:  # bad kwargs fail here, before any training
            raise ValueError(f"cannot create {env_id} with {self.env_kwargs}: {err}") from None
        if not isinstance(env.unwrapped, minigrid.minigrid_env.MiniGridEnv):
            env.close()
            raise ValueError(f"{env_id} is not a MiniGrid or BabyAI env")
        return env

    def task_and_level(self, variation: int, rng: np.random.Generator) -> tuple[int, int]:
        """(task index, level seed) of an episode of `variation`."""
        if self.multi_task:
            return variation, int(rng.integers(MAX_LEVEL_SEED))
        return 0, variation

    def context(self, task: int, mission: str) -> np.ndarray:
        """What the observation appends to view and direction: mission vector, task one-hot."""
        parts = [np.zeros(0, np.float32)]
        if self.mission_code is not None:
            parts.append(self.mission_code(mission))
        if self.one_hot:
            parts.append(np.eye(len(self.ids), dtype=np.float32)[task])
        return np.concatenate(parts)

    def variation_features(self, variation: int) -> np.ndarray:
        """A task's one-hot; or a level's layout (and its mission, where observed)."""
        self._check([variation])
        if self.multi_task:
            return np.eye(len(self.ids), dtype=np.float32)[variation]
        env = self.make_task_env(0)
        obs = quiet_reset(env, variation)
        features = layout_features(env.unwrapped)
        env.close()
        if self.mission_code is not None:
            features = np.concatenate([features, self.mission_code(obs["mission"])])
        return features

    def _check(self, variations: Sequence[int]) -> None:
        top = len(self.ids) - 1 if self.multi_task else MAX_LEVEL_SEED
        outside = sorted({int(v) for v in variations if not 0 <= v <= top})
        if outside:
            raise ValueError(f"variations {outside[:5]} outside 0..{top}")

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> gym.vector.VectorEnv:
        """See `EnvFamily.make_vec`."""
        self._check(variations)

        def make_env(chosen: list[int], rng: np.random.Generator) -> gym.Env:
            return MiniGridVariationEnv(self, chosen, rng)

        return sync_variation_envs(make_env, variations, num_envs, seed, pinned)


def mission_varies(env: gym.Env) -> bool:
    """Whether `env` draws its mission per episode: a BabyAI level, or placeholders."""
    from minigrid.envs.babyai.core.roomgrid_level import BabyAIMissionSpace

    space = env.unwrapped.observation_space["mission"]
    return isinstance(space, BabyAIMissionSpace) or space.ordered_placeholders is not None


def layout_features(env: Any) -> np.ndarray:
    """A level's layout: the agent's start cell, then per object type in LAYOUT_OBJECTS the
    share of cells it fills and its mean cell (0, 0 if none); cells scaled to [0, 1]."""
    constants = import_minigrid().core.constants
    objects = env.grid.encode()[..., 0]  # (width, height) object indices
    scale = np.array(objects.shape) - 1.0
    features = [np.asarray(env.agent_pos) / scale]
    for name in LAYOUT_OBJECTS:
        cells = np.argwhere(objects == constants.OBJECT_TO_IDX[name])
        mean = cells.mean(0) / scale if len(cells) else np.zeros(2)
        features.append([len(cells) / objects.size, *mean])
    return np.concatenate(features).astype(np.float32)
