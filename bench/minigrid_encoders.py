"""MiniGrid: the MLP on the family's observation vector vs the IMPALA-CNN on the same as a grid.

    python bench/minigrid_encoders.py [--ids MiniGrid-DoorKey-5x5-v0 ...] [--steps 150000]
        [--seeds 0 1] [--levels 64] [--channels 16 32 32]

For each env id and seed: our PPO (same settings for both encoders) trains for `--steps` env
steps on `--levels` level seeds, once with `encoder: mlp` on the family's vector, once with
the IMPALA-CNN on the same information laid out as a (7, 7, C) grid: the view's one-hot
planes, and direction, mission and task one-hot broadcast over the cells (255 for a 1, as
the CNN scales by 1/255). Prints per run the success rate and return of sampled actions over
the levels (4 episodes each, as the trainer evaluates), wall time and training env steps/s,
after a row for uniformly random actions.
One torch thread, as the trainers run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.envs.minigrid_family import MiniGridFamily
from gsl_k8s.spec import EnvSpec, NetworkSpec, TrainerSpec
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.ppo import PPO

TRAINER = TrainerSpec(
    num_envs=16,
    rollout_steps=128,
    update_epochs=4,
    num_minibatches=8,
    learning_rate=1e-3,
    ent_coef=0.01,
)
EPISODES_PER_LEVEL = 4


class GridObservations(gym.vector.VectorWrapper):
    """The family's vector observation as a uint8 (H, W, C) grid for the IMPALA-CNN."""

    def __init__(self, envs: gym.vector.VectorEnv, family: MiniGridFamily):
        super().__init__(envs)
        self.view = (*family.view_shape, family.view_code.cell_size)
        extra = family.obs_size - int(np.prod(self.view))
        self.single_observation_space = gym.spaces.Box(
            0, 255, (*self.view[:2], self.view[2] + extra), np.uint8
        )
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, envs.num_envs
        )

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return to_grid(obs, self.view), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = {**info, "final_obs": to_grid(info["final_obs"], self.view)}
        return to_grid(obs, self.view), reward, terminated, truncated, info


def to_grid(observations: np.ndarray, view: tuple[int, int, int]) -> np.ndarray:
    """(n, obs_size) vectors as (n, H, W, C) uint8 planes."""
    n, cells = len(observations), int(np.prod(view))
    planes = observations[:, :cells].reshape(n, *view)
    rest = observations[:, None, None, cells:]
    extra = np.broadcast_to(rest, (n, *view[:2], rest.shape[-1]))
    return (np.clip(np.concatenate([planes, extra], -1), 0, 1) * 255).astype(np.uint8)


class GridFamily:
    """The MiniGrid family with grid observations."""

    def __init__(self, family: MiniGridFamily):
        self.family = family

    def make_vec(self, variations: Sequence[int], num_envs: int, seed: int, *, pinned=False):
        envs = self.family.make_vec(variations, num_envs, seed, pinned=pinned)
        return GridObservations(envs, self.family)


def train_and_evaluate(family, encoder: str, args, seed: int) -> dict:
    """Train on the levels for `args.steps` env steps; evaluate sampled actions on them."""
    torch.manual_seed(seed)
    levels = list(range(args.levels))
    network = NetworkSpec(encoder=encoder, channels=args.channels)
    config = TRAINER.model_copy(update={"network": network})
    envs = family.make_vec(levels, config.num_envs, seed)
    agent = Agent(envs.single_observation_space, envs.single_action_space, network, True)
    ppo = PPO(agent, config, torch.device("cpu"))
    obs, _ = envs.reset(seed=seed)
    done = np.zeros(config.num_envs, dtype=bool)
    steps, started = 0, time.perf_counter()
    while steps < args.steps:
        rollout, obs, done = ppo.collect(envs, obs, done, config.rollout_steps)
        ppo.update(rollout)
        steps += config.rollout_steps * config.num_envs
    seconds = time.perf_counter() - started
    envs.close()

    def act(batch):
        return agent.act(torch.as_tensor(batch)).numpy()

    results = evaluate(act, family, levels, EPISODES_PER_LEVEL, seed + 1000)
    return {
        "success": np.mean([r.success_rate for r in results.values()]),
        "return": np.mean([r.mean_return for r in results.values()]),
        "seconds": seconds,
        "steps_per_second": steps / seconds,
        "steps": steps,
    }


def random_policy(family, args) -> dict:
    """Uniformly random actions on the levels, evaluated as the trained policies are."""
    rng = np.random.default_rng(0)
    envs = family.make_vec([0], 1, 0)
    actions = int(envs.single_action_space.n)
    envs.close()
    levels = list(range(args.levels))
    results = evaluate(
        lambda obs: rng.integers(0, actions, len(obs)), family, levels, EPISODES_PER_LEVEL, 1000
    )
    return {
        "success": np.mean([r.success_rate for r in results.values()]),
        "return": np.mean([r.mean_return for r in results.values()]),
        "seconds": 0.0,
        "steps_per_second": 0.0,
        "steps": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", nargs="+", default=["MiniGrid-DoorKey-5x5-v0"])
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--levels", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32])
    parser.add_argument(
        "--encoders", nargs="*", default=["mlp", "impala-cnn"], choices=["mlp", "impala-cnn"]
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = f"{'env':<28}{'encoder':<12}{'seed':>5}{'env steps':>11}{'success':>9}"
    print(header + f"{'return':>8}{'wall s':>8}{'steps/s':>9}", flush=True)
    for env_id in args.ids:
        family = make_family(EnvSpec(family="minigrid", id=env_id, variations=args.levels))
        runs = [("random", None)] + [(e, seed) for e in args.encoders for seed in args.seeds]
        for encoder, seed in runs:
            if encoder == "random":
                r = random_policy(family, args)
            else:
                chosen = GridFamily(family) if encoder == "impala-cnn" else family
                r = train_and_evaluate(chosen, encoder, args, seed)
            print(
                f"{env_id:<28}{encoder:<12}{seed if seed is not None else '-':>5}"
                f"{r['steps']:>11,}{r['success']:>9.3f}{r['return']:>8.3f}"
                f"{r['seconds']:>8.0f}{r['steps_per_second']:>9,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
