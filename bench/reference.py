"""Our built-in PPO against Stable-Baselines3 PPO, at rl-baselines3-zoo's tuned hyperparameters.

    pip install -e '.[bench]'     # stable-baselines3, for this benchmark only
    python bench/reference.py [--envs CartPole-v1 MiniGrid-DoorKey-5x5-v0] [--seeds 3]
                              [--steps 200000] [--learners product direct SB3]

Three learners, for each env and seed the same env steps from the same zoo entry, in
alternating runs (product seed 0, direct seed 0, SB3 seed 0, product seed 1, ...) so that all
see the same machine load, one torch thread each:

- product: what a user runs. A GSLExperiment whose `trainer` is the zoo's entry written
  field by field, every field the entry leaves out at our spec's default: the normalisation
  fields (on) unless the entry sets `normalize`, `clipValueLoss` (off, as SB3's), and `vfCoef`
  the zoo's vf_coef as written. `gsl train --role generalist` trains it in a subprocess
  (`generalist.envSteps` = the run's steps; the task evaluates only at its start and end);
  its last checkpoint is evaluated here. Steps/s: from the task's progress records, its env
  steps from the end of its first evaluation to its last update, over the time between.
- direct: our PPO class driven in this process with the zoo's settings made to match SB3's
  exactly: normalisation as the zoo's and `vfCoef` = 2 x vf_coef (the mapping is printed).
- SB3: Stable-Baselines3 PPO from the same settings as direct.

Each is evaluated on the same fresh episodes (one per reset seed never used in our
training: 20, MiniGrid 100), with greedy actions (Gaussian mean, argmax) and with sampled
ones, through its own observation normalisation, frozen (SB3: its VecNormalize statistics,
no reward normalisation): mean return and success rate (the env's `reward_threshold` reached,
or its own success; MiniGrid: the goal reached, a positive return). Steps/s = training env
steps / training wall time (evaluation excluded). The score of a learner against SB3 is (its
mean return - random's) / (SB3's - random's), where random is a uniform random policy on the
same episodes: 1.0 is SB3's level, 0 random's.

Hyperparameters: `hyperparams/ppo.yml` of DLR-RM/rl-baselines3-zoo (commit 22e3ff2, whose
MuJoCo entries are for the v4 envs; the v5 envs used here have the same dynamics), without
gSDE, mapped field by field onto our `TrainerSpec` (the table is printed). Where a zoo setting
cannot be expressed in our spec, SB3 is set to match ours, so that all run the same
hyperparameters:

- `ortho_init: False` (Hopper): ours always initialises orthogonally, so SB3 does too;
- `lin_` clip ranges: our spec has no clip schedule, so all stay constant (learning rates
  anneal on all: `annealLearningRate`, linear to 0 over the run);
- `use_sde` (Pendulum): no learner uses gSDE.

Field by field: `normalize: true` is `normalizeObservations` and `normalizeRewards` (with
VecNormalize's gamma = the agent's, as the zoo sets it); our value loss is half the squared
error and SB3's the whole, so direct's `vfCoef` is 2 x vf_coef; SB3 clips no value loss by
default (`clip_range_vf: None`): `clipValueLoss: false`; `batch_size` is `numMinibatches` =
n_envs x n_steps / batch_size; `log_std_init` is `network.initialLogStd`.

Our training episodes (both paths) reset with seeds drawn from 0..99 (the gymnasium
family's variations); SB3's envs are seeded once and reset from their own random streams.
Evaluation uses reset seeds 10,000..10,019 for all.

MiniGrid (the zoo's MiniGrid-DoorKey-5x5-v0 and MiniGrid-Empty-Random-5x5-v0, which it trains
1e5 steps, at its MiniGrid defaults: `normalize: true`, 8 envs x 128 steps, batch 64, 10
epochs, learning rate 2.5e-4): each learner sees the env as its own user runs it, so the
observations differ:

- SB3 as the zoo runs it: in the zoo's `env_wrapper`, minigrid's `FlatObsWrapper` (the 7x7
  view's object, colour and state indices, 147 integers, then the mission's characters
  one-hot, 96 x 28; no direction), through VecNormalize;
- ours as a user's spec names it: `env.family: minigrid`, `env.id`, `env.variations: 300`
  (level seeds 0..299), the family's observation (each view cell one-hot, the direction
  one-hot; the mission, the same in every episode of these ids, left out).

All are evaluated on level seeds 10,000..10,099 (SB3 through its wrapper). These ids have few
layouts (measured over seeds 0..299, agent cell and direction included: DoorKey-5x5 48,
Empty-Random-5x5 32), and both our 300 training seeds and SB3's unbounded stream cover every
one: the evaluation's seeds are fresh, its layouts are not.

At 100k env steps Hopper's greedy policy stands still for the whole 1000-step episode (return
about 1000, all healthy reward, measured): that row shows that a learner stays up, not that it
hops; `--envs Hopper-v5 --steps 300000` goes further.

Verdict per env, learner and metric (greedy and sampled return and success): "ours >= SB3
within noise" when its mean is at least SB3's minus one standard error of the difference of
the means (std over seeds, ddof 1).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from gsl_k8s import layout
from gsl_k8s.envs import EnvFamily, evaluate, make_family
from gsl_k8s.envs.gymnasium_family import GymnasiumFamily
from gsl_k8s.layout import GENERALIST
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import API_VERSION, KIND, EnvSpec, TrainerSpec, parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.checkpoint import latest_checkpoint, load_checkpoint
from gsl_k8s.trainer.ppo import PPO, env_actions

# Our training variations (0..N-1: reset seeds, MiniGrid level seeds) and the evaluation's
# fresh reset seeds, per family. 300 level seeds cover every layout of both MiniGrid ids.
TRAIN_VARIATIONS = {"gymnasium": 100, "minigrid": 300}
EVAL_SEEDS = {"gymnasium": list(range(10_000, 10_020)), "minigrid": list(range(10_000, 10_100))}
LEARNERS = ("product", "direct", "SB3")
MINIGRID = {  # the zoo's MiniGrid defaults ("following lcswillems/rl-starter-files")
    "env_wrapper": "minigrid.wrappers.FlatObsWrapper",
    "normalize": True,
    "n_envs": 8,
    "n_steps": 128,
    "batch_size": 64,
    "gae_lambda": 0.95,
    "gamma": 0.99,
    "n_epochs": 10,
    "ent_coef": 0.0,
    "learning_rate": 2.5e-4,
    "clip_range": 0.2,
}

# rl-baselines3-zoo hyperparams/ppo.yml (commit 22e3ff2). No learner uses gSDE (`use_sde`).
ZOO = {
    "CartPole-v1": {
        "n_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": "lin_0.001",
        "clip_range": "lin_0.2",
    },
    "Pendulum-v1": {
        "n_envs": 4,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
    "Hopper-v5": {  # zoo: Hopper-v4
        "normalize": True,
        "n_envs": 1,
        "batch_size": 32,
        "n_steps": 512,
        "gamma": 0.999,
        "learning_rate": 9.80828e-05,
        "ent_coef": 0.00229519,
        "clip_range": 0.2,
        "n_epochs": 5,
        "gae_lambda": 0.99,
        "max_grad_norm": 0.7,
        "vf_coef": 0.835671,
        "policy_kwargs": {
            "log_std_init": -2,
            "ortho_init": False,
            "activation_fn": "relu",
            "net_arch": [256, 256],
        },
    },
    "Swimmer-v5": {  # zoo: Swimmer-v4, "tuned", on top of its MuJoCo defaults
        "normalize": True,
        "gamma": 0.9999,
        "n_envs": 4,
        "n_steps": 1024,
        "batch_size": 256,
        "learning_rate": 6e-4,
        "gae_lambda": 0.98,
    },
    "MiniGrid-DoorKey-5x5-v0": MINIGRID,  # zoo: n_timesteps 1e5
    "MiniGrid-Empty-Random-5x5-v0": MINIGRID,  # zoo: n_timesteps 1e5
}
Policy = Callable[[bool], Callable[[np.ndarray], np.ndarray]]
"""A trained learner as numpy policies: `policy(greedy)` maps observations to actions."""
Trained = tuple[Policy, int, float]
"""A trained learner: its policies, the env steps it trained, its training steps/s."""
STEPS = 100_000  # per run: the zoo trains CartPole and Pendulum 1e5 steps, MuJoCo tasks 1e6


def our_env(env_id: str, evaluation: bool = False) -> dict:
    """`env_id` as a user's spec names it for our learners (`env.family`, `env.id`), with our
    training variations, or the evaluation's fresh seeds."""
    family = "minigrid" if env_id.startswith("MiniGrid-") else "gymnasium"
    variations = EVAL_SEEDS[family] if evaluation else TRAIN_VARIATIONS[family]
    return {"family": family, "id": env_id, "variations": variations}


def sb3_env_id(env_id: str) -> str:
    """The id SB3 trains and is evaluated on: `env_id`, in the zoo's `env_wrapper` if any."""
    wrapper = ZOO[env_id].get("env_wrapper")
    if wrapper is None:
        return env_id
    module, name = wrapper.rsplit(".", 1)
    wrap = getattr(importlib.import_module(module), name)
    wrapped = f"zoo/{env_id}"
    if wrapped not in gym.registry:  # success: a positive return, as our minigrid family's
        make = lambda **kwargs: wrap(gym.make(env_id, **kwargs))  # noqa: E731
        gym.register(wrapped, make, reward_threshold=math.ulp(0.0))
    return wrapped


def evaluation_family(env_id: str, learner: str) -> EnvFamily:
    """The env a learner is evaluated on (the fresh seeds): the one it trained on."""
    if learner == "SB3":
        return GymnasiumFamily(sb3_env_id(env_id))
    return make_family(EnvSpec(**our_env(env_id, evaluation=True)))


def schedule(value: float | str) -> tuple[float, bool]:
    """A zoo value and whether it is a `lin_` (linear to 0) schedule."""
    if isinstance(value, str) and value.startswith("lin_"):
        return float(value[4:]), True
    return float(value), False


def map_hyperparameters(env_id: str) -> tuple[dict, dict, list[tuple], list[str]]:
    """The zoo's settings for `env_id` as our TrainerSpec and as SB3 PPO kwargs.

    Returns (our `trainer` section, camelCase, for the direct path; SB3 kwargs; table rows
    (zoo field, zoo value, our field, ours, SB3); notes on what our spec cannot express and
    how SB3 was set instead).
    """
    from stable_baselines3 import PPO as SB3PPO

    defaults = {
        name: p.default
        for name, p in inspect.signature(SB3PPO.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    zoo = {"n_envs": 1, "normalize": False, **ZOO[env_id]}
    get = {**defaults, **zoo}.__getitem__
    policy = zoo.get("policy_kwargs", {})
    hidden, activation = policy.get("net_arch", [64, 64]), policy.get("activation_fn", "tanh")
    log_std = policy.get("log_std_init", 0.0)
    learning_rate, anneal = schedule(get("learning_rate"))
    clip_range, clip_linear = schedule(get("clip_range"))
    normalize, batch = zoo["normalize"], zoo["n_envs"] * get("n_steps")

    trainer = {
        "numEnvs": zoo["n_envs"],
        "rolloutSteps": get("n_steps"),
        "numMinibatches": batch // min(get("batch_size"), batch),
        "updateEpochs": get("n_epochs"),
        "learningRate": learning_rate,
        "annealLearningRate": anneal,
        "gamma": get("gamma"),
        "gaeLambda": get("gae_lambda"),
        "clipCoef": clip_range,
        "clipValueLoss": False,
        "entCoef": get("ent_coef"),
        "vfCoef": 2 * get("vf_coef"),
        "maxGradNorm": get("max_grad_norm"),
        "normalizeObservations": normalize,
        "normalizeRewards": normalize,
        "network": {"hiddenSizes": hidden, "activation": activation, "initialLogStd": log_std},
        "threads": 1,
        "device": "cpu",
    }
    sb3 = {
        "n_envs": zoo["n_envs"],
        "normalize": {"norm_obs": normalize, "norm_reward": normalize},
        "n_steps": get("n_steps"),
        "batch_size": get("batch_size"),
        "n_epochs": get("n_epochs"),
        "learning_rate": (lambda progress: progress * learning_rate) if anneal else learning_rate,
        "gamma": get("gamma"),
        "gae_lambda": get("gae_lambda"),
        "clip_range": clip_range,
        "ent_coef": get("ent_coef"),
        "vf_coef": get("vf_coef"),
        "max_grad_norm": get("max_grad_norm"),
        "use_sde": False,
        "policy_kwargs": {
            "net_arch": {"pi": hidden, "vf": hidden},
            "activation_fn": {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation],
            "log_std_init": log_std,
            "ortho_init": True,
        },
    }

    lr = f"{learning_rate:g}" + (" linear" if anneal else "")
    rows = [
        ("n_envs", zoo["n_envs"], "numEnvs", zoo["n_envs"], zoo["n_envs"]),
        ("n_steps", get("n_steps"), "rolloutSteps", get("n_steps"), get("n_steps")),
        ("batch_size", get("batch_size"), "numMinibatches", trainer["numMinibatches"], "same"),
        ("n_epochs", get("n_epochs"), "updateEpochs", get("n_epochs"), get("n_epochs")),
        ("learning_rate", get("learning_rate"), "learningRate, anneal..", lr, lr),
        ("gamma", get("gamma"), "gamma", get("gamma"), get("gamma")),
        ("gae_lambda", get("gae_lambda"), "gaeLambda", get("gae_lambda"), get("gae_lambda")),
        ("clip_range", get("clip_range"), "clipCoef", clip_range, clip_range),
        ("clip_range_vf", get("clip_range_vf"), "clipValueLoss", False, None),
        ("ent_coef", get("ent_coef"), "entCoef", get("ent_coef"), get("ent_coef")),
        ("vf_coef", get("vf_coef"), "vfCoef (x 1/2 loss)", trainer["vfCoef"], get("vf_coef")),
        ("max_grad_norm", get("max_grad_norm"), "maxGradNorm", get("max_grad_norm"), "same"),
        ("net_arch", policy.get("net_arch", "-"), "network.hiddenSizes", hidden, hidden),
        (
            "activation_fn",
            policy.get("activation_fn", "-"),
            "network.activation",
            activation,
            "same",
        ),
        (
            "log_std_init",
            policy.get("log_std_init", "-"),
            "network.initialLogStd",
            log_std,
            log_std,
        ),
        ("normalize", normalize, "normalizeObservations", normalize, "norm_obs"),
        ("normalize", normalize, "normalizeRewards", normalize, "norm_reward"),
        ("ortho_init", policy.get("ortho_init", "-"), "(always)", True, True),
        ("use_sde", zoo.get("use_sde", "-"), "(none)", False, False),
    ]
    notes = []
    if clip_linear:
        notes.append("clip_range lin_: our spec has no clip schedule; constant on all")
    if policy.get("ortho_init") is False:
        notes.append("ortho_init False: ours always initialises orthogonally; so does SB3 here")
    if zoo.get("use_sde"):
        notes.append("use_sde: not in our spec; no learner uses gSDE")
    if zoo.get("env_wrapper"):
        notes.append(f"env_wrapper: SB3 in {zoo['env_wrapper']}; ours, our family's observation")
    return trainer, sb3, rows, notes


def product_trainer(env_id: str, direct: dict) -> dict:
    """The `trainer` a user writes from the zoo's entry: the direct path's fields, less those
    our spec's defaults decide where the entry is silent (normalisation, value clipping),
    with `vfCoef` the zoo's vf_coef as written (SB3's default 0.5 where the entry has none)."""
    decided = ("normalizeObservations", "normalizeRewards", "clipValueLoss")
    trainer = {k: v for k, v in direct.items() if k not in decided}
    trainer["vfCoef"] = direct["vfCoef"] / 2
    if "normalize" in ZOO[env_id]:
        normalize = ZOO[env_id]["normalize"]
        trainer.update(normalizeObservations=normalize, normalizeRewards=normalize)
    return trainer


def product_experiment(env_id: str, trainer: dict, seed: int, env_steps: int) -> dict:
    """The GSLExperiment a user writes to train PPO on `env_id` with `gsl train`; its
    evaluations (at the start and at the end only) cost a few seconds."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "reference"},
        "spec": {
            "seed": seed,
            "env": our_env(env_id),
            "trainer": trainer,
            "generalist": {
                "envSteps": env_steps,
                "evaluation": {"everySteps": env_steps, "episodesPerVariation": 1},
            },
        },
    }


def train_product(env_id: str, trainer: dict, seed: int, steps: int) -> Trained:
    """`gsl train --role generalist` on the user's spec, in a subprocess; its last
    checkpoint as policies."""
    spec = TrainerSpec.model_validate(trainer)
    batch = spec.num_envs * spec.rollout_steps
    env_steps = iterations(steps, batch) * batch
    experiment = parse_spec(product_experiment(env_id, trainer, seed, env_steps))
    with tempfile.TemporaryDirectory(prefix="gsl-reference-") as run:
        store = open_store(run)
        store.write_bytes(layout.SPEC, experiment.to_json().encode())
        command = [sys.executable, "-m", "gsl_k8s", "train", "--run", run]
        command += ["--role", "generalist", "--metrics-port", "0"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"gsl train failed:\n{done.stderr}")
        state = load_checkpoint(store, latest_checkpoint(store, GENERALIST.checkpoints))
        records = read_progress(store, GENERALIST.progress)
    sps = training_steps_per_second(records)
    envs = make_family(experiment.spec.env).make_vec([0], 1, seed)
    agent = Agent(
        envs.single_observation_space,
        envs.single_action_space,
        spec.network,
        spec.normalize_observations,
    )
    agent.load_state_dict(state["model"])
    envs.close()
    return agent_policy(agent, envs.single_action_space), env_steps, sps


def training_steps_per_second(records: list[dict]) -> float:
    """A task's env steps per second from its progress records, from the end of its first
    evaluation to its last update (`charts/sps` counts the first evaluation in)."""
    start = next(r for r in records if "eval/return" in r)
    end = [r for r in records if "charts/sps" in r][-1]
    return (end["step"] - start["step"]) / (end["time"] - start["time"])


def train_direct(env_id: str, trainer: dict, seed: int, steps: int) -> Trained:
    """Train our PPO class in this process for at least `steps` env steps (whole rollouts)."""
    config = TrainerSpec.model_validate(trainer)
    torch.manual_seed(seed)
    env = EnvSpec(**our_env(env_id))
    envs = make_family(env).make_vec(env.variation_ids, config.num_envs, seed)
    space = envs.single_action_space
    agent = Agent(
        envs.single_observation_space, space, config.network, config.normalize_observations
    )
    ppo = PPO(agent, config, torch.device("cpu"))
    obs, _ = envs.reset(seed=seed)
    done = np.zeros(config.num_envs, dtype=bool)
    batch = config.num_envs * config.rollout_steps
    started = time.perf_counter()
    rollouts = iterations(steps, batch)
    for i in range(rollouts):
        rollout, obs, done = ppo.collect(envs, obs, done, config.rollout_steps)
        ppo.update(rollout, learning_rate_fraction=1.0 - i / rollouts)
    seconds = time.perf_counter() - started
    envs.close()
    return agent_policy(agent, space), rollouts * batch, rollouts * batch / seconds


def agent_policy(agent: Agent, space: gym.Space) -> Policy:
    """Our agent's greedy or sampled actions, as the env takes them."""

    def policy(greedy: bool) -> Callable[[np.ndarray], np.ndarray]:
        return lambda obs: env_actions(agent.act(torch.as_tensor(obs), greedy), space)

    return policy


def train_sb3(env_id: str, sb3: dict, seed: int, steps: int) -> Trained:
    """Train Stable-Baselines3 PPO for at least `steps` env steps (whole rollouts)."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    kwargs = dict(sb3)
    n_envs, normalize = kwargs.pop("n_envs"), kwargs.pop("normalize")
    envs = make_vec_env(sb3_env_id(env_id), n_envs, seed=seed)
    envs = VecNormalize(envs, gamma=sb3["gamma"], **normalize)
    model = SB3PPO("MlpPolicy", envs, seed=seed, device="cpu", **kwargs)
    batch = n_envs * sb3["n_steps"]
    env_steps = iterations(steps, batch) * batch
    started = time.perf_counter()
    model.learn(env_steps)
    seconds = time.perf_counter() - started
    envs.training = False
    envs.close()

    def policy(greedy: bool) -> Callable[[np.ndarray], np.ndarray]:
        return lambda obs: model.predict(envs.normalize_obs(obs), deterministic=greedy)[0]

    return policy, env_steps, env_steps / seconds


def iterations(steps: int, batch: int) -> int:
    """Rollouts of `batch` env steps needed to reach `steps` (every learner rounds up)."""
    return -(-steps // batch)


def evaluation(env_id: str, learner: str, act: Callable[[np.ndarray], np.ndarray]) -> dict:
    """Mean return and success rate of `act`, in the env `learner` trained on, over the
    evaluation episodes: one per fresh seed, the same seeds for all."""
    seeds = our_env(env_id, evaluation=True)["variations"]
    results = evaluate(act, evaluation_family(env_id, learner), seeds, 1, seed=0).values()
    return {
        "return": float(np.mean([r.mean_return for r in results])),
        "success": float(np.mean([r.success_rate for r in results])),
    }


def random_evaluation(env_id: str) -> dict:
    """A uniform random policy's evaluation, in our env: the score's zero."""
    envs = evaluation_family(env_id, "random").make_vec([0], 1, seed=0)
    space = envs.single_action_space
    envs.close()
    space.seed(0)
    return evaluation(env_id, "random", lambda obs: np.stack([space.sample() for _ in obs]))


def print_mapping(env_id: str, rows: list[tuple], notes: list[str], product: dict) -> None:
    print(f"\n{env_id}: rl-zoo -> our TrainerSpec (direct) -> SB3")
    print(f"  {'zoo field':<14}{'zoo':>14}  {'our field':<22}{'ours':>14}{'SB3':>14}")
    for zoo_field, zoo_value, our_field, ours, sb3 in rows:
        print(f"  {zoo_field:<14}{zoo_value!s:>14}  {our_field:<22}{ours!s:>14}{sb3!s:>14}")
    for note in notes:
        print(f"  note: {note}")
    defaults = TrainerSpec.model_validate(product)
    print(
        f"  product (gsl train): as ours, but vfCoef {product['vfCoef']:g}, "
        f"normalizeObservations {defaults.normalize_observations}, "
        f"normalizeRewards {defaults.normalize_rewards} (spec defaults unless the zoo sets them)"
    )


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


ACTIONS = ("greedy", "sampled")
METRICS = [f"{actions} {metric}" for actions in ACTIONS for metric in ("return", "success")]


def train_all(configs: dict, learners: list[str], seeds: int, steps: int) -> dict:
    """Every learner on every env and seed, alternating; evaluations and steps/s per run."""
    trainers = {"product": train_product, "direct": train_direct, "SB3": train_sb3}
    runs, done = len(configs) * seeds * len(learners), 0
    results: dict[str, dict[str, dict]] = {}
    for env_id, settings in configs.items():
        results[env_id] = {k: {key: [] for key in (*METRICS, "sps")} for k in learners}
        for seed in range(seeds):
            for learner in learners:
                started = time.perf_counter()
                policy, env_steps, sps = trainers[learner](env_id, settings[learner], seed, steps)
                r = results[env_id][learner]
                for actions in ACTIONS:
                    outcome = evaluation(env_id, learner, policy(actions == "greedy"))
                    for metric, value in outcome.items():
                        r[f"{actions} {metric}"].append(value)
                r["sps"].append(sps)
                r["env steps"] = env_steps
                done += 1
                print(
                    f"[{done}/{runs}] {env_id} {learner} seed {seed}: "
                    + ", ".join(f"{k} {r[k][-1]:.2f}" for k in METRICS)
                    + f", {env_steps:,} env steps, {sps:,.0f} steps/s, "
                    f"{time.perf_counter() - started:.0f} s",
                    flush=True,
                )
    return results


def print_results(results: dict, seeds: int) -> None:
    """The table, each learner's score and speed against SB3's, and the verdicts."""
    width = max(map(len, results)) + 1
    print(
        "\nReturn and success rate over fresh episodes (one per evaluation seed), mean ± std "
        f"over {seeds} seeds, greedy and sampled actions; training steps/s (mean over seeds), "
        "one torch thread each; random: a uniform policy's return and success; vs SB3: "
        "(return - random) / (SB3's - random), steps/s ratio"
    )
    print(
        f"{'env':<{width}}{'learner':<9}{'env steps':>10}"
        + "".join(f"{k:>18}" for k in METRICS)
        + f"{'steps/s':>9}{'random':>15}   vs SB3: greedy sampled steps/s"
    )
    verdicts = []
    for env_id, by_learner in results.items():
        zero = random_evaluation(env_id)
        reference = by_learner.get("SB3")
        for learner, r in by_learner.items():
            cells = "".join(f"{'{:.2f} ± {:.2f}'.format(*mean_std(r[k])):>18}" for k in METRICS)
            sps = float(np.mean(r["sps"]))
            line = f"{env_id:<{width}}{learner:<9}{r['env steps']:>10,}{cells}{sps:>9,.0f}"
            line += f"{zero['return']:>9.2f}{zero['success']:>6.2f}"
            if reference is not None:
                greedy, sampled = (
                    score(r[f"{k} return"], reference[f"{k} return"], zero["return"])
                    for k in ACTIONS
                )
                speed = sps / np.mean(reference["sps"])
                line += f"{greedy:>18.2f}{sampled:>8.2f}{speed:>7.2f}x"
                if learner != "SB3":
                    verdicts += [verdict(env_id, learner, k, r, reference) for k in METRICS]
            print(line)
    print("\n" + "\n".join(verdicts))


def score(returns: list[float], reference: list[float], zero: float) -> float:
    """Mean return against the reference's: 1 at its level, 0 at random's."""
    return float((np.mean(returns) - zero) / (np.mean(reference) - zero))


def verdict(env_id: str, learner: str, metric: str, ours: dict, sb3: dict) -> str:
    """Whether `ours`'s mean `metric` is at least SB3's within one standard error."""
    (mean, std), (ref, ref_std) = mean_std(ours[metric]), mean_std(sb3[metric])
    noise = np.sqrt(std**2 / len(ours[metric]) + ref_std**2 / len(sb3[metric]))
    holds = mean >= ref - noise
    return (
        f"{env_id} {learner} ({metric}): >= SB3 within noise: {'yes' if holds else 'NO'} "
        f"(difference {mean - ref:+.2f}, standard error {noise:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ZOO), choices=list(ZOO))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per learner")
    parser.add_argument("--steps", type=int, default=STEPS, help="env steps per run")
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    configs = {}
    for env_id in args.envs:
        direct, sb3, rows, notes = map_hyperparameters(env_id)
        product = product_trainer(env_id, direct)
        print_mapping(env_id, rows, notes, product)
        configs[env_id] = {"product": product, "direct": direct, "SB3": sb3}
    print()
    print_results(train_all(configs, args.learners, args.seeds, args.steps), args.seeds)


if __name__ == "__main__":
    main()
