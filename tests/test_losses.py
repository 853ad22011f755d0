import math

import pytest
import torch
from torch.distributions import Categorical

from gsl_k8s.core.losses import (
    approx_kl,
    demo_loss,
    demo_weight,
    ppo_policy_loss,
    ppo_value_loss,
)


def _log(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_policy_loss_clips_only_in_the_pessimistic_direction():
    # r = 1.5, 0.5, 1.5, 0.5 and A = 1, 1, -2, -2, clip 0.2 (r clipped to [0.8, 1.2]):
    #   max(-1.5, -1.2) = -1.2   (clipped)
    #   max(-0.5, -0.8) = -0.5
    #   max(3.0, 2.4)   = 3.0
    #   max(1.0, 1.6)   = 1.6    (clipped)
    # mean = (-1.2 - 0.5 + 3.0 + 1.6) / 4 = 0.725
    new_logprob = _log(1.5, 0.5, 1.5, 0.5).requires_grad_()
    old_logprob = torch.zeros(4, dtype=torch.float64)
    advantages = torch.tensor([1.0, 1.0, -2.0, -2.0], dtype=torch.float64)

    loss = ppo_policy_loss(new_logprob, old_logprob, advantages, clip_coef=0.2)
    loss.backward()

    assert loss.item() == pytest.approx(0.725)
    # Clipped terms have no gradient; the others give d(-A r)/d log r / 4 = -A r / 4.
    assert new_logprob.grad.tolist() == pytest.approx([0.0, -0.125, 0.75, 0.0])


def test_policy_loss_at_ratio_one_is_minus_mean_advantage():
    logprob = torch.tensor([-0.3, -1.2])
    advantages = torch.tensor([2.0, -1.0])
    assert ppo_policy_loss(logprob, logprob, advantages, 0.1).item() == pytest.approx(-0.5)


def test_value_loss_unclipped():
    # 0.5 * mean((1 - 2)^2, (3 - 2)^2) = 0.5
    new_value = torch.tensor([1.0, 3.0])
    old_value = torch.tensor([0.0, 2.0])
    returns = torch.tensor([2.0, 2.0])
    assert ppo_value_loss(new_value, old_value, returns, None).item() == pytest.approx(0.5)


def test_value_loss_clipped():
    # Clip 0.5: the clipped values are 0 + 0.5 = 0.5 and 2 + 0.5 = 2.5, errors 2.25 and 0.25.
    # 0.5 * mean(max(1, 2.25), max(1, 0.25)) = 0.5 * (2.25 + 1) / 2 = 0.8125
    new_value = torch.tensor([1.0, 3.0])
    old_value = torch.tensor([0.0, 2.0])
    returns = torch.tensor([2.0, 2.0])
    assert ppo_value_loss(new_value, old_value, returns, 0.5).item() == pytest.approx(0.8125)


def test_approx_kl():
    # r = 2: (2 - 1) - ln 2; r = 0.5: (0.5 - 1) + ln 2; mean = 0.5 * (1 - 0.5) = 0.25
    old_logprob = torch.zeros(2, dtype=torch.float64)
    assert approx_kl(_log(2.0, 0.5), old_logprob).item() == pytest.approx(0.25)
    assert approx_kl(old_logprob, old_logprob).item() == 0.0


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        ppo_policy_loss(torch.zeros(3, 1), torch.zeros(3), torch.zeros(3), 0.2)
    with pytest.raises(ValueError, match="same shape"):
        ppo_value_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3, 1), None)


@pytest.mark.parametrize("clip_coef", [0.0, -0.1])
def test_losses_reject_non_positive_clip(clip_coef):
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="clip_coef"):
        ppo_policy_loss(x, x, x, clip_coef)
    with pytest.raises(ValueError, match="clip_coef"):
        ppo_value_loss(x, x, x, clip_coef)


def test_demo_weight_dapg():
    # 0.1 * 0.5^2 * 4.0 = 0.1
    assert demo_weight(
        "dapg", coef=0.1, decay=0.5, iteration=2, max_advantage=4.0
    ) == pytest.approx(0.1)
    assert demo_weight(
        "dapg", coef=0.1, decay=0.5, iteration=0, max_advantage=4.0
    ) == pytest.approx(0.4)


def test_demo_weight_dapg_is_zero_for_a_negative_max_advantage():
    assert demo_weight("dapg", coef=0.1, decay=0.9, iteration=3, max_advantage=-2.0) == 0.0


def test_demo_weight_bc_ignores_the_advantage():
    # 0.1 * 0.5^2 = 0.025
    assert demo_weight("bc", coef=0.1, decay=0.5, iteration=2, max_advantage=-4.0) == pytest.approx(
        0.025
    )


@pytest.mark.parametrize(("method", "max_advantage"), [("bc", 0.0), ("dapg", 2.0)])
def test_demo_weight_decays_geometrically(method, max_advantage):
    weights = [demo_weight(method, 1.0, 0.5, k, max_advantage) for k in range(4)]
    scale = max_advantage if method == "dapg" else 1.0
    assert weights == pytest.approx([scale, scale / 2, scale / 4, scale / 8])
    assert demo_weight(method, 1.0, 1.0, 1000, max_advantage) == pytest.approx(scale)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coef": -0.1}, "coef"),
        ({"decay": 0.0}, "decay"),
        ({"decay": 1.5}, "decay"),
        ({"iteration": -1}, "iteration"),
        ({"method": "airl"}, "unknown demo method"),
    ],
)
def test_demo_weight_rejects_invalid_arguments(kwargs, match):
    arguments = {"method": "dapg", "coef": 0.1, "decay": 0.99, "iteration": 0, "max_advantage": 1.0}
    with pytest.raises(ValueError, match=match):
        demo_weight(**(arguments | kwargs))


def test_demo_loss_value():
    # -0.5 * mean(-1, -3) = 1.0
    assert demo_loss(torch.tensor([-1.0, -3.0]), 0.5).item() == pytest.approx(1.0)
    assert demo_loss(torch.tensor([-1.0, -3.0]), 0.0).item() == 0.0


def test_demo_loss_rejects_a_negative_weight():
    with pytest.raises(ValueError, match="weight"):
        demo_loss(torch.tensor([-1.0]), -0.5)


def test_demo_loss_gradient_on_categorical_logits():
    # pi = softmax(ln 3, 0) = (0.75, 0.25); demo actions 0 and 1; weight 2.
    # d log pi(a) / dz = onehot(a) - pi, so the gradient of -2 * mean(log pi(a)) is
    # -2 * ((0.5, 0.5) - (0.75, 0.25)) = (0.5, -0.5).
    logits = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0, 1])
    demo_logprob = Categorical(logits=logits.expand(2, 2)).log_prob(actions)

    demo_loss(demo_logprob, 2.0).backward()

    assert logits.grad.tolist() == pytest.approx([0.5, -0.5])


def test_demo_loss_prob_is_the_mean_likelihood_and_its_gradient_fades_with_it():
    # pi = softmax(ln 3, 0) = (0.75, 0.25); both demo actions are 1 (pi(1) = 0.25); weight 2.
    # log: the gradient of -2 log pi(1) is -2 * ((0, 1) - pi) = (1.5, -1.5); prob: that of
    # -2 pi(1) is pi(1) times it, (0.375, -0.375).
    def gradient(likelihood: str) -> list[float]:
        logits = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64, requires_grad=True)
        demo_logprob = Categorical(logits=logits.expand(2, 2)).log_prob(torch.tensor([1, 1]))
        demo_loss(demo_logprob, 2.0, likelihood).backward()
        return logits.grad.tolist()

    likelihoods = torch.tensor([0.25, 0.75])
    assert demo_loss(likelihoods.log(), 2.0, "prob").item() == pytest.approx(-1.0)
    assert gradient("prob") == pytest.approx([0.375, -0.375])
    assert gradient("log") == pytest.approx([1.5, -1.5])
    with pytest.raises(ValueError, match="likelihood"):
        demo_loss(torch.tensor([-1.0]), 2.0, "logit")
