"""Our built-in PPO against Stable-Baselines3 PPO, at rl-baselines3-zoo's tuned hyperparameters.

    pip install -e '.[bench]'     # stable-baselines3, for this benchmark only
    python bench/reference.py [--envs CartPole-v1 Hopper-v5] [--seeds 3] [--steps 200000]

For each env and seed, both learners train in this process for the same env steps from the
same hyperparameters, in alternating runs (ours seed 0, SB3 seed 0, ours seed 1, ...) so that
both see the same machine load, with one torch thread each. Then each is evaluated greedily
(Gaussian mean, argmax) on the same 20 fresh episodes (reset seeds never used in training),
through its own observation normalisation (SB3: its VecNormalize statistics, frozen, no reward
normalisation). Steps/s = training env steps / training wall time (evaluation excluded).

Hyperparameters: `hyperparams/ppo.yml` of DLR-RM/rl-baselines3-zoo (commit 22e3ff2, whose
MuJoCo entries are for the v4 envs; the v5 envs used here have the same dynamics), without
gSDE, mapped field by field onto our `TrainerSpec` (the table is printed). Where a zoo setting
cannot be expressed in our spec, SB3 is set to match ours, so that both run the same
hyperparameters:


- `ortho_init: False` (Hopper): ours always initialises orthogonally, so SB3 does too;
- `lin_` clip ranges: our spec has no clip schedule, so both stay constant (learning rates
  anneal on both: `annealLearningRate`, linear to 0 over the run);
- `use_sde` (Pendulum): neither learner uses gSDE.

Field by field: `normalize: true` is `normalizeObservations` and `normalizeRewards` (with
VecNormalize's gamma = the agent's, as the zoo sets it); `vf_coef` becomes 2 x vf_coef in
`vfCoef`, since our value loss is half the squared error and SB3's the whole; SB3 clips no
value loss by default (`clip_range_vf: None`), so ours runs with `clipValueLoss: false`;
`batch_size` is `numMinibatches` = n_envs x n_steps / batch_size; `log_std_init` is
`network.initialLogStd`.

Our training episodes reset with seeds drawn from 0..9,999 (the gymnasium family's
variations); SB3's envs are seeded once and reset from their own random streams. Evaluation
uses reset seeds 10,000..10,019 for both.

At 100k env steps Hopper's greedy policy stands still for the whole 1000-step episode (return
about 1000, all healthy reward, measured): that row shows that a learner stays up, not that it
hops; `--envs Hopper-v5 --steps 300000` goes further.

Verdict per env: "ours >= SB3 within noise" when ours' mean return is at least SB3's minus
one standard error of the difference of the means (std over seeds, ddof 1).
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.spec import EnvSpec, TrainerSpec
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.ppo import PPO

TRAIN_SEEDS = 10_000
EVAL_SEEDS = list(range(TRAIN_SEEDS, TRAIN_SEEDS + 20))

# rl-baselines3-zoo hyperparams/ppo.yml (commit 22e3ff2). Neither learner uses gSDE (`use_sde`).
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
}
Trained = tuple[Callable[[np.ndarray], np.ndarray], int, float]
"""A trained learner: its greedy numpy policy, the env steps it trained, its training seconds."""
STEPS = 100_000  # per run: the zoo trains CartPole and Pendulum 1e5 steps, MuJoCo tasks 1e6


def schedule(value: float | str) -> tuple[float, bool]:
    """A zoo value and whether it is a `lin_` (linear to 0) schedule."""
    if isinstance(value, str) and value.startswith("lin_"):
        return float(value[4:]), True
    return float(value), False


def map_hyperparameters(env_id: str) -> tuple[TrainerSpec, dict, list[tuple], list[str]]:
    """The zoo's settings for `env_id` as our TrainerSpec and as SB3 PPO kwargs.

    Returns (trainer, sb3 kwargs, table rows (zoo field, zoo value, our field, ours, SB3),
    notes on what our spec cannot express and how SB3 was set instead).
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
        notes.append("clip_range lin_: our spec has no clip schedule; constant on both")
    if policy.get("ortho_init") is False:
        notes.append("ortho_init False: ours always initialises orthogonally; so does SB3 here")
    if zoo.get("use_sde"):
        notes.append("use_sde: not in our spec; neither learner uses gSDE")
    return TrainerSpec.model_validate(trainer), sb3, rows, notes


def train_ours(env_id: str, trainer: TrainerSpec, seed: int, steps: int) -> Trained:
    """Train our PPO for at least `steps` env steps (whole rollouts).

    All use of the trainer's API is here.
    """
    torch.manual_seed(seed)
    family = make_family(EnvSpec(family="gymnasium", id=env_id, variations=TRAIN_SEEDS))
    envs = family.make_vec(range(TRAIN_SEEDS), trainer.num_envs, seed)
    space = envs.single_action_space
    agent = Agent(
        envs.single_observation_space, space, trainer.network, trainer.normalize_observations
    )
    ppo = PPO(agent, trainer, torch.device("cpu"))
    obs, _ = envs.reset(seed=seed)
    done = np.zeros(trainer.num_envs, dtype=bool)
    batch = trainer.num_envs * trainer.rollout_steps
    started = time.perf_counter()
    rollouts = iterations(steps, batch)
    for i in range(rollouts):
        rollout, obs, done = ppo.collect(envs, obs, done, trainer.rollout_steps)
        ppo.update(rollout, learning_rate_fraction=1.0 - i / rollouts)
    seconds = time.perf_counter() - started
    envs.close()

    def act(obs: np.ndarray) -> np.ndarray:
        return ppo.env_actions(agent.act(torch.as_tensor(obs), deterministic=True), space)

    return act, rollouts * batch, seconds


def train_sb3(env_id: str, sb3: dict, seed: int, steps: int) -> Trained:
    """Train Stable-Baselines3 PPO for at least `steps` env steps (whole rollouts)."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    kwargs = dict(sb3)
    n_envs, normalize = kwargs.pop("n_envs"), kwargs.pop("normalize")
    envs = VecNormalize(make_vec_env(env_id, n_envs, seed=seed), gamma=sb3["gamma"], **normalize)
    model = SB3PPO("MlpPolicy", envs, seed=seed, device="cpu", **kwargs)
    batch = n_envs * sb3["n_steps"]
    started = time.perf_counter()
    model.learn(iterations(steps, batch) * batch)
    seconds = time.perf_counter() - started
    envs.training = False
    envs.close()

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(envs.normalize_obs(obs), deterministic=True)[0]

    return act, iterations(steps, batch) * batch, seconds


def iterations(steps: int, batch: int) -> int:
    """Rollouts of `batch` env steps needed to reach `steps` (both learners round up)."""
    return -(-steps // batch)


def greedy_return(env_id: str, act: Callable) -> float:
    """Mean return of `act` over the evaluation episodes, the same reset seeds for everyone."""
    family = make_family(EnvSpec(family="gymnasium", id=env_id, variations=EVAL_SEEDS))
    results = evaluate(act, family, EVAL_SEEDS, episodes=1, seed=0)
    return float(np.mean([r.mean_return for r in results.values()]))


def print_mapping(env_id: str, rows: list[tuple], notes: list[str]) -> None:
    print(f"\n{env_id}: rl-zoo -> our TrainerSpec -> SB3")
    print(f"  {'zoo field':<14}{'zoo':>14}  {'our field':<22}{'ours':>14}{'SB3':>14}")
    for zoo_field, zoo_value, our_field, ours, sb3 in rows:
        print(f"  {zoo_field:<14}{zoo_value!s:>14}  {our_field:<22}{ours!s:>14}{sb3!s:>14}")
    for note in notes:
        print(f"  note: {note}")


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ZOO), choices=list(ZOO))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per learner")
    parser.add_argument("--steps", type=int, default=STEPS, help="env steps per run")
    args = parser.parse_args()
    torch.set_num_threads(1)

    configs = {env_id: map_hyperparameters(env_id) for env_id in args.envs}
    for env_id, (_, _, rows, notes) in configs.items():
        print_mapping(env_id, rows, notes)
    runs = len(args.envs) * args.seeds * 2
    results: dict[str, dict[str, list]] = {}
    print()
    for env_id, (trainer, sb3, _, _) in configs.items():
        learners = {
            "ours": partial(train_ours, env_id, trainer),
            "SB3": partial(train_sb3, env_id, sb3),
        }
        results[env_id] = {"ours": [], "SB3": [], "ours sps": [], "SB3 sps": []}
        for seed in range(args.seeds):
            for learner, train in learners.items():
                act, env_steps, seconds = train(seed, args.steps)
                result = greedy_return(env_id, act)
                results[env_id][learner].append(result)
                results[env_id][f"{learner} sps"].append(env_steps / seconds)
                results[env_id]["env steps"] = env_steps
                done = sum(len(r["ours"]) + len(r["SB3"]) for r in results.values())
                print(
                    f"[{done}/{runs}] {env_id} {learner} seed {seed}: return {result:.1f}, "
                    f"{env_steps:,} env steps, {env_steps / seconds:,.0f} steps/s, "
                    f"{seconds:.0f} s",
                    flush=True,
                )

    print(
        f"\nGreedy return over {len(EVAL_SEEDS)} fresh episodes, mean ± std over {args.seeds} "
        "seeds; training steps/s (mean over seeds), one torch thread each"
    )
    header = f"{'env':<16}{'env steps':>10}{'ours':>20}{'SB3':>20}{'ours steps/s':>14}"
    print(header + f"{'SB3 steps/s':>13}{'ours/SB3':>10}")
    verdicts = []
    for env_id, r in results.items():
        (ours, ours_std), (ref, ref_std) = mean_std(r["ours"]), mean_std(r["SB3"])
        ours_sps, ref_sps = float(np.mean(r["ours sps"])), float(np.mean(r["SB3 sps"]))
        print(
            f"{env_id:<16}{r['env steps']:>10,}{f'{ours:.1f} ± {ours_std:.1f}':>20}"
            f"{f'{ref:.1f} ± {ref_std:.1f}':>20}{ours_sps:>14,.0f}{ref_sps:>13,.0f}"
            f"{ours_sps / ref_sps:>9.2f}x"
        )
        noise = np.sqrt((ours_std**2 + ref_std**2) / args.seeds)
        holds = ours >= ref - noise
        verdicts.append(
            f"{env_id}: ours >= SB3 within noise: {'yes' if holds else 'NO'} "
            f"(difference {ours - ref:+.1f}, standard error {noise:.1f})"
        )
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
