import gymnasium as gym
import numpy as np
import pytest
import torch

from gsl_k8s.spec import NetworkSpec
from gsl_k8s.trainer.agent import Agent, ObservationNormalizer
from gsl_k8s.trainer.ppo import EpisodeLog, Rollout, compute_gae


def test_gae_matches_hand_computation():
    # one env, three steps, episode ends after step 1 (dones marks the *start* of step 2)
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.5]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    rollout = Rollout(
        obs=torch.zeros(3, 1, 1),
        actions=torch.zeros(3, 1),
        logprobs=torch.zeros(3, 1),
        rewards=rewards,
        dones=dones,
        values=values,
        next_obs=torch.zeros(1, 1),
        next_value=torch.tensor([4.0]),
        next_done=torch.tensor([0.0]),
        episodes=EpisodeLog(),
    )
    gamma, lam = 0.9, 0.5
    # t=2: delta = 2 + 0.9*4 - 0.5 = 5.1; A2 = 5.1
    # t=1: next step starts a new episode, so delta = 0 - 1.0 = -1.0; A1 = -1.0
    # t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4; A0 = 1.4 + 0.9*0.5*(-1.0) = 0.95
    advantages = compute_gae(rollout, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([[0.95], [-1.0], [5.1]]))


def test_observation_normalizer_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32) for n in (5, 17, 64)]
    normalizer = ObservationNormalizer((4,))
    for batch in batches:
        normalizer.update(torch.as_tensor(batch))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(normalizer.mean.numpy(), everything.mean(0), rtol=1e-4)
    np.testing.assert_allclose(normalizer.var.numpy(), everything.var(0), rtol=1e-3)
    out = normalizer(torch.as_tensor(everything)).numpy()
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-3)


def test_impala_cnn_agent_on_images():
    obs_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    agent = Agent(obs_space, gym.spaces.Discrete(15), NetworkSpec(encoder="impala-cnn"))
    obs = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert agent.value(obs).shape == (2,)
    assert agent.act(obs).shape == (2,)
    assert agent.actor_body is agent.critic_body  # shared encoder


def test_gaussian_agent_deterministic_action_is_the_mean():
    agent = Agent(
        gym.spaces.Box(-1, 1, (3,), np.float32),
        gym.spaces.Box(-2, 2, (2,), np.float32),
        NetworkSpec(),
    )
    obs = torch.zeros(4, 3)
    dist = agent.distribution(obs)
    torch.testing.assert_close(agent.act(obs, deterministic=True), dist.mean)
    assert dist.log_prob(agent.act(obs)).shape == (4,)


@pytest.mark.parametrize(
    "action_space",
    [gym.spaces.Discrete(4), gym.spaces.Box(-2, 2, (2,), np.float32)],
    ids=["discrete", "gaussian"],
)
def test_tempering_raises_the_policy_to_the_power_one_over_t(action_space):
    torch.manual_seed(0)
    agent = Agent(gym.spaces.Box(-1, 1, (3,), np.float32), action_space, NetworkSpec())
    with torch.no_grad():
        for parameter in agent.parameters():
            parameter.normal_()  # a confident policy
    obs = torch.randn(5, 3)
    before = agent.distribution(obs)
    # every action of each state (sampled ones could all be the confident policy's favourite)
    if agent.continuous:
        actions = 3.0 * torch.randn(6, 5, 2)
    else:
        actions = torch.arange(4)[:, None].expand(4, 5)
    mode = agent.act(obs, deterministic=True)
    agent.temper(4.0)
    after = agent.distribution(obs)
    # log pi'(a|s) = log pi(a|s) / T - log Z(s): the same offset for every action of a state
    offset = after.log_prob(actions) - before.log_prob(actions) / 4.0
    torch.testing.assert_close(offset, offset[:1].expand_as(offset))
    torch.testing.assert_close(agent.act(obs, deterministic=True), mode)
    assert (after.entropy() > before.entropy()).all()
