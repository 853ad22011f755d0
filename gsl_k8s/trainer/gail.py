"""GAIL's discriminator (Ho & Ermon, 2016) for Phase II: `finetune.method: gail`.

D(s, a) = sigmoid(logit) tells demonstrations (1, the experts') from the policy's rollout
samples (0). Each PPO iteration first trains it on the rollout against as many demo
minibatches (`gail_discriminator_loss`), then rewards the rollout with `gail_reward` =
log D - log(1 - D), which the learner adds to the task's reward before GAE. The observations enter
as the agent prepares them (encoded, normalized by the agent's running statistics), the
actions as one-hot vectors (discrete) or as they are (continuous); the trunk is the agent's
kind: an MLP of `network.hiddenSizes`, or an IMPALA-CNN for images.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from gsl_k8s.core.losses import gail_discriminator_loss, gail_reward
from gsl_k8s.records.demos import DemoBatch
from gsl_k8s.spec import NetworkSpec
from gsl_k8s.trainer.agent import Agent, ImpalaCNN, encoded_shape, layer_init, mlp


class Discriminator(nn.Module):
    """The logit of D(s, a) from prepared observations and raw actions."""

    def __init__(self, agent: Agent, action_space: gym.Space, network: NetworkSpec):
        super().__init__()
        obs_shape = encoded_shape(agent.observation_space)
        if isinstance(action_space, gym.spaces.Discrete):
            self.num_actions: int | None = int(action_space.n)
            action_features = self.num_actions
        elif isinstance(action_space, gym.spaces.Box):
            self.num_actions = None
            action_features = int(np.prod(action_space.shape))
        else:
            raise ValueError(f"unsupported action space {action_space}")
        if agent.image_encoder:
            self.obs_body: nn.Module = ImpalaCNN(obs_shape, network.channels)
            obs_features = self.obs_body.out_features
            hidden: list[int] = [obs_features]
            self.body = mlp(obs_features + action_features, hidden, "relu")
        else:
            self.obs_body = nn.Flatten()
            obs_features = int(np.prod(obs_shape))
            hidden = network.hidden_sizes
            self.body = mlp(obs_features + action_features, hidden, network.activation)
        features = hidden[-1] if hidden else obs_features + action_features
        self.head = layer_init(nn.Linear(features, 1), std=1.0)

    def forward(self, prepared_obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        if self.num_actions is not None:
            actions = nn.functional.one_hot(actions.long(), self.num_actions).float()
        else:
            actions = actions.float().flatten(1)
        x = torch.cat([self.obs_body(prepared_obs), actions], dim=1)
        return self.head(self.body(x)).squeeze(-1)


class GAIL:
    """The discriminator, its Adam, its training on a rollout and the reward it gives."""

    def __init__(
        self,
        agent: Agent,
        action_space: gym.Space,
        network: NetworkSpec,
        learning_rate: float,
        device: torch.device,
    ):
        self.agent = agent
        self.device = device
        self.discriminator = Discriminator(agent, action_space, network).to(device)
        self.optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=learning_rate, eps=1e-5
        )

    def logits(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """D's logits for raw observations and actions (the agent is not trained by them)."""
        with torch.no_grad():
            prepared = self.agent.prepare(obs)
        return self.discriminator(prepared, actions)

    def train(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        demos: Iterator[DemoBatch],
        minibatches: int,
    ) -> dict[str, float]:
        """One pass over the policy's (obs, actions) in `minibatches` shuffled minibatches,
        each against the next demo minibatch; returns the mean loss and the accuracies."""
        size = obs.shape[0]
        order = torch.randperm(size, device=self.device)
        step = max(1, size // minibatches)
        sums = {"loss": 0.0, "expert": 0.0, "policy": 0.0}
        updates = 0
        for start in range(0, size, step):
            take = order[start : start + step]
            demo = next(demos)
            expert = self.logits(
                torch.as_tensor(demo.obs, device=self.device),
                torch.as_tensor(demo.actions, device=self.device),
            )
            policy = self.logits(obs[take], actions[take])
            loss = gail_discriminator_loss(expert, policy)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            sums["loss"] += float(loss.detach())
            sums["expert"] += float((expert > 0).float().mean())
            sums["policy"] += float((policy < 0).float().mean())
            updates += 1
        return {
            "losses/discriminator": sums["loss"] / updates,
            "charts/discriminator_accuracy_expert": sums["expert"] / updates,
            "charts/discriminator_accuracy_policy": sums["policy"] / updates,
        }

    @torch.no_grad()
    def rewards(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """`gail_reward` of a rollout's (steps, envs, ...) observations and actions, shape
        (steps, envs)."""
        logits = self.logits(obs.flatten(0, 1), actions.flatten(0, 1))
        return gail_reward(logits).reshape(obs.shape[:2])

    def state_dict(self) -> dict:
        """The discriminator's weights and its Adam state, for checkpoints."""
        return {
            "model": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved."""
        self.discriminator.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
