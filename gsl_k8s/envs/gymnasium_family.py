"""Any registered gymnasium env as a family: variation = the seed of each episode's reset.

Success is `info["success"]` or `info["is_success"]` where the env reports it; otherwise an
episode return of at least `success_threshold` (default: the env's `reward_threshold`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np


class VariationEnv(gym.Wrapper):
    """Resets each episode with a seed drawn from `variations` (or always the pinned one)."""

    def __init__(
        self,
        env: gym.Env,
        variations: Sequence[int],
        rng: np.random.Generator,
        success_threshold: float | None,
    ):
        super().__init__(env)
        self.variations = list(variations)
        self.rng = rng
        self.success_threshold = success_threshold
        self.variation = self.variations[0]
        self.episode_return = 0.0
        self.succeeded = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.variation = int(self.rng.choice(self.variations))
        self.episode_return, self.succeeded = 0.0, False
        obs, info = self.env.reset(seed=self.variation, options=options)
        return obs, {**info, "variation": self.variation, "success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        reported = info.get("success", info.get("is_success"))
        if reported is not None:
            self.succeeded |= bool(reported)
        elif (terminated or truncated) and self.success_threshold is not None:
            self.succeeded = self.episode_return >= self.success_threshold
        return (
            obs,
            reward,
            terminated,
            truncated,
            {**info, "variation": self.variation, "success": self.succeeded},
        )


class FinalInfoVectorEnv(gym.vector.VectorWrapper):
    """Reports `variation` and `success` of the episode that just stepped, also when it ended
    (same-step autoreset otherwise hands back the next episode's reset info), and its last
    observation as one array `final_obs` (see `gsl_k8s.envs.base`)."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        ended = terminated | truncated
        info = dict(info)
        if ended.any():
            final = info["final_info"]
            info["variation"] = np.where(ended, final["variation"], info["variation"])
            info["success"] = np.where(ended, final["success"], info["success"])
            final_obs = obs.copy()
            final_obs[ended] = np.stack(info["final_obs"][ended])
            info["final_obs"] = final_obs
        return obs, reward, terminated, truncated, info


def sync_variation_envs(
    make_env: Callable[[list[int], np.random.Generator], gym.Env],
    variations: Sequence[int],
    num_envs: int,
    seed: int,
    pinned: bool,
) -> gym.vector.VectorEnv:
    """`num_envs` single envs, each built by `make_env(its variations, its rng)`, stepped in
    this process with same-step autoreset; see `EnvFamily.make_vec` for `pinned`."""
    if pinned and len(variations) != num_envs:
        raise ValueError("pinned envs need exactly one variation per sub-env")
    # SeedSequence.spawn, not Generator.spawn (numpy 1.25+): mani-skill2 pins numpy<1.24
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num_envs)]

    def factory(i: int) -> Callable[[], gym.Env]:
        chosen = [variations[i]] if pinned else list(variations)
        return lambda: make_env(chosen, rngs[i])

    envs = gym.vector.SyncVectorEnv(
        [factory(i) for i in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return FinalInfoVectorEnv(envs)


class GymnasiumFamily:
    """A gymnasium env id, with reset seeds as variations."""

    def __init__(self, env_id: str, success_threshold: float | None = None, **kwargs):
        try:
            spec = gym.spec(env_id)
        except gym.error.Error as err:
            raise ValueError(f"unknown gymnasium env id {env_id!r} ({err})") from None
        try:
            env = gym.make(env_id, **kwargs)
        except Exception as err:  # surface bad kwargs or missing extras before any training
            raise ValueError(f"cannot create {env_id} with kwargs {kwargs}: {err}") from None
        observations, actions = env.observation_space, env.action_space
        self.max_episode_steps = env.spec.max_episode_steps if env.spec else None
        env.close()
        for kind, space in (("observation", observations), ("action", actions)):
            if not isinstance(space, gym.spaces.Box | gym.spaces.Discrete):
                raise ValueError(
                    f"{env_id}: its {kind} space {space} is not supported; the trainer takes "
                    "Box and Discrete spaces (wrap others, e.g. in FlattenObservation)"
                )
        self.env_id = env_id
        self.kwargs = kwargs
        self.success_threshold = (
            success_threshold if success_threshold is not None else spec.reward_threshold
        )

    def make_vec(
        self, variations: Sequence[int], num_envs: int, seed: int, *, pinned: bool = False
    ) -> gym.vector.VectorEnv:
        """See `EnvFamily.make_vec`."""
        return sync_variation_envs(
            lambda chosen, rng: VariationEnv(
                gym.make(self.env_id, **self.kwargs), chosen, rng, self.success_threshold
            ),
            variations,
            num_envs,
            seed,
            pinned,
        )
