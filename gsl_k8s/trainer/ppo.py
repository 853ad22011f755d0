"""PPO (Schulman et al. 2017) with GAE, in the style of CleanRL, plus an optional demo term.

`PPO.collect` fills a rollout from a vector env; `PPO.update` runs the clipped-surrogate
epochs on it. With a `DemoTerm`, every minibatch also minimises the demo loss of
`gsl_k8s.core.losses` (DAPG or BC): this is GSL's Phase II.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from gsl_k8s.core.losses import approx_kl, demo_loss, demo_weight, ppo_policy_loss, ppo_value_loss
from gsl_k8s.spec import TrainerSpec
from gsl_k8s.trainer.agent import Agent


@dataclass
class EpisodeLog:
    """Episodes that ended during a rollout: return, success and variation of each."""

    returns: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    variations: list[int] = field(default_factory=list)


@dataclass
class Rollout:
    """One batch of experience, (rollout_steps, num_envs, ...) tensors plus bootstrap values."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    values: torch.Tensor
    next_value: torch.Tensor
    next_done: torch.Tensor
    episodes: EpisodeLog


@dataclass
class DemoTerm:
    """Phase II's demo term: minibatches of (obs, action) pairs and their weight schedule."""

    batches: Iterator[tuple[np.ndarray, np.ndarray]]
    method: str
    coef: float
    decay: float
    iteration: int = 0


def compute_gae(rollout: Rollout, gamma: float, gae_lambda: float) -> torch.Tensor:
    """Generalized advantage estimates (Schulman et al. 2016), shape (steps, envs)."""
    advantages = torch.zeros_like(rollout.rewards)
    last = torch.zeros_like(rollout.next_value)
    steps = rollout.rewards.shape[0]
    for t in reversed(range(steps)):
        if t == steps - 1:
            not_done, next_value = 1.0 - rollout.next_done, rollout.next_value
        else:
            not_done, next_value = 1.0 - rollout.dones[t + 1], rollout.values[t + 1]
        delta = rollout.rewards[t] + gamma * next_value * not_done - rollout.values[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantages[t] = last
    return advantages


class PPO:
    """The PPO learner for one agent."""

    def __init__(self, agent: Agent, config: TrainerSpec, device: torch.device):
        self.agent = agent
        self.config = config
        self.device = device
        self.optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
        self._episode_return: np.ndarray | None = None

    def to_tensor(self, array: np.ndarray) -> torch.Tensor:
        """A numpy batch as a tensor on the learner's device."""
        return torch.as_tensor(array, device=self.device)

    def env_actions(self, actions: torch.Tensor, space: gym.Space) -> np.ndarray:
        """Policy actions as the env takes them (Gaussian samples clipped to the box)."""
        array = actions.cpu().numpy()
        if isinstance(space, gym.spaces.Box):
            return np.clip(array, space.low, space.high)
        return array

    def collect(
        self, envs: gym.vector.VectorEnv, obs: np.ndarray, done: np.ndarray, steps: int
    ) -> tuple[Rollout, np.ndarray, np.ndarray]:
        """Step `envs` `steps` times from (obs, done); returns the rollout and the new state."""
        n = envs.num_envs
        if self._episode_return is None:
            self._episode_return = np.zeros(n)
        buffers: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "actions", "logprobs", "rewards", "dones", "values")
        }
        episodes = EpisodeLog()
        for _ in range(steps):
            obs_t = self.to_tensor(obs)
            if self.agent.normalizer is not None:
                self.agent.normalizer.update(obs_t.float())
            with torch.no_grad():
                dist = self.agent.distribution(obs_t)
                action = dist.sample()
                buffers["logprobs"].append(dist.log_prob(action))
                buffers["values"].append(self.agent.value(obs_t))
            buffers["obs"].append(obs_t)
            buffers["actions"].append(action)
            buffers["dones"].append(self.to_tensor(done).float())
            obs, reward, terminated, truncated, info = envs.step(
                self.env_actions(action, envs.single_action_space)
            )
            done = terminated | truncated
            buffers["rewards"].append(self.to_tensor(np.asarray(reward, dtype=np.float32)))
            self._episode_return += reward
            for i in np.flatnonzero(done):
                episodes.returns.append(float(self._episode_return[i]))
                episodes.successes.append(bool(info["success"][i]))
                episodes.variations.append(int(info["variation"][i]))
            self._episode_return[done] = 0.0
        with torch.no_grad():
            next_value = self.agent.value(self.to_tensor(obs))
        rollout = Rollout(
            **{k: torch.stack(v) for k, v in buffers.items()},
            next_value=next_value,
            next_done=self.to_tensor(done).float(),
            episodes=episodes,
        )
        return rollout, obs, done

    def update(self, rollout: Rollout, demos: DemoTerm | None = None) -> dict[str, float]:
        """Clipped-surrogate epochs over the rollout; returns the mean losses."""
        cfg = self.config
        advantages = compute_gae(rollout, cfg.gamma, cfg.gae_lambda)
        returns = advantages + rollout.values
        flat = {
            "obs": rollout.obs.flatten(0, 1),
            "actions": rollout.actions.flatten(0, 1),
            "logprobs": rollout.logprobs.flatten(0, 1),
            "advantages": advantages.flatten(),
            "returns": returns.flatten(),
            "values": rollout.values.flatten(),
        }
        weight = 0.0
        if demos is not None:
            # DAPG's max advantage, on the scale the policy loss sees the advantages.
            scaled = advantages
            if cfg.normalize_advantages and advantages.numel() > 1:
                scaled = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            weight = demo_weight(
                demos.method, demos.coef, demos.decay, demos.iteration, float(scaled.max())
            )
            demos.iteration += 1
        batch_size = flat["advantages"].shape[0]
        minibatch_size = max(1, batch_size // cfg.num_minibatches)
        sums: dict[str, float] = {}
        updates = 0
        for _ in range(cfg.update_epochs):
            order = torch.randperm(batch_size, device=self.device)
            for start in range(0, batch_size, minibatch_size):
                mb = {k: v[order[start : start + minibatch_size]] for k, v in flat.items()}
                losses = self._minibatch_losses(mb, demos, weight)
                self.optimizer.zero_grad()
                losses["loss"].backward()
                nn.utils.clip_grad_norm_(self.agent.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                updates += 1
        result = {f"losses/{k}": v / updates for k, v in sums.items() if k != "loss"}
        if demos is not None:
            result["losses/demo_weight"] = weight
        return result

    def _minibatch_losses(
        self, mb: dict[str, torch.Tensor], demos: DemoTerm | None, weight: float
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        dist = self.agent.distribution(mb["obs"])
        new_logprob = dist.log_prob(mb["actions"])
        advantages = mb["advantages"]
        if cfg.normalize_advantages and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy = ppo_policy_loss(new_logprob, mb["logprobs"], advantages, cfg.clip_coef)
        value = ppo_value_loss(
            self.agent.value(mb["obs"]),
            mb["values"],
            mb["returns"],
            cfg.clip_coef if cfg.clip_value_loss else None,
        )
        entropy = dist.entropy().mean()
        loss = policy - cfg.ent_coef * entropy + cfg.vf_coef * value
        losses = {
            "policy_loss": policy.detach(),
            "value_loss": value.detach(),
            "entropy": entropy.detach(),
            "approx_kl": approx_kl(new_logprob, mb["logprobs"]).detach(),
        }
        if demos is not None:
            demo_obs, demo_actions = next(demos.batches)
            demo_logprob = self.agent.distribution(self.to_tensor(demo_obs)).log_prob(
                self.to_tensor(demo_actions)
            )
            demo = demo_loss(demo_logprob, weight)
            loss = loss + demo
            losses["demo_loss"] = demo.detach()
        losses["loss"] = loss
        return losses
