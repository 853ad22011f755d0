"""Environment throughput vs training throughput, per environment family.

    python bench/throughput.py [--seconds 20] [--families forkmaze procgen ...]

For each family: env steps/s of its vector env under random actions ("raw"), and env
steps/s of PPO training on the same number of envs (rollouts plus updates, as `gsl train`
runs them, evaluation excluded). Their ratio is what training leaves of the simulator's
speed; where the simulator dominates (the state-based robotics families) it should be
>= 0.8. Procgen's simulator is ~100x faster than a CPU can train its IMPALA-CNN, so its
ratio measures the network, not the adapter. MiniGrid (DoorKey-5x5) and BabyAI (GoToLocal,
with its mission) are pure Python; their training should keep >= 0.5 of the raw rate.
Prints a table; one torch thread, as the trainers run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gsl_k8s.envs import make_family
from gsl_k8s.spec import EnvSpec, TrainerSpec
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.ppo import PPO

STATE = TrainerSpec(rollout_steps=128, normalize_observations=True)
IMAGES = TrainerSpec(rollout_steps=128)  # the default IMPALA-CNN, frames scaled by 1/255
# examples/minigrid.yaml's PPO: an MLP on the one-hot view, 4 epochs of 8 minibatches
GRID = TrainerSpec(
    rollout_steps=128, update_epochs=4, num_minibatches=8, learning_rate=1e-3, ent_coef=0.01
)

FAMILIES = {
    "forkmaze": (EnvSpec(family="forkmaze", variations=8), 32, STATE),
    "cartpole": (EnvSpec(family="gymnasium", id="CartPole-v1", variations=8), 8, STATE),
    "metaworld": (
        EnvSpec(family="metaworld", variations=10, kwargs={"maxEpisodeSteps": 150}),
        10,
        STATE,
    ),
    "maniskill2": (
        EnvSpec(family="maniskill2", variations=100, kwargs={"task": "PickCube-v0"}),
        8,
        STATE,
    ),
    "procgen": (
        EnvSpec(family="procgen", variations=200, kwargs={"game": "bigfish"}),
        16,
        IMAGES,
    ),
    "minigrid": (
        EnvSpec(family="minigrid", id="MiniGrid-DoorKey-5x5-v0", variations=64),
        16,
        GRID,
    ),
    "babyai": (
        EnvSpec(family="minigrid", id="BabyAI-GoToLocal-v0", variations=64),
        16,
        GRID,
    ),
}


def raw_steps_per_second(env: EnvSpec, num_envs: int, seconds: float) -> float:
    envs = make_family(env).make_vec(env.variation_ids, num_envs, seed=0)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        envs.step(envs.action_space.sample())
        steps += num_envs
    envs.close()
    return steps / (time.perf_counter() - started)


def training_steps_per_second(
    env: EnvSpec, num_envs: int, trainer: TrainerSpec, seconds: float
) -> float:
    config = trainer.model_copy(update={"num_envs": num_envs})
    envs = make_family(env).make_vec(env.variation_ids, num_envs, seed=0)
    agent = Agent(
        envs.single_observation_space,
        envs.single_action_space,
        config.network,
        config.normalize_observations,
    )
    ppo = PPO(agent, config, torch.device("cpu"))
    obs, _ = envs.reset(seed=0)
    done = np.zeros(num_envs, dtype=bool)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        rollout, obs, done = ppo.collect(envs, obs, done, config.rollout_steps)
        ppo.update(rollout)
        steps += config.rollout_steps * num_envs
    envs.close()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'family':<12}{'envs':>6}{'raw steps/s':>14}{'training steps/s':>18}{'ratio':>8}")
    for name in args.families:
        env, num_envs, trainer = FAMILIES[name]
        raw = raw_steps_per_second(env, num_envs, args.seconds)
        trained = training_steps_per_second(env, num_envs, trainer, args.seconds)
        print(f"{name:<12}{num_envs:>6}{raw:>14,.0f}{trained:>18,.0f}{trained / raw:>8.2g}")


if __name__ == "__main__":
    main()
