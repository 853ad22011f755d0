"""PPO (Schulman et al. 2017) with GAE, in the style of CleanRL, plus an optional demo term.

`PPO.collect` fills a rollout from a vector env; `PPO.update` runs the clipped-surrogate
epochs on it. With a `DemoTerm` (`gsl_k8s.trainer.demo_terms`), every minibatch also
minimises the demo loss of `gsl_k8s.core.losses` (DAPG or BC), or, for GAIL, the
discriminator is trained on the rollout and its reward, times the term's weight, is added to
the rollout's (scaled) rewards before GAE: this is GSL's Phase II.

Details that matter on continuous control (Huang et al. 2022, "The 37 implementation
details of PPO"; Stable-Baselines3):

- a truncated episode (time limit) is bootstrapped: its last reward gets
  gamma * V(final observation), which same-step autoreset hands over in
  `info["final_obs"]`; only a terminated one ends the return;
- rewards are scaled by the running standard deviation of the discounted return
  (`trainer.normalizeRewards`), so value targets have a scale independent of the task;
- observation statistics (`trainer.normalizeObservations`) are frozen while a rollout is
  collected and take in its observations before its update, which thus trains the policy
  under the statistics it acts with next; its probability ratios are to the log-probabilities
  the rollout was acted with, so the clipped objective bounds the change of policy that the
  new statistics make too. Folded in after the update, every rollout is acted under
  statistics its update never trained under (Pendulum-v1 at rl-zoo's settings, both
  normalisations on: 6 of 8 seeds stuck near -600); with the log-probabilities re-evaluated
  under the new statistics, the ratios ignore that change (CartPole-v1: 4 of 6 seeds < 500).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from gsl_k8s.core.losses import (
    approx_kl,
    clip_fraction,
    explained_variance,
    ppo_policy_loss,
    ppo_value_loss,
)
from gsl_k8s.spec import TrainerSpec
from gsl_k8s.trainer.agent import Agent, RunningMeanStd

REWARD_CLIP = 10.0


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
    rewards: torch.Tensor  # as the learner sees them: scaled, plus truncation bootstraps
    dones: torch.Tensor
    values: torch.Tensor
    next_obs: torch.Tensor
    next_value: torch.Tensor
    next_done: torch.Tensor
    episodes: EpisodeLog


class DemoTerm:
    """Phase II's demo term as `PPO.update` calls it (`gsl_k8s.trainer.demo_terms` has
    DAPG's and BC's, and GAIL's); this base adds nothing. An update calls `shape_rewards`
    before GAE, `schedule` after it, `minibatch_loss` on every minibatch and `step` at its
    end."""

    def shape_rewards(self, rollout: Rollout, minibatches: int) -> tuple[Rollout, dict[str, float]]:
        """The rollout with the term's rewards added, and the term's metrics."""
        return rollout, {}

    def schedule(self, advantages: torch.Tensor) -> None:
        """Fix this update's weights; `advantages` on the scale the policy loss sees them."""

    def minibatch_loss(
        self, agent: Agent, device: torch.device
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """The term to add to a minibatch's loss, and its (detached) metrics."""
        return 0.0, {}

    def step(self) -> None:
        """The update is done: the term's weights decay one step."""


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


def env_actions(actions: torch.Tensor, space: gym.Space) -> np.ndarray:
    """Policy actions as the env takes them (Gaussian samples clipped to the box)."""
    array = actions.cpu().numpy()
    if isinstance(space, gym.spaces.Box):
        return np.clip(array, space.low, space.high)
    return array


class RewardNormalizer(nn.Module):
    """Scales rewards by the running standard deviation of each env's discounted return."""

    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma
        self.returns = RunningMeanStd()
        self._discounted: np.ndarray | None = None

    def discounted_returns(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """The running discounted return of each env after this step's `rewards`."""
        if self._discounted is None or len(self._discounted) != len(rewards):
            self._discounted = np.zeros(len(rewards))
        self._discounted = self._discounted * self.gamma + rewards
        current = self._discounted.copy()
        self._discounted[dones] = 0.0
        return current

    def forward(self, rewards: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt(self.returns.var + 1e-8)
        return (rewards / scale).clamp(-REWARD_CLIP, REWARD_CLIP)


class PPO:
    """The PPO learner for one agent."""

    def __init__(self, agent: Agent, config: TrainerSpec, device: torch.device):
        self.agent = agent
        self.config = config
        self.device = device
        self.optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
        self.reward_normalizer = (
            RewardNormalizer(config.gamma).to(device) if config.normalize_rewards else None
        )
        self._episode_return: np.ndarray | None = None

    def state_dict(self) -> dict:
        """The learner's own state for checkpoints: optimizer and reward statistics."""
        state = {"optimizer": self.optimizer.state_dict()}
        if self.reward_normalizer is not None:
            state["reward_normalizer"] = self.reward_normalizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved; reward statistics only where both have them."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.reward_normalizer is not None and "reward_normalizer" in state:
            self.reward_normalizer.load_state_dict(state["reward_normalizer"])

    def to_tensor(self, array: np.ndarray) -> torch.Tensor:
        """A numpy batch as a tensor on the learner's device."""
        return torch.as_tensor(array, device=self.device)

    def collect(
        self, envs: gym.vector.VectorEnv, obs: np.ndarray, done: np.ndarray, steps: int
    ) -> tuple[Rollout, np.ndarray, np.ndarray]:
        """Step `envs` `steps` times from (obs, done); returns the rollout and the new state."""
        n = envs.num_envs
        if self._episode_return is None:
            self._episode_return = np.zeros(n)
        buffers: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "actions", "logprobs", "dones", "values")
        }
        raw_rewards, bootstraps, discounted = [], [], []
        episodes = EpisodeLog()
        for _ in range(steps):
            obs_t = self.to_tensor(obs)
            with torch.no_grad():
                dist, value = self.agent.distribution_and_value(obs_t)
                action = dist.sample()
                buffers["logprobs"].append(dist.log_prob(action))
                buffers["values"].append(value)
            buffers["obs"].append(obs_t)
            buffers["actions"].append(action)
            buffers["dones"].append(self.to_tensor(done).float())
            obs, reward, terminated, truncated, info = envs.step(
                env_actions(action, envs.single_action_space)
            )
            done = terminated | truncated
            reward = np.asarray(reward, dtype=np.float64)
            raw_rewards.append(reward)
            bootstraps.append(self._truncation_bootstrap(truncated & ~terminated, info))
            if self.reward_normalizer is not None:
                discounted.append(self.reward_normalizer.discounted_returns(reward, done))
            self._episode_return += reward
            for i in np.flatnonzero(done):
                episodes.returns.append(float(self._episode_return[i]))
                episodes.successes.append(bool(info["success"][i]))
                episodes.variations.append(int(info["variation"][i]))
            self._episode_return[done] = 0.0
        with torch.no_grad():
            next_value = self.agent.value(self.to_tensor(obs))
        rewards = self.to_tensor(np.stack(raw_rewards)).float()
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns.update(self.to_tensor(np.stack(discounted)))
            rewards = self.reward_normalizer(rewards)
        rollout = Rollout(
            **{k: torch.stack(v) for k, v in buffers.items()},
            rewards=rewards + torch.stack(bootstraps),
            next_obs=self.to_tensor(obs),
            next_value=next_value,
            next_done=self.to_tensor(done).float(),
            episodes=episodes,
        )
        return rollout, obs, done

    def _truncation_bootstrap(self, truncated: np.ndarray, info: dict) -> torch.Tensor:
        """gamma * V(final observation) for sub-envs cut off by a time limit, else 0."""
        bootstrap = torch.zeros(len(truncated), device=self.device)
        if truncated.any():
            final_obs = self.to_tensor(np.asarray(info["final_obs"])[truncated])
            with torch.no_grad():
                bootstrap[self.to_tensor(truncated)] = self.config.gamma * self.agent.value(
                    final_obs
                )
        return bootstrap

    def update(
        self,
        rollout: Rollout,
        demos: DemoTerm | None = None,
        learning_rate_fraction: float = 1.0,
    ) -> dict[str, float]:
        """The rollout's observations into the statistics, then clipped-surrogate epochs over
        it, with the demo term; returns the mean losses and diagnostics. With
        `trainer.annealLearningRate`, the step size is `learning_rate_fraction` (clamped to
        [0, 1]) of the configured one."""
        cfg = self.config
        demos = demos or DemoTerm()
        if cfg.anneal_learning_rate:
            for group in self.optimizer.param_groups:  # a negative step size would ascend
                group["lr"] = cfg.learning_rate * min(max(learning_rate_fraction, 0.0), 1.0)
        rollout, result = demos.shape_rewards(self._observed(rollout), cfg.num_minibatches)
        advantages = compute_gae(rollout, cfg.gamma, cfg.gae_lambda)
        demos.schedule(self._normalized(advantages))
        returns = advantages + rollout.values
        flat = {
            "obs": rollout.obs.flatten(0, 1),
            "actions": rollout.actions.flatten(0, 1),
            "logprobs": rollout.logprobs.flatten(0, 1),
            "advantages": advantages.flatten(),
            "returns": returns.flatten(),
            "values": rollout.values.flatten(),
        }
        result.update(self._epochs(flat, demos))
        demos.step()
        result["losses/explained_variance"] = explained_variance(flat["values"], flat["returns"])
        result["charts/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return result

    def _normalized(self, advantages: torch.Tensor) -> torch.Tensor:
        """The advantages as the policy loss sees them: normalized with
        `trainer.normalizeAdvantages` (where there are two or more)."""
        if self.config.normalize_advantages and advantages.numel() > 1:
            return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages

    def _epochs(self, flat: dict[str, torch.Tensor], demos: DemoTerm) -> dict[str, float]:
        """`updateEpochs` passes of shuffled minibatches over the flat batch; the mean losses."""
        cfg = self.config
        batch_size = flat["advantages"].shape[0]
        minibatch_size = max(1, batch_size // cfg.num_minibatches)
        sums: dict[str, float] = {}
        updates = 0
        for _ in range(cfg.update_epochs):
            order = torch.randperm(batch_size, device=self.device)
            for start in range(0, batch_size, minibatch_size):
                mb = {k: v[order[start : start + minibatch_size]] for k, v in flat.items()}
                losses = self._minibatch_losses(mb, demos)
                self.optimizer.zero_grad()
                losses["loss"].backward()
                nn.utils.clip_grad_norm_(self.agent.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                updates += 1
        return {f"losses/{k}": v / updates for k, v in sums.items() if k != "loss"}

    def _observed(self, rollout: Rollout) -> Rollout:
        """Fold the rollout's observations into the observation statistics; the rollout with
        its values evaluated under them. Its log-probabilities stay those it was acted with,
        and truncation bootstraps as collected."""
        if self.agent.normalizer is None:
            return rollout
        obs = rollout.obs.flatten(0, 1)
        self.agent.update_normalizer(obs)
        with torch.no_grad():
            values = self.agent.value(obs).reshape(rollout.values.shape)
            next_value = self.agent.value(rollout.next_obs)
        return replace(rollout, values=values, next_value=next_value)

    def _minibatch_losses(
        self, mb: dict[str, torch.Tensor], demos: DemoTerm
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        dist, new_value = self.agent.distribution_and_value(mb["obs"])
        new_logprob = dist.log_prob(mb["actions"])
        advantages = self._normalized(mb["advantages"])
        policy = ppo_policy_loss(new_logprob, mb["logprobs"], advantages, cfg.clip_coef)
        value = ppo_value_loss(
            new_value,
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
            "clipfrac": clip_fraction(new_logprob, mb["logprobs"], cfg.clip_coef).detach(),
        }
        demo, demo_metrics = demos.minibatch_loss(self.agent, self.device)
        losses.update(demo_metrics)
        losses["loss"] = loss + demo
        return losses
