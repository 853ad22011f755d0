"""PPO losses and the demonstration terms used to fine-tune the generalist (step 9 of Algorithm 1):
DAPG and BC add a log-likelihood term to the loss; GAIL (Ho & Ermon, 2016) trains a discriminator
on demos vs the policy's samples and adds its reward to the task's.

Every loss is a scalar to minimise, averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

DemoMethod = Literal["dapg", "bc", "gail"]
DemoLikelihood = Literal["log", "prob"]


def ppo_policy_loss(
    new_logprob: Tensor, old_logprob: Tensor, advantages: Tensor, clip_coef: float
) -> Tensor:
    """The negated clipped surrogate: mean of max(-A * r, -A * clip(r, 1 ± clip_coef))."""
    if clip_coef <= 0.0:
        raise ValueError(f"clip_coef must be > 0, got {clip_coef}")
    _check_same_shape(new_logprob=new_logprob, old_logprob=old_logprob, advantages=advantages)
    ratio = torch.exp(new_logprob - old_logprob)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    return torch.max(unclipped, clipped).mean()


def ppo_value_loss(
    new_value: Tensor, old_value: Tensor, returns: Tensor, clip_coef: float | None
) -> Tensor:
    """Half the mean squared error to `returns`, clipped CleanRL-style when `clip_coef` is given.

    Clipped: 0.5 * mean(max((v - R)^2, (v_clip - R)^2)), v_clip = old_value + clip(v - old_value).
    """
    _check_same_shape(new_value=new_value, old_value=old_value, returns=returns)
    unclipped = (new_value - returns) ** 2
    if clip_coef is None:
        return 0.5 * unclipped.mean()
    if clip_coef <= 0.0:
        raise ValueError(f"clip_coef must be > 0 or None, got {clip_coef}")
    clipped_value = old_value + torch.clamp(new_value - old_value, -clip_coef, clip_coef)
    clipped = (clipped_value - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped).mean()


def approx_kl(new_logprob: Tensor, old_logprob: Tensor) -> Tensor:
    """The low-variance estimator mean((r - 1) - log r) of KL(old || new), r = new / old prob."""
    _check_same_shape(new_logprob=new_logprob, old_logprob=old_logprob)
    log_ratio = new_logprob - old_logprob
    return (torch.expm1(log_ratio) - log_ratio).mean()


def clip_fraction(new_logprob: Tensor, old_logprob: Tensor, clip_coef: float) -> Tensor:
    """The fraction of samples whose probability ratio lies outside 1 +- clip_coef."""
    _check_same_shape(new_logprob=new_logprob, old_logprob=old_logprob)
    ratio = torch.exp(new_logprob - old_logprob)
    return ((ratio - 1.0).abs() > clip_coef).float().mean()


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect value function, 0 no better
    than a constant, negative worse; NaN when the returns do not vary."""
    _check_same_shape(values=values, returns=returns)
    variance = float(returns.var(unbiased=False))
    if variance == 0.0:
        return float("nan")
    return 1.0 - float((returns - values).var(unbiased=False)) / variance


def demo_weight(
    method: DemoMethod, coef: float, decay: float, iteration: int, max_advantage: float
) -> float:
    """The weight of the demo term at a given update.

    `dapg`: coef * decay**iteration * max(max_advantage, 0), i.e. lambda0 * lambda1^k * max A
    (Rajeswaran et al., 2018). `bc` and `gail`: coef * decay**iteration (for GAIL, the
    weight of the discriminator's reward added to the task's).
    """
    if coef < 0.0:
        raise ValueError(f"coef must be >= 0, got {coef}")
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    weight = coef * decay**iteration
    if method == "dapg":
        return weight * max(float(max_advantage), 0.0)
    if method in ("bc", "gail"):
        return weight
    raise ValueError(f"unknown demo method {method!r}; expected dapg, bc or gail")


def variation_demo_weights(
    weight: float, decayed: float, success: Mapping[int, float], variations: Sequence[int]
) -> Tensor:
    """The per-variation schedule, one weight per demo step: a step of variation v weighs
    `weight` (the demo weight before decay) times max(`decayed`, 1 - success[v]), where
    `decayed` is decay**iteration and success[v] the policy's latest success rate on v
    (0 where unknown). The weight fades as before where the policy succeeds, lasts where it
    fails, and returns where it fails again."""
    if not 0.0 <= decayed <= 1.0:
        raise ValueError(f"decayed must be in [0, 1], got {decayed}")
    failing = torch.tensor([1.0 - success.get(int(v), 0.0) for v in variations])
    return weight * failing.clamp(min=decayed)


def demo_loss(
    demo_logprob: Tensor, weight: float | Tensor, likelihood: DemoLikelihood = "log"
) -> Tensor:
    """The demo term to add to the PPO loss: -mean(weight * log pi(a_demo | s_demo)) with
    `likelihood` log (DAPG), or -mean(weight * pi(a_demo | s_demo)) with prob (GSL's
    released code), whose gradient pi * grad log pi fades where the policy finds the demo's
    action unlikely. `weight` is one number, or one per demo step."""
    weight = torch.as_tensor(weight, dtype=demo_logprob.dtype, device=demo_logprob.device)
    if (weight < 0.0).any():
        raise ValueError(f"weight must be >= 0, got {weight}")
    if likelihood == "log":
        return -(weight * demo_logprob).mean()
    if likelihood == "prob":
        return -(weight * demo_logprob.exp()).mean()
    raise ValueError(f"unknown demo likelihood {likelihood!r}; expected log or prob")


def gail_discriminator_loss(expert_logits: Tensor, policy_logits: Tensor) -> Tensor:
    """Binary cross-entropy of a discriminator D = sigmoid(logit) that calls demos 1 (expert)
    and the policy's samples 0, each side averaged on its own and the two halves weighted
    equally: 0.5 * (mean(-log D(expert)) + mean(-log(1 - D(policy)))), in the stable
    softplus form (-log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x))."""
    if expert_logits.numel() == 0 or policy_logits.numel() == 0:
        raise ValueError("the discriminator needs both expert and policy samples")
    expert = torch.nn.functional.softplus(-expert_logits).mean()
    policy = torch.nn.functional.softplus(policy_logits).mean()
    return 0.5 * (expert + policy)


def gail_reward(policy_logits: Tensor) -> Tensor:
    """GAIL's reward per sample, log D - log(1 - D) = the logit: larger where the
    discriminator takes the policy's sample for the expert's, 0 where it cannot tell.

    The form -log(1 - D) = softplus(logit) is > 0 everywhere: a bonus for every step alive,
    which in tasks that end on success (Fork-Maze) can pay more for wandering to the time
    limit than for reaching the goal (Kostrikov et al. 2019); in tests/test_gail.py it did."""
    return policy_logits.clone()


def _check_same_shape(**tensors: Tensor) -> None:
    """Guard against silent broadcasting, e.g. of shape (N, 1) against (N,)."""
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"tensors must have the same shape, got {shapes}")
