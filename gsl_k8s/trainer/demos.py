"""Demonstration collection: roll out a policy and keep its (successful) episodes; and
behaviour cloning on them, which can start the finetune.

The episodes are stored as the shards of `gsl_k8s.records.demos`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gsl_k8s.core.losses import demo_loss
from gsl_k8s.envs.base import ActFn, EnvFamily
from gsl_k8s.records.demos import DemoBatch, DemoCount, Episode
from gsl_k8s.seeds import demo_retry, demo_variation
from gsl_k8s.trainer.agent import Agent

DEMO_ENVS = 32  # envs stepped at once while recording


@dataclass(frozen=True)
class Collection:
    """What `collect_demos` gathered, and what it cost."""

    episodes: list[Episode]
    attempts: int
    env_steps: int


def collect_demos(
    act: ActFn,
    family: EnvFamily,
    variations: Sequence[int],
    episodes: int,
    seed: int,
    success_only: bool = True,
    max_attempts: int | None = None,
    abandon_after: int | None = None,
    num_envs: int = DEMO_ENVS,
) -> Collection:
    """Roll out `act` on `variations` until `episodes` episodes are kept (successful ones only
    with `success_only`) or `max_attempts` episodes (default 4x) have been tried; with
    `abandon_after`, give up once that many attempts have kept nothing."""
    max_attempts = max_attempts or 4 * episodes
    envs = family.make_vec(variations, num_envs, seed)
    obs, _ = envs.reset(seed=seed)
    pending: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in range(num_envs)]
    kept: list[Episode] = []
    attempts = env_steps = 0
    while len(kept) < episodes and attempts < max_attempts:
        if abandon_after is not None and not kept and attempts >= abandon_after:
            break
        actions = act(obs)
        next_obs, reward, terminated, truncated, info = envs.step(actions)
        env_steps += num_envs
        for i in range(num_envs):
            pending[i].append((obs[i], actions[i], float(reward[i])))
            if terminated[i] or truncated[i]:
                attempts += 1
                if (info["success"][i] or not success_only) and len(kept) < episodes:
                    o, a, r = zip(*pending[i], strict=True)
                    kept.append(
                        Episode(np.stack(o), np.stack(a), np.array(r), int(info["variation"][i]))
                    )
                pending[i] = []
        obs = next_obs
    envs.close()
    return Collection(kept, attempts, env_steps)


def max_demo_env_steps(episodes: int, attempts_per_episode: int, max_episode_steps: int) -> int:
    """The most env steps `record_demos` takes for `episodes` demonstrations: each of its
    (at most two) collections ends once its attempts reach the cap, and with every env
    ending an episode within `max_episode_steps`, that takes at most
    ceil(cap / envs) x max_episode_steps steps of all its envs."""
    if episodes == 0:
        return 0
    cap = attempts_per_episode * episodes
    envs = min(cap, DEMO_ENVS)
    return 2 * envs * -(-cap // envs) * max_episode_steps


def record_demos(
    policy: Callable[[bool], ActFn],
    family: EnvFamily,
    variations: Sequence[int],
    episodes: int,
    greedy: bool,
    seed: int,
    success_only: bool = True,
    attempts_per_episode: int = 4,
    log: Callable[[str], None] = print,
) -> tuple[list[Episode], DemoCount]:
    """Collect `episodes` demonstrations with `policy(greedy)`, trying at most
    `attempts_per_episode` episodes per episode asked; returns them and their count.

    Greedy actions can loop where sampled ones succeed: a greedy collection gives up once its
    first attempts kept nothing, and sampled actions record whatever greedy ones left
    short (which `log` reports).
    """
    if not variations:  # e.g. every variation was weak: the generalist has none to show
        return [], DemoCount()

    def collect(greedy: bool, wanted: int, seed: int) -> Collection:
        cap = attempts_per_episode * wanted
        return collect_demos(
            policy(greedy),
            family,
            variations,
            wanted,
            seed,
            success_only,
            max_attempts=cap,
            abandon_after=min(wanted, DEMO_ENVS) if greedy else None,
            num_envs=min(cap, DEMO_ENVS),
        )

    first = collect(greedy, episodes, seed)
    kept, attempts, env_steps, sampled = first.episodes, first.attempts, first.env_steps, 0
    if greedy and len(kept) < episodes:
        rest = collect(False, episodes - len(kept), demo_retry(seed))
        log(
            f"greedy actions kept {len(kept)} of {episodes} demos in {first.attempts} attempts; "
            f"sampled actions recorded {len(rest.episodes)} more in {rest.attempts}"
        )
        kept, sampled = kept + rest.episodes, len(rest.episodes)
        attempts, env_steps = attempts + rest.attempts, env_steps + rest.env_steps
    return kept, DemoCount(episodes, attempts, len(kept), env_steps, sampled)


def record_demos_per_variation(
    policy: Callable[[bool], ActFn],
    family: EnvFamily,
    variations: Sequence[int],
    episodes: int,
    greedy: bool,
    seed: int,
    **options: Any,
) -> tuple[list[Episode], DemoCount]:
    """`record_demos` on each variation alone, with the episodes split evenly over them:
    every variation the policy solves is demonstrated, also where greedy actions succeed on
    one variation and loop on another. Returns every episode and their total count."""
    kept: list[Episode] = []
    counts: list[DemoCount] = []
    share, extra = divmod(episodes, max(1, len(variations)))
    for i, variation in enumerate(variations):
        wanted = share + (i < extra)
        seed_i = demo_variation(seed, i)
        more, count = record_demos(policy, family, [variation], wanted, greedy, seed_i, **options)
        kept += more
        counts.append(count)
    return kept, DemoCount.total(counts)


def behaviour_cloning(
    agent: Agent,
    batches: Iterator[DemoBatch],
    steps: int,
    learning_rate: float,
    max_grad_norm: float,
    device: torch.device,
) -> tuple[float, float]:
    """`steps` Adam steps on -mean log pi(a_demo | s_demo) over demo minibatches (gradients
    clipped to `max_grad_norm`); returns the loss of the first and the last minibatch."""
    optimizer = torch.optim.Adam(agent.parameters(), lr=learning_rate, eps=1e-5)
    losses = []
    for _ in range(steps):
        batch = next(batches)
        obs, actions = (torch.as_tensor(x, device=device) for x in (batch.obs, batch.actions))
        loss = demo_loss(agent.distribution(obs).log_prob(actions), 1.0)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]
