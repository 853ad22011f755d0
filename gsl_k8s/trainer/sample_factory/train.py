"""One Sample Factory APPO run: `python -m gsl_k8s.trainer.sample_factory.train CONFIG`.

The backend (`backend.py`) starts one such process per training segment. CONFIG is JSON:
`argv` (SF's command line), and `trainer`, `env`, `variations`, `seed` for our env families
and `Agent`. SF spawns its learner, inference and rollout workers as processes that re-import
this module, so the demo-loss patch, the env and the model are installed at the top level.

Besides SF's checkpoints, the run appends one JSON line per training iteration to `STATS_FILE`
in its experiment directory: env steps, the episodes that ended since the previous line and
SF's latest training stats (summaries are rate-limited by SF, so not every line has them).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

from sample_factory.algo.runners.runner import AlgoObserver, Runner
from sample_factory.algo.utils.context import global_model_factory
from sample_factory.algo.utils.misc import (
    EPISODIC,
    LEARNER_ENV_STEPS,
    TRAIN_STATS,
    ExperimentStatus,
)
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
from sample_factory.envs.env_utils import register_env
from sample_factory.train import make_runner
from sample_factory.utils.utils import experiment_dir

from gsl_k8s.envs import make_family
from gsl_k8s.seeds import env_worker
from gsl_k8s.spec import EnvSpec, TrainerSpec
from gsl_k8s.trainer.sample_factory import STATS_FILE, STOP_FILE, demo_loss
from gsl_k8s.trainer.sample_factory.env import FamilyEnv, install_gymnasium1_fix
from gsl_k8s.trainer.sample_factory.model import AgentActorCritic

ENV_NAME = "gsl"


@functools.cache
def load_config(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def make_env(full_env_name, cfg=None, env_config=None, render_mode=None) -> FamilyEnv:
    """One vector env of the family, with this worker's share of the sub-envs."""
    config = load_config(cfg.gsl_config)
    family = make_family(EnvSpec.model_validate(config["env"]))
    index = env_config.env_id if env_config is not None else 0
    seed = env_worker(config["seed"], index)
    num_envs = config["trainer"]["numEnvs"] // (cfg.num_workers * cfg.num_envs_per_worker)
    return FamilyEnv(family.make_vec(config["variations"], num_envs, seed), seed)


def make_actor_critic(cfg, obs_space, action_space) -> AgentActorCritic:
    trainer = TrainerSpec.model_validate(load_config(cfg.gsl_config)["trainer"])
    return AgentActorCritic(obs_space, action_space, cfg, trainer)


demo_loss.install()
install_gymnasium1_fix()
register_env(ENV_NAME, make_env)
global_model_factory().register_actor_critic_factory(make_actor_critic)


class StatsLog(AlgoObserver):
    """Writes `STATS_FILE` (see the module docstring); stops the run, saving a checkpoint, at
    its target or when `STOP_FILE` appears (SIGINT would stop a serial run without saving).

    It reads the learner's report of each training iteration (`LEARNER_ENV_STEPS` and
    `TRAIN_STATS` in one message): SF's own `train_for_env_steps` check sees the env steps of
    the iteration before, so it stops one batch late.
    """

    def __init__(self, run_dir: str, target: int):
        self.path = os.path.join(run_dir, STATS_FILE)
        self.stop_path = os.path.join(run_dir, STOP_FILE)
        self.target = target
        self.returns: list[float] = []
        self.successes: list[float] = []

    def on_init(self, runner: Runner) -> None:
        runner.register_episodic_stats_handler(self._episodes)
        # `register_policy_msg_handler` replaces the handler list: append beside SF's own.
        runner.policy_msg_handlers[LEARNER_ENV_STEPS].append(self._iteration)

    def _episodes(self, runner: Runner, msg: dict, policy_id: int) -> None:
        stats = msg[EPISODIC]
        self.returns += [float(r) for r in stats["reward"]]
        self.successes += [float(s) for s in stats["success"]]

    def _iteration(self, runner: Runner, msg: dict, policy_id: int) -> None:
        env_steps = msg[LEARNER_ENV_STEPS]
        record = {
            "env_steps": env_steps,
            "time": time.time(),
            "returns": self.returns,
            "successes": self.successes,
            "train": {k: float(v) for k, v in msg.get(TRAIN_STATS, {}).items()},
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.returns, self.successes = [], []
        if env_steps >= self.target or os.path.exists(self.stop_path):
            runner._stop_training()


def main(config_path: str) -> int:
    """Run SF as the config says; 0 when it trained to its env-step target."""
    argv = [*load_config(config_path)["argv"], f"--gsl_config={config_path}"]
    parser, _ = parse_sf_args(argv)
    parser.add_argument("--gsl_config", required=True, help="the backend's JSON config")
    cfg, runner = make_runner(parse_full_cfg(parser, argv))
    runner.register_observer(StatsLog(experiment_dir(cfg), cfg.train_for_env_steps))
    status = runner.init()
    if status == ExperimentStatus.SUCCESS:
        status = runner.run()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
