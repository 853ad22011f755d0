"""Per-variation feature vectors for `partition: features`, written by the generalist.

A family that describes its variations (`variation_features`: Fork-Maze's arm geometry,
Meta-World's task and goal, MiniGrid's task one-hot or level layout) provides them; for any
other family (Procgen, Gymnasium, ManiSkill2) a variation's feature vector is the
generalist's encoding of its first observation, so variations that look alike to the
generalist land together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gsl_k8s.envs import EnvFamily
from gsl_k8s.trainer.agent import Agent


def variation_features(
    family: EnvFamily, agent: Agent, variations: Sequence[int], seed: int
) -> tuple[str, dict[int, list[float]]]:
    """(source, {variation: vector}): source `family` where the family describes its
    variations, else `encoder`, the agent's embedding of each variation's first observation."""
    describe = getattr(family, "variation_features", None)
    if describe is not None:
        return "family", {int(v): [float(x) for x in describe(v)] for v in variations}
    envs = family.make_vec(list(variations), len(variations), seed, pinned=True)
    try:
        obs, _ = envs.reset(seed=seed)
    finally:
        envs.close()
    device = next(agent.parameters()).device
    embedding = agent.embed(torch.as_tensor(np.asarray(obs), device=device)).cpu().numpy()
    return "encoder", {
        int(v): [float(x) for x in row] for v, row in zip(variations, embedding, strict=True)
    }
