"""The built-in PPO: observation and action spaces of every kind, truncation bootstraps,
reward normalisation, diagnostics and checkpoint safety."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.spec import EnvSpec, TrainerSpec
from gsl_k8s.store import StoreError, open_store, put_artifact
from gsl_k8s.trainer import ppo as ppo_module
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.checkpoint import load_checkpoint, save_checkpoint
from gsl_k8s.trainer.ppo import PPO


class ImageEnv(gym.Env):
    """uint8 (H, W, C) observations; reward for action 1."""

    observation_space = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action), False, False, {}


class IntegerBoxEnv(ImageEnv):
    """int64 vector observations, Box actions."""

    observation_space = gym.spaces.Box(-5, 5, (4,), np.int64)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def step(self, action):
        return self.observation_space.sample(), -float(np.square(action).sum()), False, False, {}


class CounterEnv(gym.Env):
    """Observation = steps taken; reward 1 per step; truncated by the TimeLimit."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, False, False, {}


class RandomRewardEnv(gym.Env):
    """Rewards drawn from N(-3, 5), episodes that end at random (terminated)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        reward = float(self.np_random.normal(-3.0, 5.0))
        return self.observation_space.sample(), reward, self.np_random.random() < 0.1, False, {}


gym.register("GslTestImage-v0", entry_point=ImageEnv, max_episode_steps=8)
gym.register("GslTestRandomReward-v0", entry_point=RandomRewardEnv)
gym.register("GslTestIntegerBox-v0", entry_point=IntegerBoxEnv, max_episode_steps=8)
gym.register("GslTestCounter-v0", entry_point=CounterEnv, max_episode_steps=3)

SMALL = {"num_envs": 4, "rollout_steps": 16, "num_minibatches": 2, "update_epochs": 2}


def make_learner(env_id: str, **trainer) -> tuple[gym.vector.VectorEnv, Agent, PPO]:
    torch.manual_seed(0)
    config = TrainerSpec(**{**SMALL, **trainer})
    family = make_family(EnvSpec(family="gymnasium", id=env_id, variations=4))
    envs = family.make_vec([0, 1, 2, 3], config.num_envs, seed=0)
    agent = Agent(
        envs.single_observation_space,
        envs.single_action_space,
        config.network,
        config.normalize_observations,
    )
    return envs, agent, PPO(agent, config, torch.device("cpu"))


@pytest.mark.parametrize(
    "env_id",
    [
        "CartPole-v1",  # float32 vector, Discrete actions
        "Pendulum-v1",  # float32 vector, Box actions
        "Hopper-v5",  # float64 vector (MuJoCo), Box actions
        "FrozenLake-v1",  # Discrete observations, Discrete actions
        "GslTestIntegerBox-v0",  # int64 vector, Box actions
        "GslTestImage-v0",  # uint8 image, Discrete actions: the IMPALA-CNN
    ],
)
def test_trains_and_evaluates_on_every_kind_of_space(env_id):
    envs, agent, ppo = make_learner(env_id, network={"channels": [4]})
    obs, _ = envs.reset(seed=0)
    done = np.zeros(envs.num_envs, dtype=bool)
    for _ in range(2):
        rollout, obs, done = ppo.collect(envs, obs, done, 16)
        losses = ppo.update(rollout)
    assert rollout.obs.shape[:2] == (16, 4)
    assert all(np.isfinite(v) for k, v in losses.items() if k != "losses/explained_variance")
    family = make_family(EnvSpec(family="gymnasium", id=env_id, variations=2))
    results = evaluate(
        lambda o: agent.act(torch.as_tensor(o), deterministic=True).numpy(), family, [0, 1], 2, 0
    )
    assert set(results) == {0, 1}


def test_unsupported_spaces_are_refused_when_the_family_is_made():
    with pytest.raises(ValueError, match="observation space Tuple"):
        make_family(EnvSpec(family="gymnasium", id="Blackjack-v1"))


def test_truncated_episodes_are_bootstrapped_and_terminated_ones_are_not():
    envs, agent, ppo = make_learner("GslTestCounter-v0", normalize_rewards=False)
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo.collect(envs, obs, np.zeros(4, dtype=bool), 4)
    final_value = agent.value(torch.tensor([[3.0]])).detach()
    gamma = ppo.config.gamma
    # steps 0 and 1: reward 1; step 2 ends by truncation at t=3: 1 + gamma * V(obs 3)
    torch.testing.assert_close(rollout.rewards[:2], torch.ones(2, 4))
    torch.testing.assert_close(rollout.rewards[2], (1.0 + gamma * final_value).expand(4))
    torch.testing.assert_close(rollout.dones[3], torch.ones(4))  # a new episode began

    terminating = make_family(EnvSpec(family="gymnasium", id="CartPole-v1"))
    envs = terminating.make_vec([0], 1, seed=0)
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo_for(envs).collect(envs, obs, np.zeros(1, dtype=bool), 200)
    ended = rollout.dones[1:, 0].bool()  # the step before each new episode
    assert ended.any()
    torch.testing.assert_close(rollout.rewards[:-1, 0][ended], torch.ones(int(ended.sum())))


def ppo_for(envs: gym.vector.VectorEnv) -> PPO:
    config = TrainerSpec(**{**SMALL, "num_envs": 1}, normalize_rewards=False)
    agent = Agent(envs.single_observation_space, envs.single_action_space, config.network)
    return PPO(agent, config, torch.device("cpu"))


def test_rewards_are_scaled_by_the_running_std_of_the_discounted_return():
    envs, _, ppo = make_learner("GslTestCounter-v0", gamma=0.5)
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo.collect(envs, obs, np.zeros(4, dtype=bool), 3)
    # discounted returns per env over the episode: 1, 1.5, 1.75 (then reset)
    expected_std = np.std([1.0, 1.5, 1.75])
    stats = ppo.reward_normalizer.returns
    assert float(stats.var) == pytest.approx(expected_std**2, rel=1e-3)
    torch.testing.assert_close(
        rollout.rewards[0], torch.full((4,), 1 / expected_std), rtol=1e-3, atol=0
    )


class RecordingEnvs(gym.vector.VectorWrapper):
    """Keeps every step's rewards and ends, as the env returned them."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self.rewards, self.ends = [], []

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.rewards.append(np.array(reward))
        self.ends.append(terminated | truncated)
        return obs, reward, terminated, truncated, info


def test_reward_statistics_are_vecnormalizes_on_a_random_stream():
    """As Stable-Baselines3's VecNormalize: each env's return = gamma * return + reward,
    reset where its episode ended, every step's folded into one running variance; rewards
    divided by sqrt(var + 1e-8), clipped to +-10. Here at once per rollout, which gives the
    same statistics."""
    envs, _, ppo = make_learner("GslTestRandomReward-v0", gamma=0.9)
    envs = RecordingEnvs(envs)
    obs, _ = envs.reset(seed=0)
    done = np.zeros(4, dtype=bool)
    returns, count, mean, var = np.zeros(4), 1e-4, 0.0, 1.0  # VecNormalize's initial stats
    for _ in range(3):
        rollout, obs, done = ppo.collect(envs, obs, done, 16)
        for reward, ended in zip(envs.rewards, envs.ends, strict=True):
            returns = returns * 0.9 + reward
            delta, total = returns.mean() - mean, count + len(returns)
            var = (var * count + returns.var() * 4 + delta**2 * count * 4 / total) / total
            mean, count = mean + delta * 4 / total, total
            returns[ended] = 0.0
        expected = np.clip(np.stack(envs.rewards) / np.sqrt(var + 1e-8), -10, 10)
        torch.testing.assert_close(rollout.rewards, torch.as_tensor(expected).float())
        envs.rewards.clear()
        envs.ends.clear()
        ppo.update(rollout)
    stats = ppo.reward_normalizer.returns
    assert float(stats.var) == pytest.approx(var, rel=1e-4)
    assert float(stats.count) == pytest.approx(count)


def test_evaluation_leaves_every_statistic_as_it_was():
    envs, agent, ppo = make_learner("Pendulum-v1")
    obs, _ = envs.reset(seed=0)
    ppo.update(ppo.collect(envs, obs, np.zeros(4, dtype=bool), 16)[0])
    before = {**agent.state_dict(), **ppo.reward_normalizer.state_dict()}
    family = make_family(EnvSpec(family="gymnasium", id="Pendulum-v1", variations=2))
    evaluate(lambda o: agent.act(torch.as_tensor(o)).numpy(), family, [0, 1], 2, seed=0)
    after = {**agent.state_dict(), **ppo.reward_normalizer.state_dict()}
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)


def test_observation_statistics_take_in_a_rollout_before_its_update(monkeypatch):
    """Frozen while the rollout is collected (its log-probabilities are the acting policy's);
    every minibatch of its update sees statistics that hold its 64 observations, and takes
    its probability ratios to the log-probabilities the rollout was acted with."""
    envs, agent, ppo = make_learner("Pendulum-v1")
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo.collect(envs, obs, np.zeros(4, dtype=bool), 16)
    assert float(agent.normalizer.count) < 1  # nothing folded in while collecting
    with torch.no_grad():
        stored = agent.distribution(rollout.obs[0]).log_prob(rollout.actions[0])
    torch.testing.assert_close(stored, rollout.logprobs[0])
    counts, ratios_to = [], []
    agent.normalizer.register_forward_hook(lambda module, *_: counts.append(float(module.count)))
    policy_loss = ppo_module.ppo_policy_loss

    def spy(new_logprob, old_logprob, *args):
        ratios_to.append(old_logprob)
        return policy_loss(new_logprob, old_logprob, *args)

    monkeypatch.setattr(ppo_module, "ppo_policy_loss", spy)
    losses = ppo.update(rollout)
    assert len(counts) > 4 and min(counts) == pytest.approx(64, abs=1e-3)
    first_epoch = torch.cat(ratios_to[:2]).sort().values  # 2 minibatches an epoch
    torch.testing.assert_close(first_epoch, rollout.logprobs.flatten().sort().values)
    assert float(agent.normalizer.count) == pytest.approx(64, abs=1e-3)
    assert 0.0 <= losses["losses/clipfrac"] <= 1.0
    assert losses["losses/explained_variance"] <= 1.0


def test_learning_rate_anneals_linearly():
    envs, _, ppo = make_learner("CartPole-v1", anneal_learning_rate=True, learning_rate=1e-3)
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo.collect(envs, obs, np.zeros(4, dtype=bool), 16)
    assert ppo.update(rollout, learning_rate_fraction=0.25)["charts/learning_rate"] == 2.5e-4


def test_the_learning_rate_fraction_is_clamped_so_adam_never_steps_uphill():
    """A task past its annealing horizon (a concurrent baseline whose budget outgrew it)
    trains at step size 0, not a negative one."""
    envs, _, ppo = make_learner("CartPole-v1", anneal_learning_rate=True, learning_rate=1e-3)
    obs, _ = envs.reset(seed=0)
    rollout, _, _ = ppo.collect(envs, obs, np.zeros(4, dtype=bool), 16)
    assert ppo.update(rollout, learning_rate_fraction=-0.5)["charts/learning_rate"] == 0.0
    assert ppo.update(rollout, learning_rate_fraction=1.5)["charts/learning_rate"] == 1e-3


def test_checkpoint_round_trip_restores_rngs_and_learner_state(tmp_path):
    store = open_store(str(tmp_path))
    _, agent, ppo = make_learner("Pendulum-v1")
    ppo.reward_normalizer.returns.update(torch.tensor([1.0, 5.0, 9.0]))
    torch.manual_seed(7)
    np.random.seed(7)
    save_checkpoint(store, "ckpt.pt", {"model": agent.state_dict(), **ppo.state_dict()})
    expected = (torch.rand(3), np.random.rand(3))
    state = load_checkpoint(store, "ckpt.pt", restore_rng=True)
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    _, _, clone = make_learner("Pendulum-v1")
    clone.load_state_dict(state)
    torch.testing.assert_close(
        clone.reward_normalizer.returns.var,
        torch.tensor(np.var([1.0, 5.0, 9.0]), dtype=torch.float32),
        rtol=1e-3,
        atol=0,
    )


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_that_pickles_objects_is_refused(tmp_path, capsys):
    store = open_store(str(tmp_path))
    buffer = io.BytesIO()
    torch.save({"model": {}, "payload": Payload()}, buffer)
    put_artifact(store, "evil.pt", buffer.getvalue())
    with pytest.raises(
        StoreError, match=r"evil\.pt: refused: the checkpoint pickles an object \(print\)"
    ):
        load_checkpoint(store, "evil.pt")
    assert "must never run" not in capsys.readouterr().out
