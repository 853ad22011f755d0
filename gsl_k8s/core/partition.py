"""Choosing the weak variations and splitting them among specialists (steps 4-5 of Algorithm 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

PartitionStrategy = Literal["random", "contiguous", "balanced"]


def select_weak_variations(scores: Mapping[int, float], count: int | None) -> list[int]:
    """The `count` lowest-scoring variations and every variation tied with the last of them
    (no arbitrary choice among equally weak ones), or all of them when count is None.

    Returned sorted by (score, id).
    """
    ranked = sorted(scores, key=lambda variation: (scores[variation], variation))
    if count is None:
        return ranked
    if not 0 <= count <= len(ranked):
        raise ValueError(
            f"count must be in [0, {len(ranked)}] (the number of variations), got {count}"
        )
    if count == 0:
        return []
    cutoff = scores[ranked[count - 1]]
    return [variation for variation in ranked if scores[variation] <= cutoff]


def partition(
    variations: Sequence[int],
    num_parts: int,
    strategy: PartitionStrategy,
    *,
    scores: Mapping[int, float] | None = None,
    seed: int = 0,
) -> list[list[int]]:
    """Split `variations` into `num_parts` disjoint, non-empty subsets covering all of them.

    Part sizes differ by at most one and each part is sorted. `contiguous` cuts the sorted ids
    into consecutive chunks (larger chunks first); `random` does the same after a shuffle seeded
    by `seed`; `balanced` also equalises the total difficulty `1 - score` of the parts, so it
    needs `scores` for every variation.
    """
    ids = sorted(variations)
    if len(set(ids)) != len(ids):
        raise ValueError(f"variation ids must be unique, got {list(variations)}")
    if not 1 <= num_parts <= len(ids):
        raise ValueError(
            f"num_parts must be in [1, {len(ids)}] (the number of variations), got {num_parts}"
        )

    if strategy == "contiguous":
        parts = _chunk(ids, num_parts)
    elif strategy == "random":
        shuffled = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
        parts = _chunk(shuffled, num_parts)
    elif strategy == "balanced":
        if scores is None:
            raise ValueError("strategy 'balanced' needs scores")
        missing = [variation for variation in ids if variation not in scores]
        if missing:
            raise ValueError(
                f"strategy 'balanced' needs a score for every variation; missing {missing}"
            )
        parts = _balance(ids, num_parts, scores)
    else:
        raise ValueError(
            f"unknown partition strategy {strategy!r}; expected random, contiguous or balanced"
        )
    return [sorted(part) for part in parts]


def _part_sizes(num_items: int, num_parts: int) -> list[int]:
    """Sizes that differ by at most one and sum to `num_items`, larger ones first."""
    base, remainder = divmod(num_items, num_parts)
    return [base + 1 if part < remainder else base for part in range(num_parts)]


def _chunk(items: list[int], num_parts: int) -> list[list[int]]:
    """Cut `items` into consecutive chunks of `_part_sizes`."""
    chunks = []
    start = 0
    for size in _part_sizes(len(items), num_parts):
        chunks.append(items[start : start + size])
        start += size
    return chunks


def _balance(ids: list[int], num_parts: int, scores: Mapping[int, float]) -> list[list[int]]:
    """Greedy longest-processing-time on difficulty `1 - score`, under the size-balance constraint.

    Hardest variation first, each goes to the open part with the smallest load (ties: fewer
    variations, then lower index). A part is open while it is below the small size, or at it
    while fewer than `remainder` parts have taken the large size.
    """
    small_size, remainder = divmod(len(ids), num_parts)
    parts: list[list[int]] = [[] for _ in range(num_parts)]
    loads = [0.0] * num_parts
    large_parts = 0
    for variation in sorted(ids, key=lambda variation: (scores[variation], variation)):
        open_parts = [
            index
            for index, part in enumerate(parts)
            if len(part) < small_size or (len(part) == small_size and large_parts < remainder)
        ]
        target = min(open_parts, key=lambda index: (loads[index], len(parts[index]), index))
        if len(parts[target]) == small_size:
            large_parts += 1
        parts[target].append(variation)
        loads[target] += 1.0 - scores[variation]
    return parts
