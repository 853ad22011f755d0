"""Choosing the weak variations and splitting them among specialists (steps 4-5 of Algorithm 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

PartitionStrategy = Literal["random", "contiguous", "balanced", "features"]
KMEANS_RESTARTS = 8  # k-means++ initialisations; the tightest clustering wins
KMEANS_ITERATIONS = 50  # at most this many Lloyd iterations per initialisation


def select_weak_variations(
    scores: Mapping[int, float], count: int | None, ceiling: float | None = None
) -> list[int]:
    """The `count` lowest-scoring variations and every variation tied with the last of them
    (no arbitrary choice among equally weak ones), or all of them when count is None.

    Ties at `ceiling`, the best score there is (a success rate's 1.0), are not weak: where
    the last of the `count` is there, exactly `count` are taken, lowest ids first among the
    tied, so that specialists never train on every variation the generalist has mastered.

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
    if ceiling is not None and cutoff >= ceiling:
        return ranked[:count]
    return [variation for variation in ranked if scores[variation] <= cutoff]


def partition(
    variations: Sequence[int],
    num_parts: int,
    strategy: PartitionStrategy,
    *,
    scores: Mapping[int, float] | None = None,
    features: Mapping[int, Sequence[float]] | None = None,
    seed: int = 0,
) -> list[list[int]]:
    """Split `variations` into `num_parts` disjoint, non-empty subsets covering all of them.

    Part sizes differ by at most one and each part is sorted. `contiguous` cuts the sorted ids
    into consecutive chunks (larger chunks first); `random` does the same after a shuffle seeded
    by `seed`; `balanced` also equalises the total difficulty `1 - score` of the parts, so it
    needs `scores` for every variation; `features` clusters the variations by their feature
    vectors (`features` for every variation) with a size-balanced k-means seeded by `seed`,
    parts ordered by their smallest id.
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
    elif strategy == "features":
        if features is None:
            raise ValueError("strategy 'features' needs features")
        missing = [variation for variation in ids if variation not in features]
        if missing:
            raise ValueError(
                f"strategy 'features' needs a feature vector for every variation; missing {missing}"
            )
        labels = balanced_kmeans(_feature_matrix(ids, features), num_parts, seed)
        parts = sorted(
            [v for v, label in zip(ids, labels, strict=True) if label == part]
            for part in range(num_parts)
        )
    else:
        raise ValueError(
            f"unknown partition strategy {strategy!r}; "
            "expected random, contiguous, balanced or features"
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


def _feature_matrix(ids: list[int], features: Mapping[int, Sequence[float]]) -> np.ndarray:
    """The feature vectors of `ids` as rows; a clear error for ragged or non-finite ones."""
    lengths = {variation: len(features[variation]) for variation in ids}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"feature vectors must all have the same length, got lengths {lengths}")
    matrix = np.array([features[variation] for variation in ids], dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        raise ValueError("feature vectors must be non-empty and finite")
    return matrix


def balanced_kmeans(points: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """A cluster label per row of `points` (n, d), cluster sizes differing by at most one.

    k-means with a size constraint: k-means++ initialisation, then Lloyd iterations whose
    assignment step is `_capacitated_assignment`; the best of `KMEANS_RESTARTS` runs (lowest
    sum of squared distances) wins. Deterministic given `seed`.
    """
    if not 1 <= num_clusters <= len(points):
        raise ValueError(f"num_clusters must be in [1, {len(points)}], got {num_clusters}")
    rng = np.random.default_rng(seed)
    best_labels, best_cost = None, np.inf
    for _ in range(KMEANS_RESTARTS):
        centers = _kmeans_plus_plus(points, num_clusters, rng)
        labels = None
        for _ in range(KMEANS_ITERATIONS):
            new_labels = _capacitated_assignment(_squared_distances(points, centers))
            if labels is not None and (new_labels == labels).all():
                break
            labels = new_labels
            centers = np.stack([points[labels == c].mean(axis=0) for c in range(num_clusters)])
        cost = float(((points - centers[labels]) ** 2).sum())
        if cost < best_cost - 1e-12:
            best_labels, best_cost = labels, cost
    return best_labels


def _squared_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances."""
    return ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)


def _kmeans_plus_plus(
    points: np.ndarray, num_clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next center is a point drawn
    with probability proportional to its squared distance to the nearest center so far."""
    centers = [points[rng.integers(len(points))]]
    for _ in range(1, num_clusters):
        nearest = _squared_distances(points, np.stack(centers)).min(axis=1)
        total = nearest.sum()
        weights = nearest / total if total > 0 else np.full(len(points), 1 / len(points))
        centers.append(points[rng.choice(len(points), p=weights)])
    return np.stack(centers)


def _capacitated_assignment(distances: np.ndarray) -> np.ndarray:
    """Assign points to clusters closest pair first, under the size-balance constraint.

    Pairs (point, cluster) are taken by increasing distance (ties: point, then cluster
    index); a pair is used when its point is unassigned and its cluster open, as in
    `_balance`. Every point finds a cluster: the capacities sum to the number of points.
    """
    num_points, num_clusters = distances.shape
    small_size, remainder = divmod(num_points, num_clusters)
    sizes = np.zeros(num_clusters, dtype=np.int64)
    labels = np.full(num_points, -1, dtype=np.int64)
    large_clusters = assigned = 0
    pair_points, pair_clusters = np.divmod(np.arange(distances.size), num_clusters)
    order = np.lexsort((pair_clusters, pair_points, distances.ravel()))
    points, clusters = np.divmod(order, num_clusters)
    for point, cluster in zip(points.tolist(), clusters.tolist(), strict=True):
        if labels[point] >= 0:
            continue
        size = sizes[cluster]
        if size < small_size or (size == small_size and large_clusters < remainder):
            if size == small_size:
                large_clusters += 1
            labels[point] = cluster
            sizes[cluster] += 1
            assigned += 1
            if assigned == num_points:
                break
    return labels
