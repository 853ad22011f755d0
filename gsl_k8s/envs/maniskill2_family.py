"""ManiSkill2 0.5.3 as a family: variation = the seed of each episode's reset.

A ManiSkill2 task draws its initial state (object poses, goal, robot joint noise) from the
seed given to `reset`, so variation v is the episode that `reset(seed=v)` starts: the same
cube pose and goal every time. Observations are the flat float32 state vector
(``obs_mode="state"``); actions are the Box of the controller `control_mode` names (7-dim
end-effector deltas plus gripper for the default ``pd_ee_delta_pose``). Success is
`info["success"]` at any step of the episode, as the task defines it; episodes end after
`max_episode_steps` (default: the task's own, 200) or, with `terminate_on_success`, at the
first success. `reward_mode` is ManiSkill2's: ``normalized_dense`` (at most 1 per step),
``dense`` or ``sparse``.

Supported are the primitive tasks whose assets ship in the mani-skill2 wheel (`TASKS`).
Tasks that need downloaded assets are tried, and fail with the command that downloads them;
the soft-body tasks (they need NVIDIA Warp and CUDA) are refused. Without a Vulkan rendering
device, ManiSkill2 runs physics-only (see `gsl_k8s.envs.sapien_headless`); the Vulkan loader
itself (``libvulkan1``) is needed either way, just to import SAPIEN.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gsl_k8s.envs.gymnasium_family import sync_variation_envs

TASKS = ("PickCube-v0", "LiftCube-v0", "StackCube-v0", "PegInsertionSide-v0", "PlugCharger-v0")
"""Tasks whose assets ship in the mani-skill2 wheel (measured to work without downloads)."""

SOFT_BODY_TASKS = ("Excavate-v0", "Fill-v0", "Pour-v0", "Hang-v0", "Write-v0", "Pinch-v0")
REWARD_MODES = ("normalized_dense", "dense", "sparse")
INSTALL = "pip install 'gsl-k8s[maniskill2]'"


def import_maniskill2() -> None:
    """Import ManiSkill2 (registering its tasks), or raise a one-line ValueError saying what to
    install."""
    try:
        with warnings.catch_warnings():  # sapien 2 imports pkg_resources, deprecated
            warnings.simplefilter("ignore")
            import mani_skill2.envs  # noqa: F401
    except ImportError as err:
        if "libvulkan" in str(err):
            raise ValueError(
                "ManiSkill2 needs the Vulkan loader libvulkan.so.1 even without a GPU: "
                "apt-get install libvulkan1"
            ) from None
        if err.name == "pkg_resources":
            raise ValueError(
                "SAPIEN 2 imports pkg_resources, which setuptools>=81 lacks: "
                "pip install 'setuptools<81'"
            ) from None
        if (err.name or "").split(".")[0] in ("mani_skill2", "sapien"):
            raise ValueError(f"ManiSkill2 is not installed: {INSTALL}") from None
        raise ValueError(f"cannot import ManiSkill2 ({err}): {INSTALL}") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class ManiSkill2Env(gym.Wrapper):
    """One ManiSkill2 task that plays the variations (reset seeds) it is given."""

    def __init__(
        self, family: ManiSkill2Family, variations: Sequence[int], rng: np.random.Generator
    ):
        super().__init__(family.make_task_env())
        self.family = family
        self.variations = list(variations)
        self.rng = rng
        shape = self.env.observation_space.shape
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.variation, self.succeeded = self.variations[0], False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.variation = int(self.rng.choice(self.variations))
        self.succeeded = False
        obs, _ = self.env.reset(seed=self.variation, options=options)
        return obs.astype(np.float32), {"variation": self.variation, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.succeeded |= bool(info["success"])
        terminated = self.family.terminate_on_success and (bool(terminated) or self.succeeded)
        info = {"variation": self.variation, "success": self.succeeded}
        return obs.astype(np.float32), float(reward), terminated, bool(truncated), info


class ManiSkill2Family:
    """A ManiSkill2 task, with reset seeds as variations; see the module docstring."""

    def __init__(
        self,
        task: str = "PickCube-v0",
        control_mode: str = "pd_ee_delta_pose",
        reward_mode: str = "normalized_dense",
        max_episode_steps: int | None = None,
        terminate_on_success: bool = True,
        **env_kwargs: Any,
    ):
        if task in SOFT_BODY_TASKS:
            raise ValueError(
                f"{task} is a soft-body task (needs NVIDIA Warp and CUDA), which this family "
                f"does not support; use one of {', '.join(TASKS)}"
            )
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"rewardMode {reward_mode!r}: use one of {', '.join(REWARD_MODES)}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"maxEpisodeSteps must be positive, got {max_episode_steps}")
        import_maniskill2()
        from mani_skill2.utils.registration import REGISTERED_ENVS

        if task not in REGISTERED_ENVS:
            raise ValueError(
                f"unknown ManiSkill2 task {task!r}: use one of {', '.join(TASKS)} "
                "(other ManiSkill2 0.5.3 tasks need downloaded assets)"
            )
        self.task, self.control_mode, self.reward_mode = task, control_mode, reward_mode
        self.max_episode_steps = max_episode_steps or REGISTERED_ENVS[task].max_episode_steps
        self.terminate_on_success = terminate_on_success
        self.env_kwargs = env_kwargs

        from gsl_k8s.envs.sapien_headless import disable_rendering_if_headless

        disable_rendering_if_headless()
        try:  # surface missing assets and bad kwargs before any training
            self.make_task_env().close()
        except FileNotFoundError as err:
            from mani_skill2 import ASSET_DIR

            missing = re.split(r"\.?\s*(?:Please download|To download)", _one_line(err))[0]
            raise ValueError(
                f"{task} needs assets that are not in the mani-skill2 wheel ({missing}): "
                f"download them with `python -m mani_skill2.utils.download_asset {task}` "
                f"into MS2_ASSET_DIR (now {Path(ASSET_DIR).resolve()}), which every trainer "
                f"must see; tasks that need no download: {', '.join(TASKS)}"
            ) from None
        except Exception as err:
            raise ValueError(
                f"cannot create ManiSkill2 {task} with controlMode={control_mode!r}, "
                f"kwargs {env_kwargs}: {_one_line(err)}"
            ) from None

    def make_task_env(self) -> gym.Env:
        """The raw ManiSkill2 env (state observations, the family's controller and limit)."""
        return gym.make(
            self.task,
            obs_mode="state",
            control_mode=self.control_mode,
            reward_mode=self.reward_mode,
            max_episode_steps=self.max_episode_steps,
            disable_env_checker=True,
            **self.env_kwargs,
        )

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> gym.vector.VectorEnv:
        """See `EnvFamily.make_vec`."""
        if not variations or min(variations) < 0 or max(variations) >= 2**32:
            raise ValueError("variations are reset seeds: 0 <= v < 2**32")
        return sync_variation_envs(
            lambda chosen, rng: ManiSkill2Env(self, chosen, rng), variations, num_envs, seed, pinned
        )
