"""Our `Agent` as Sample Factory's actor-critic, so that checkpoints clone across backends.

SF's learner and inference call the `ActorCritic` interface (forward_head/core/tail, the
action distribution of the last forward); this class answers it with an `Agent` inside, so
its state dict is the agent's with an `agent.` prefix and its parameters are the agent's, in
the same order: SF's Adam state loads into the built-in PPO's optimizer and back.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from sample_factory.algo.utils.action_distributions import get_action_distribution
from sample_factory.algo.utils.running_mean_std import RunningMeanStdInPlace
from sample_factory.algo.utils.tensor_dict import TensorDict
from sample_factory.model.actor_critic import ActorCritic
from sample_factory.model.model_utils import model_device

from gsl_k8s.spec import TrainerSpec
from gsl_k8s.trainer.agent import Agent

PREFIX = "agent."


class AgentActorCritic(ActorCritic):
    """A feed-forward `Agent` behind SF's actor-critic interface (no RNN core)."""

    def __init__(self, obs_space: gym.spaces.Dict, action_space: gym.Space, cfg, spec: TrainerSpec):
        super().__init__(obs_space, action_space, cfg)
        self.agent = Agent(
            obs_space["obs"], action_space, spec.network, spec.normalize_observations
        )

    def normalize_obs(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SF calls this once per batch; the agent normalizes inside, so only update it."""
        if self.training:
            self.agent.update_normalizer(obs["obs"])
        return obs

    def device_for_input_tensor(self, input_tensor_name: str) -> torch.device:
        return model_device(self)

    def type_for_input_tensor(self, input_tensor_name: str) -> torch.dtype:
        return torch.float32

    def forward_head(self, normalized_obs_dict: dict[str, torch.Tensor]) -> torch.Tensor:
        return normalized_obs_dict["obs"]

    def forward_core(self, head_output: torch.Tensor, rnn_states: torch.Tensor):
        return head_output, rnn_states

    def forward_tail(self, core_output: torch.Tensor, values_only: bool, sample_actions: bool):
        result = TensorDict(values=self.agent.value(core_output))
        if values_only:
            return result
        params = self.agent.policy_output(core_output)
        if self.agent.continuous:  # SF's Gaussian takes (means, log stddevs)
            params = torch.cat([params, self.agent.log_std.expand_as(params)], dim=1)
        self.last_action_distribution = get_action_distribution(self.action_space, params)
        result["action_logits"] = params
        self._maybe_sample_actions(sample_actions, result)
        return result

    def forward(self, normalized_obs_dict, rnn_states, values_only: bool = False) -> TensorDict:
        x, new_rnn_states = self.forward_core(self.forward_head(normalized_obs_dict), rnn_states)
        result = self.forward_tail(x, values_only, sample_actions=True)
        result["new_rnn_states"] = new_rnn_states
        return result


def agent_state(sf_model_state: dict) -> dict:
    """The `Agent` state dict inside an `AgentActorCritic` state dict."""
    return {k.removeprefix(PREFIX): v for k, v in sf_model_state.items() if k.startswith(PREFIX)}


def sf_own_state(sf_model_state: dict) -> dict:
    """What SF itself keeps in an `AgentActorCritic` state dict: its returns normalizer."""
    return {k: v for k, v in sf_model_state.items() if not k.startswith(PREFIX)}


def sf_model_state(agent_state_dict: dict, own: dict) -> dict:
    """An `AgentActorCritic` state dict holding `agent_state_dict` and SF's `own` state."""
    return {**own, **{PREFIX + k: v for k, v in agent_state_dict.items()}}


def fresh_own_state(normalize_returns: bool) -> dict:
    """SF's own state of a new model: a returns normalizer (`--normalize_returns`), or none."""
    if not normalize_returns:
        return {}
    normalizer = RunningMeanStdInPlace((1,))
    return {f"returns_normalizer.{k}": v for k, v in normalizer.state_dict().items()}
