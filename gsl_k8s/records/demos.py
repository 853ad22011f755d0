"""Demonstrations: npz shards of whole episodes, and the count of a demo collection
(`demos/generalist/done.json` holds the generalist's).

A shard `<prefix>/shard-NNNN.npz` holds whole episodes, concatenated:

    obs             (T, *obs_shape)    observations
    actions         (T, *action_shape) actions taken
    rewards         (T,)               rewards received
    episode_starts  (E,)               index into T where each episode begins
    variations      (E,)               the variation id of each episode

Plain numpy arrays: any framework can read them. Shards are sha256-verified artifacts
(`gsl_k8s.store.integrity`), and `demo_batches` streams them, holding a bounded pool.
Collecting episodes needs the envs and a policy: `gsl_k8s.trainer.demos.collect_demos`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from gsl_k8s.layout import GENERALIST_DEMOS_DONE
from gsl_k8s.records.record import read_optional, write_record
from gsl_k8s.store import ArtifactStore, get_artifact, list_artifacts, put_artifact

SHARD_STEPS = 50_000


@dataclass
class Episode:
    """One recorded episode of a variation."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    variation: int


@dataclass(frozen=True)
class DemoCount:
    """One demo collection: episodes asked for, tried and kept, and the env steps it cost;
    `sampled` of the kept ones were recorded with sampled actions after greedy ones fell
    short."""

    asked: int = 0
    attempted: int = 0
    kept: int = 0
    env_steps: int = 0
    sampled: int = 0

    @property
    def short(self) -> bool:
        """Fewer episodes kept than asked for."""
        return self.kept < self.asked

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def total(cls, counts: Sequence[DemoCount]) -> DemoCount:
        """The count of several collections together."""
        return cls(*(sum(getattr(c, f) for c in counts) for f in cls.__dataclass_fields__))

    @classmethod
    def from_json(cls, data: dict[str, int]) -> DemoCount:
        return cls(**data)


def read_generalist_demos(store: ArtifactStore) -> DemoCount | None:
    """The count of the generalist's demos (`demos/generalist/done.json`), or None before the
    finetune recorded them."""
    return read_optional(store, GENERALIST_DEMOS_DONE, DemoCount.from_json)


def write_generalist_demos(store: ArtifactStore, count: DemoCount) -> None:
    """Record the count of the generalist's demos: the mark that they are recorded."""
    write_record(store, GENERALIST_DEMOS_DONE, count)


def describe_shortfall(counts: Mapping[str, DemoCount]) -> str | None:
    """One line naming every source that kept fewer demos than asked, or None."""
    short = [
        f"{source} kept {c.kept} of {c.asked} in {c.attempted} attempts"
        for source, c in counts.items()
        if c.short
    ]
    return "fewer demos than asked: " + "; ".join(short) if short else None


def write_shards(store: ArtifactStore, prefix: str, episodes: Sequence[Episode]) -> list[str]:
    """Store episodes as shards of about SHARD_STEPS transitions; returns the keys written."""
    keys, batch, steps = [], [], 0
    for episode in episodes:
        batch.append(episode)
        steps += len(episode.rewards)
        if steps >= SHARD_STEPS or episode is episodes[-1]:
            key = f"{prefix}/shard-{len(keys):04d}.npz"
            buffer = io.BytesIO()
            np.savez_compressed(
                buffer,
                obs=np.concatenate([e.obs for e in batch]),
                actions=np.concatenate([e.actions for e in batch]),
                rewards=np.concatenate([e.rewards for e in batch]),
                episode_starts=np.cumsum([0] + [len(e.rewards) for e in batch[:-1]]),
                variations=np.array([e.variation for e in batch]),
            )
            put_artifact(store, key, buffer.getvalue())
            keys.append(key)
            batch, steps = [], 0
    return keys


def load_shard(store: ArtifactStore, key: str) -> dict[str, np.ndarray]:
    """One shard's arrays."""
    with np.load(io.BytesIO(get_artifact(store, key))) as data:
        return {name: data[name] for name in data.files}


def demo_shards(store: ArtifactStore, prefixes: Sequence[str]) -> list[str]:
    """All published shard keys under the given demo prefixes."""
    return [k for p in prefixes for k in list_artifacts(store, p, ".npz")]


class DemoBatch(NamedTuple):
    """A minibatch of demonstrated steps: observations, actions and each step's variation."""

    obs: np.ndarray
    actions: np.ndarray
    variations: np.ndarray


def step_variations(shard: dict[str, np.ndarray]) -> np.ndarray:
    """The variation of every step of a shard, from its episodes' starts and variations."""
    lengths = np.diff(shard["episode_starts"], append=len(shard["actions"]))
    return np.repeat(shard["variations"], lengths)


def demo_batches(
    store: ArtifactStore, shards: Sequence[str], batch_size: int, seed: int, pool: int = 16
) -> Iterator[DemoBatch]:
    """Endless minibatches of demonstrated steps, drawn uniformly from `pool` resident shards.

    Shards usually hold one source's variations each, so batches must mix shards; with
    more than `pool` shards, a new random pool is loaded after one pass over the current
    one, which bounds memory by `pool` shards.
    """
    if not shards:
        raise ValueError("no demonstrations to learn from")
    rng = np.random.default_rng(seed)
    while True:
        chosen = rng.permutation(len(shards))[:pool]
        loaded = [load_shard(store, shards[i]) for i in chosen]
        obs = np.concatenate([shard["obs"] for shard in loaded])
        actions = np.concatenate([shard["actions"] for shard in loaded])
        variations = np.concatenate([step_variations(shard) for shard in loaded])
        for _ in range(max(1, len(actions) // batch_size)):
            take = rng.integers(0, len(actions), batch_size)
            yield DemoBatch(obs[take], actions[take], variations[take])
