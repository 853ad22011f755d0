"""The built-in trainer backend (`trainer.backend: builtin`): our synchronous PPO.

Each `train_until` call is one rollout and its update, so the task loop checks its stop file
and SIGTERM between rollouts. The last rollout is shortened to end on the budget: training
stops on any multiple of `numEnvs` env steps. The learner's state in a checkpoint is Adam's
state and reward statistics (`PPO.state_dict`) and the demo term's
(`gsl_k8s.trainer.demo_terms`): its iteration (the finetune's demo weight decays with it),
with `finetune.demoWeighting: per-variation` the latest evaluation's success per
variation, and for GAIL the discriminator and its Adam state.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gsl_k8s.records.demos import demo_batches
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.backend import TaskContext
from gsl_k8s.trainer.demo_terms import DecayingTerm, demo_term
from gsl_k8s.trainer.ppo import PPO


class BuiltinBackend:
    """Trains the task's agent with `PPO` on `numEnvs` envs of its variations."""

    def __init__(self, context: TaskContext):
        self.context = context
        self.config = context.spec.trainer
        self.envs = context.family.make_vec(
            context.variations, self.config.num_envs, context.seeds.training_envs(0)
        )
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        self.granularity = self.config.num_envs

    def prepare(self, agent: Agent, step: int, demo_shards: list[str] | None) -> None:
        """PPO around `agent`, with the demo term when there are demo shards; reset the envs."""
        c = self.context
        self.ppo = PPO(agent, self.config, c.device)
        self.demos: DecayingTerm | None = None
        if demo_shards is not None:
            f = c.spec.finetune
            self.demos = demo_term(
                f,
                demo_batches(c.store, demo_shards, f.demo_batch_size, c.seeds.demo_batches()),
                agent,
                self.action_space,
                self.config.network,
                self.config.learning_rate,
                c.device,
            )
        self.step = step
        self.obs, _ = self.envs.reset(seed=c.seeds.training_envs(step))
        self.done = np.zeros(self.config.num_envs, dtype=bool)
        self.started_step, self.training_seconds = step, 0.0

    def load_state_dict(self, state: dict[str, Any], resumed: bool) -> None:
        """The learner's state (also cloned from the plateau); on a resume, also the demo
        term's iteration and GAIL's discriminator."""
        self.ppo.load_state_dict(state)
        if resumed and self.demos is not None:
            self.demos.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        if self.demos is None:
            return {**self.ppo.state_dict(), "demo_iteration": 0}
        return {**self.ppo.state_dict(), **self.demos.state_dict()}

    def evaluated(self, success: dict[int, float]) -> None:
        """The latest evaluation's success per variation: the per-variation demo weights
        follow it."""
        if self.demos is not None:
            self.demos.evaluated(success)

    def train_until(self, target: int) -> int:
        """One rollout (shortened to end on `target`) and its update; logs `charts/*` and
        `losses/*` (`charts/sps`: env steps per second of collection and updates since the
        task started, evaluations excluded); returns the env step reached."""
        cfg = self.config
        started = time.perf_counter()
        rollout_steps = min(cfg.rollout_steps, (target - self.step) // cfg.num_envs)
        rollout, self.obs, self.done = self.ppo.collect(
            self.envs, self.obs, self.done, rollout_steps
        )
        losses = self.ppo.update(rollout, self.demos, 1.0 - self.step / self.context.budget)
        self.step += rollout_steps * cfg.num_envs
        self.training_seconds += time.perf_counter() - started
        metrics = {
            "charts/sps": (self.step - self.started_step) / self.training_seconds,
            **losses,
        }
        if rollout.episodes.returns:
            metrics["charts/episodic_return"] = float(np.mean(rollout.episodes.returns))
            metrics["charts/success_rate"] = float(np.mean(rollout.episodes.successes))
        self.context.log(self.step, metrics)
        return self.step

    def close(self) -> None:
        self.envs.close()
