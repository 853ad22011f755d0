"""GAIL for Phase II: its loss and reward, its checkpointed state, and that it learns."""

import io
import math

import numpy as np
import pytest
import torch

from gsl_k8s.core.losses import demo_weight, gail_discriminator_loss, gail_reward
from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.records.demos import Episode, demo_batches, write_shards
from gsl_k8s.spec import SpecError, parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.builtin import BuiltinBackend
from gsl_k8s.trainer.demo_terms import GAILTerm
from gsl_k8s.trainer.demos import collect_demos
from gsl_k8s.trainer.gail import GAIL
from gsl_k8s.trainer.ppo import PPO
from tests.conftest import TINY_SPEC, finetune_context, merge


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_discriminator_loss_matches_hand_computed_values():
    assert float(gail_discriminator_loss(torch.zeros(3), torch.zeros(5))) == pytest.approx(
        math.log(2.0)
    )
    expert, policy = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    # 0.5 * (mean(-log sigmoid(expert)) + mean(-log(1 - sigmoid(policy))))
    hand = 0.5 * ((softplus(-2.0) + softplus(1.0)) / 2 + softplus(0.5))
    assert float(gail_discriminator_loss(expert, policy)) == pytest.approx(hand)


def test_discriminator_loss_gradients_push_experts_up_and_policy_samples_down():
    expert = torch.tensor([0.3, -2.0], requires_grad=True)
    policy = torch.tensor([1.0, -0.5, 4.0], requires_grad=True)
    gail_discriminator_loss(expert, policy).backward()
    assert (expert.grad < 0).all()  # descent raises the expert logits
    assert (policy.grad > 0).all()  # and lowers the policy's
    # d/dx 0.5 * mean(softplus(-x)) = -0.5 * sigmoid(-x) / n
    torch.testing.assert_close(expert.grad, -0.5 * torch.sigmoid(-expert.detach()) / 2)


def test_discriminator_loss_is_finite_for_extreme_logits_and_needs_both_sides():
    loss = gail_discriminator_loss(torch.tensor([-200.0]), torch.tensor([300.0]))
    assert float(loss) == pytest.approx(0.5 * (200.0 + 300.0))
    assert float(gail_discriminator_loss(torch.tensor([200.0]), torch.tensor([-300.0]))) == 0.0
    with pytest.raises(ValueError, match="both expert and policy"):
        gail_discriminator_loss(torch.zeros(0), torch.zeros(2))


def test_gail_reward_is_log_d_minus_log_one_minus_d_and_grows_with_the_logit():
    logits = torch.tensor([-3.0, 0.0, 2.0], requires_grad=True)
    reward = gail_reward(logits)
    d = torch.sigmoid(logits.detach())
    torch.testing.assert_close(reward.detach(), torch.log(d) - torch.log(1.0 - d))
    assert float(reward.detach()[1]) == 0.0  # no bonus for merely staying alive
    reward.sum().backward()
    assert (logits.grad > 0).all()  # fooling the discriminator more pays more
    extreme = gail_reward(torch.tensor([-100.0, 100.0]))
    assert extreme.tolist() == [-100.0, 100.0]


def test_gail_weight_decays_and_ignores_the_advantage():
    weight = demo_weight("gail", coef=0.2, decay=0.5, iteration=2, max_advantage=-3.0)
    assert weight == pytest.approx(0.05)


def test_gail_spec_is_accepted_on_builtin_and_refused_on_sample_factory():
    assert parse_spec(merge(TINY_SPEC, {"spec": {"finetune": {"method": "gail"}}}))
    with pytest.raises(SpecError, match="gail needs the builtin trainer backend"):
        parse_spec(
            merge(
                TINY_SPEC,
                {
                    "spec": {
                        "finetune": {"method": "gail"},
                        "trainer": {"backend": "sample-factory"},
                    }
                },
            )
        )


def shortest_path_expert(family):
    """Fork-Maze's optimal actions: the move that brings the own goal closest."""
    layout = family.layout
    scale = np.array(layout.shape) - 1
    moves = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])

    def act(obs: np.ndarray) -> np.ndarray:
        position = np.rint((obs[:, :2] + 1.0) * scale / 2).astype(int)
        goal = np.rint((obs[:, 2] + 1.0) * (layout.goals - 1) / 2).astype(int)
        actions = []
        for (x, y), g in zip(position, goal, strict=True):
            best, best_distance = 0, np.inf
            for a, (dx, dy) in enumerate(moves):
                cx, cy = x + dx, y + dy
                inside = 0 <= cx <= scale[0] and 0 <= cy <= scale[1]
                if inside and layout.free[cx, cy] and layout.distance[g, cx, cy] < best_distance:
                    best, best_distance = a, layout.distance[g, cx, cy]
            actions.append(best)
        return np.array(actions)

    return act


def test_the_builtin_backend_checkpoints_the_discriminator_for_exact_resumes(tmp_path):
    experiment = parse_spec(merge(TINY_SPEC, {"spec": {"finetune": {"method": "gail"}}}))
    store = open_store(str(tmp_path))
    logged = []
    context = finetune_context(experiment.spec, store, lambda step, metrics: logged.append(metrics))
    backend = BuiltinBackend(context)
    agent = Agent(backend.observation_space, backend.action_space, experiment.spec.trainer.network)
    obs = np.stack([backend.observation_space.sample() for _ in range(20)])
    shards = write_shards(store, "demos/0", [Episode(obs, np.zeros(20, int), np.zeros(20), 0)])
    backend.prepare(agent, 0, shards)
    backend.train_until(10_000)
    metrics = logged[0]
    assert metrics["losses/discriminator"] > 0 and "charts/gail_reward" in metrics
    assert "losses/demo_loss" not in metrics  # GAIL's term is in the reward, not the loss
    state = backend.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # checkpoints load with weights_only
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    backend.close()
    probe = (torch.as_tensor(obs), torch.zeros(20, dtype=torch.long))
    trained = backend.demos.gail.logits(*probe)
    for resumed in (True, False):
        other = BuiltinBackend(context)
        other.prepare(agent, 256, shards)
        other.load_state_dict(state, resumed)
        restored = other.demos.gail.logits(*probe)
        if resumed:  # weights and Adam state come back
            torch.testing.assert_close(restored, trained)
            assert other.demos.gail.optimizer.state_dict()["state"]
        else:  # a clone of the plateau starts a fresh discriminator
            assert not torch.allclose(restored, trained)
        other.close()


@pytest.mark.slow
def test_gail_finetune_trains_the_discriminator_and_the_policy(tmp_path):
    """From scratch, on a 4-goal maze with shortest-path demos: the discriminator tells
    them from the early policy's samples better than chance, and PPO with GAIL's reward
    reaches the goals far more often than a random policy (no collapse)."""
    torch.manual_seed(0)
    experiment = parse_spec(
        merge(
            TINY_SPEC,
            {
                "spec": {
                    "env": {"variations": 4, "kwargs": {"goals": 4}},
                    # 16 minibatches: 16 discriminator steps an iteration, so that it tells
                    # the demos apart before the policy has learnt to imitate them
                    "trainer": {
                        "numEnvs": 16,
                        "rolloutSteps": 64,
                        "numMinibatches": 16,
                        "entCoef": 0.01,
                    },
                    "finetune": {"method": "gail", "coef": 0.5, "decay": 1.0},
                }
            },
        )
    )
    family = make_family(experiment.spec.env)
    variations = experiment.spec.env.variation_ids
    demos = collect_demos(shortest_path_expert(family), family, variations, 64, seed=1)
    assert len(demos.episodes) == 64  # the expert always succeeds
    store = open_store(str(tmp_path))
    shards = write_shards(store, "demos/expert", demos.episodes)
    config = experiment.spec.trainer
    envs = family.make_vec(variations, config.num_envs, seed=0)
    agent = Agent(envs.single_observation_space, envs.single_action_space, config.network)
    ppo = PPO(agent, config, torch.device("cpu"))
    term = GAILTerm(
        batches=demo_batches(store, shards, 256, seed=0),
        coef=0.5,
        decay=1.0,
        gail=GAIL(agent, envs.single_action_space, config.network, 1e-3, torch.device("cpu")),
    )
    obs, _ = envs.reset(seed=0)
    done = np.zeros(config.num_envs, dtype=bool)
    history = []
    for _ in range(30):  # 30 * 1024 env steps
        rollout, obs, done = ppo.collect(envs, obs, done, config.rollout_steps)
        history.append(ppo.update(rollout, term))
    envs.close()
    # Early on the policy is far from the expert: D must tell them apart. Later the policy
    # imitates, and D's accuracy may fall back towards chance, as GAIL intends.
    early = history[1:4]
    accuracy = [
        (m["charts/discriminator_accuracy_expert"] + m["charts/discriminator_accuracy_policy"]) / 2
        for m in early
    ]
    assert np.mean(accuracy) > 0.6, accuracy
    assert np.mean([m["losses/discriminator"] for m in early]) < math.log(2.0)

    def success(act) -> float:
        results = evaluate(act, family, variations, episodes=32, seed=2)
        return float(np.mean([r.success_rate for r in results.values()]))

    rng = np.random.default_rng(0)
    random_success = success(lambda o: rng.integers(0, 4, len(o)))
    trained_success = success(lambda o: agent.act(torch.as_tensor(o)).numpy())
    # measured over seeds 0-9 (torch and env seed): D's early accuracy 0.67-0.70 and loss
    # 0.58-0.61 (0.69 at chance); success random 0.15, GAIL after 30k steps 0.36-0.55
    assert trained_success >= random_success + 0.1, (trained_success, random_success)
