import numpy as np
import pytest

from gsl_k8s.core.partition import partition, select_weak_variations

SCORES = {3: 0.2, 1: 0.5, 2: 0.2, 0: 0.9, 4: 0.5}


def test_select_lowest_takes_every_variation_tied_with_the_last():
    # Sorted by (score, id): 2 (0.2), 3 (0.2), 1 (0.5), 4 (0.5), 0 (0.9).
    assert select_weak_variations(SCORES, 1) == [2, 3]
    assert select_weak_variations(SCORES, 2) == [2, 3]
    assert select_weak_variations(SCORES, 3) == [2, 3, 1, 4]
    assert select_weak_variations(SCORES, 5) == [2, 3, 1, 4, 0]
    assert select_weak_variations(SCORES, 0) == []
    assert select_weak_variations(dict.fromkeys(range(8), 0.0), 4) == list(range(8))


def test_select_lowest_takes_no_ties_at_the_ceiling():
    """Seven levels never solved, nine always (FourRooms, 16 levels): the lowest 8 are the
    seven and one solved level, not all 16; ties below the ceiling still all go."""
    scores = {v: 0.0 if v in (3, 7, 8, 10, 11, 13, 14) else 1.0 for v in range(16)}
    assert select_weak_variations(scores, 8, ceiling=1.0) == [3, 7, 8, 10, 11, 13, 14, 0]
    assert select_weak_variations(scores, 8) == sorted(scores, key=lambda v: (scores[v], v))
    assert select_weak_variations(scores, 3, ceiling=1.0) == [3, 7, 8, 10, 11, 13, 14]
    assert select_weak_variations(SCORES, 3, ceiling=1.0) == [2, 3, 1, 4]


def test_select_all_when_count_is_none():
    assert select_weak_variations(SCORES, None) == [2, 3, 1, 4, 0]


@pytest.mark.parametrize("count", [-1, 6])
def test_select_rejects_a_count_out_of_range(count):
    with pytest.raises(ValueError, match="count"):
        select_weak_variations(SCORES, count)


@pytest.mark.parametrize("strategy", ["random", "contiguous", "balanced", "features"])
def test_parts_are_disjoint_covering_non_empty_sorted_and_size_balanced(strategy):
    rng = np.random.default_rng(0)
    for num_variations in range(1, 13):
        variations = [int(v) for v in rng.choice(100, size=num_variations, replace=False)]
        scores = {v: float(rng.random()) for v in variations}
        features = {v: list(rng.normal(size=2)) for v in variations}
        for num_parts in range(1, num_variations + 1):
            parts = partition(
                variations, num_parts, strategy, scores=scores, features=features, seed=num_parts
            )

            assert len(parts) == num_parts
            flat = [v for part in parts for v in part]
            assert sorted(flat) == sorted(variations)  # covering and disjoint
            assert all(part == sorted(part) for part in parts)
            sizes = [len(part) for part in parts]
            assert min(sizes) >= 1
            assert max(sizes) - min(sizes) <= 1


def test_contiguous_cuts_sorted_ids_larger_chunks_first():
    variations = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
    assert partition(variations, 3, "contiguous") == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert partition(variations, 1, "contiguous") == [list(range(10))]
    assert partition(variations, 10, "contiguous") == [[v] for v in range(10)]


def test_random_is_deterministic_per_seed_and_varies_across_seeds():
    variations = list(range(20))
    assert partition(variations, 4, "random", seed=3) == partition(variations, 4, "random", seed=3)
    assert partition(variations, 4, "random", seed=0) != partition(variations, 4, "random", seed=1)
    # Shuffled after sorting, so the input order does not matter.
    assert partition(variations[::-1], 4, "random", seed=3) == partition(
        variations, 4, "random", seed=3
    )
    # A real shuffle, not the contiguous split.
    assert partition(variations, 4, "random", seed=0) != partition(variations, 4, "contiguous")


def test_balanced_equalises_difficulty():
    # Difficulty 1 - score: 0: 1.0, 1: 0.75, 2: 0.5, 5: 0.5, 3: 0.25, 4: 0.0 (hardest first).
    # 0 -> part 0 [1.0, 0]; 1 -> part 1 [1.0, 0.75]; 2 -> part 1 [1.0, 1.25]; 5 -> part 0
    # [1.5, 1.25]; 3 -> part 1 [1.5, 1.5], which is now full (3 each); 4 -> part 0 [1.5, 1.5].
    scores = {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 5: 0.5}
    parts = partition(list(scores), 2, "balanced", scores=scores)

    assert parts == [[0, 4, 5], [1, 2, 3]]
    loads = [sum(1.0 - scores[v] for v in part) for part in parts]
    assert loads == [1.5, 1.5]


def test_balanced_keeps_sizes_within_one_over_load():
    # Plain LPT would put 0 (difficulty 1.0) alone and the five easy ones (0.1 each) together.
    scores = {0: 0.0, 1: 0.9, 2: 0.9, 3: 0.9, 4: 0.9, 5: 0.9}
    assert partition(list(scores), 2, "balanced", scores=scores) == [[0, 4, 5], [1, 2, 3]]


def test_balanced_gives_the_larger_size_to_only_remainder_parts():
    # 10 variations in 4 parts: sizes 3, 3, 2, 2. Variation 0 (difficulty 1) goes to part 0; the
    # others (difficulty 0) fill parts 1-3 round-robin: 1, 2, 3, 4, 5, 6, then 7 and 8 take the two
    # large sizes, so 9 must go to part 0 rather than making part 3 a third part of size 3.
    scores = {0: 0.0} | dict.fromkeys(range(1, 10), 1.0)
    parts = partition(list(scores), 4, "balanced", scores=scores)
    assert parts == [[0, 9], [1, 4, 7], [2, 5, 8], [3, 6]]


@pytest.mark.parametrize(
    ("variations", "num_parts", "match"),
    [
        ([0, 1, 2], 0, "num_parts"),
        ([0, 1, 2], 4, "num_parts"),
        ([], 1, "num_parts"),
        ([0, 1, 1], 2, "unique"),
    ],
)
def test_invalid_partitions_are_rejected(variations, num_parts, match):
    with pytest.raises(ValueError, match=match):
        partition(variations, num_parts, "contiguous")


def test_balanced_requires_a_score_for_every_variation():
    with pytest.raises(ValueError, match="needs scores"):
        partition([0, 1], 2, "balanced")
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        partition([0, 1], 2, "balanced", scores={0: 0.5})


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="unknown partition strategy"):
        partition([0, 1], 2, "kmeans")  # type: ignore[arg-type]


def _blobs(num_clusters: int, per_cluster: int, seed: int) -> tuple[dict[int, list[float]], list]:
    """Well-separated 2-d clusters with shuffled ids: features and the true clusters."""
    rng = np.random.default_rng(seed)
    ids = [int(v) for v in rng.permutation(num_clusters * per_cluster) * 3]
    features, truth = {}, []
    for cluster in range(num_clusters):
        center = 100.0 * np.array([np.cos(cluster), np.sin(cluster)]) * (cluster + 1)
        members = ids[cluster * per_cluster : (cluster + 1) * per_cluster]
        for variation in members:
            features[variation] = list(center + rng.normal(0.0, 1.0, size=2))
        truth.append(sorted(members))
    return features, sorted(truth)


@pytest.mark.parametrize("seed", range(5))
def test_features_recovers_well_separated_equal_clusters_exactly(seed):
    features, truth = _blobs(num_clusters=4, per_cluster=5, seed=seed)
    assert partition(list(features), 4, "features", features=features, seed=seed) == truth


def test_features_balances_unequal_clusters():
    # A tight cluster of 6 and one of 2 far away: 2 parts of 4, the big cluster split,
    # each small-cluster point with the 2 big-cluster points nearest to it.
    features = {v: [float(v), 0.0] for v in range(6)} | {10: [50.0, 0.0], 11: [51.0, 0.0]}
    assert partition(list(features), 2, "features", features=features) == [
        [0, 1, 2, 3],
        [4, 5, 10, 11],
    ]


def test_features_is_deterministic_given_the_seed_whatever_the_input_order():
    rng = np.random.default_rng(2)
    features = {v: list(rng.normal(size=4)) for v in range(30)}
    for seed in range(4):
        parts = partition(list(features), 5, "features", features=features, seed=seed)
        backwards = list(features)[::-1]
        assert partition(backwards, 5, "features", features=features, seed=seed) == parts


def test_features_puts_identical_vectors_anywhere_but_balanced():
    features = dict.fromkeys(range(7), [0.0, 0.0])
    parts = partition(list(features), 3, "features", features=features)
    assert sorted(len(part) for part in parts) == [2, 2, 3]


def test_features_needs_a_finite_vector_of_one_length_for_every_variation():
    with pytest.raises(ValueError, match="needs features"):
        partition([0, 1], 2, "features")
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        partition([0, 1], 2, "features", features={0: [0.0]})
    with pytest.raises(ValueError, match="same length"):
        partition([0, 1], 2, "features", features={0: [0.0], 1: [0.0, 1.0]})
    with pytest.raises(ValueError, match="finite"):
        partition([0, 1], 2, "features", features={0: [0.0], 1: [float("nan")]})
    with pytest.raises(ValueError, match="non-empty"):
        partition([0, 1], 2, "features", features={0: [], 1: []})
