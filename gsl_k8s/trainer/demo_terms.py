"""Phase II's demo terms (`finetune.method`), as `PPO.update` calls them.

DAPG and BC add `demo_loss` on a demo minibatch to every PPO minibatch's loss; GAIL trains
its discriminator on each rollout and adds its reward to the rollout's before GAE. Either
weight is `demo_weight`, decaying with the term's `iteration`, the count of its updates.
A checkpoint holds the iteration (`demo_iteration`), with `finetune.demoWeighting:
per-variation` the latest success per variation (`demo_success`), and for GAIL the
discriminator and its Adam state (`discriminator`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gsl_k8s.core.losses import (
    DemoLikelihood,
    DemoMethod,
    demo_loss,
    demo_weight,
    variation_demo_weights,
)
from gsl_k8s.records.demos import DemoBatch
from gsl_k8s.spec import FinetuneSpec, NetworkSpec
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.gail import GAIL
from gsl_k8s.trainer.ppo import DemoTerm, Rollout


@dataclass(kw_only=True)
class DecayingTerm(DemoTerm):
    """A demo term whose weight decays with its updates: what both kinds share."""

    batches: Iterator[DemoBatch]
    coef: float
    decay: float
    iteration: int = 0

    def step(self) -> None:
        self.iteration += 1

    def state_dict(self) -> dict[str, Any]:
        """The term's state for checkpoints."""
        return {"demo_iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.iteration = state["demo_iteration"]

    def evaluated(self, success: dict[int, float]) -> None:
        """The latest evaluation's success per variation (for per-variation weights)."""


@dataclass(kw_only=True)
class LikelihoodTerm(DecayingTerm):
    """DAPG's and BC's term: `demo_loss` of the next demo minibatch, added to every PPO
    minibatch's loss. With `success` (the policy's latest success rate per variation), the
    weight is per variation (`variation_demo_weights`); without, one decaying number."""

    method: DemoMethod
    likelihood: DemoLikelihood = "log"
    success: dict[int, float] | None = None
    _weights: Callable[[np.ndarray], float | torch.Tensor] = field(init=False, repr=False)

    def schedule(self, advantages: torch.Tensor) -> None:
        """This update's weight, as a function of the demo steps' variations; DAPG's grows
        with the largest advantage."""
        max_advantage = float(advantages.max())
        decayed = demo_weight(self.method, self.coef, self.decay, self.iteration, max_advantage)
        if self.success is None:
            self._weights = lambda variations: decayed
            return
        undecayed = demo_weight(self.method, self.coef, 1.0, 0, max_advantage)
        self._weights = partial(
            variation_demo_weights, undecayed, self.decay**self.iteration, self.success
        )

    def minibatch_loss(
        self, agent: Agent, device: torch.device
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = next(self.batches)
        obs, actions = (torch.as_tensor(x, device=device) for x in (batch.obs, batch.actions))
        weight = torch.as_tensor(self._weights(batch.variations), device=device)
        loss = demo_loss(agent.distribution(obs).log_prob(actions), weight, self.likelihood)
        return loss, {"demo_loss": loss.detach(), "demo_weight": weight.float().mean()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.success is not None:
            state["demo_success"] = dict(self.success)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.success is not None:
            self.success = dict(state["demo_success"])

    def evaluated(self, success: dict[int, float]) -> None:
        if self.success is not None:
            self.success = dict(success)


@dataclass(kw_only=True)
class GAILTerm(DecayingTerm):
    """GAIL's term: the discriminator trains on each rollout against as many demo
    minibatches as PPO's, then its reward, times the weight, joins the rollout's."""

    gail: GAIL

    def shape_rewards(self, rollout: Rollout, minibatches: int) -> tuple[Rollout, dict[str, float]]:
        weight = demo_weight("gail", self.coef, self.decay, self.iteration, 0.0)
        metrics = self.gail.train(
            rollout.obs.flatten(0, 1), rollout.actions.flatten(0, 1), self.batches, minibatches
        )
        rewards = self.gail.rewards(rollout.obs, rollout.actions)
        metrics["charts/gail_reward"] = float(rewards.mean())
        metrics["losses/demo_weight"] = weight
        return replace(rollout, rewards=rollout.rewards + weight * rewards), metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "discriminator": self.gail.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gail.load_state_dict(state["discriminator"])


def demo_term(
    finetune: FinetuneSpec,
    batches: Iterator[DemoBatch],
    agent: Agent,
    action_space: gym.Space,
    network: NetworkSpec,
    learning_rate: float,
    device: torch.device,
) -> DecayingTerm:
    """The demo term of `finetune.method` on `batches`; GAIL's discriminator has the agent's
    kind of network and learns at `learning_rate`."""
    common = {"batches": batches, "coef": finetune.coef, "decay": finetune.decay}
    if finetune.method == "gail":
        gail = GAIL(agent, action_space, network, learning_rate, device)
        return GAILTerm(gail=gail, **common)
    per_variation = finetune.demo_weighting == "per-variation"
    return LikelihoodTerm(
        method=finetune.method,
        likelihood=finetune.demo_likelihood,
        success={} if per_variation else None,
        **common,
    )
