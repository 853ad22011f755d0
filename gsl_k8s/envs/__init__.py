"""Environment families, built from a spec's `env` section."""

from __future__ import annotations

from gsl_k8s.envs.base import EnvFamily, VariationResult, evaluate
from gsl_k8s.envs.forkmaze import ForkMazeFamily
from gsl_k8s.envs.gymnasium_family import GymnasiumFamily
from gsl_k8s.spec import EnvSpec

__all__ = ["EnvFamily", "VariationResult", "evaluate", "make_family"]


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def make_family(env: EnvSpec) -> EnvFamily:
    """The family an `env` spec names, configured with its kwargs (camelCase accepted)."""
    kwargs = {_snake(k): v for k, v in env.kwargs.items()}
    try:
        if env.family == "forkmaze":
            return ForkMazeFamily(goals=kwargs.pop("goals", len(env.variation_ids)), **kwargs)
        if env.family == "metaworld":
            from gsl_k8s.envs.metaworld_family import MetaWorldFamily

            family = MetaWorldFamily(**kwargs)
            beyond = [v for v in env.variation_ids if v >= family.num_variations]
            if beyond:
                raise ValueError(
                    f"variations {beyond[:5]} do not exist: {family.benchmark} with "
                    f"{family.goals} goals per task has {family.num_variations}"
                )
            return family
        if env.family == "maniskill2":
            from gsl_k8s.envs.maniskill2_family import ManiSkill2Family

            return ManiSkill2Family(**kwargs)
        if env.family == "procgen":
            from gsl_k8s.envs.procgen_family import ProcgenFamily

            return ProcgenFamily(**kwargs)
        if env.family == "minigrid":
            from gsl_k8s.envs.minigrid_family import MiniGridFamily

            return MiniGridFamily(env.id, **kwargs)
        return GymnasiumFamily(env.id, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec.env: {err}") from None
