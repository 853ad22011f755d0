import numpy as np
import pytest

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.envs.forkmaze import DOWN, RIGHT, UP, ForkMazeFamily
from gsl_k8s.spec import EnvSpec


def random_act(space_n=4, seed=0):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, space_n, len(obs))


def shortest_path_act(family: ForkMazeFamily):
    """An oracle that follows the BFS distance field to each env's own goal."""
    layout = family.layout
    goals = lambda obs: np.rint((obs[:, 2] + 1) / 2 * (layout.goals - 1)).astype(int)  # noqa: E731
    moves = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]])

    def act(obs):
        scale = np.array(layout.shape) - 1
        position = np.rint((obs[:, :2] + 1) / 2 * scale).astype(int)
        actions = []
        for (x, y), goal in zip(position, goals(obs), strict=True):
            best, best_distance = RIGHT, np.inf
            for action, (dx, dy) in enumerate(moves):
                cx, cy = x + dx, y + dy
                if 0 <= cx < layout.shape[0] and 0 <= cy < layout.shape[1] and layout.free[cx, cy]:
                    d = layout.distance[goal, cx, cy]
                    if d < best_distance:
                        best, best_distance = action, d
            actions.append(best)
        return np.array(actions)

    return act


def test_forkmaze_only_produces_the_given_variations():
    family = ForkMazeFamily(goals=8)
    envs = family.make_vec([2, 5], 16, seed=0)
    obs, info = envs.reset(seed=0)
    seen = set(info["variation"])
    act = random_act()
    for _ in range(500):
        obs, _, terminated, truncated, info = envs.step(act(obs))
        seen |= set(info["variation"])
    assert seen == {2, 5}


def test_forkmaze_oracle_solves_every_goal_and_random_does_not():
    family = ForkMazeFamily(goals=8)
    oracle = evaluate(shortest_path_act(family), family, range(8), episodes=2, seed=0)
    assert all(r.success_rate == 1.0 for r in oracle.values())
    assert all(r.mean_return > 0.9 for r in oracle.values())
    random = evaluate(random_act(), family, range(8), episodes=8, seed=0)
    assert np.mean([r.success_rate for r in random.values()]) < 0.2


def test_forkmaze_context_is_a_label_not_a_position():
    family = ForkMazeFamily(goals=8)
    rows = family.layout.goal_cells[:, 1]
    assert sorted(rows) == list(range(0, 16, 2))
    assert list(rows) != sorted(rows)  # goals are permuted among the arms


def test_forkmaze_features_are_the_goal_arms_geometry():
    family = ForkMazeFamily(goals=8, corridor_length=2, arm_length=2, layout_seed=1)
    layout = family.layout
    features = np.stack([family.variation_features(k) for k in range(8)])
    assert features.shape == (8, 3) and np.abs(features).max() <= 1.0
    # the goal cell as an observation there would show it, and the path length to it
    scale = np.array(layout.shape) - 1
    np.testing.assert_allclose((features[:, :2] + 1) / 2 * scale, layout.goal_cells)
    path = layout.distance[np.arange(8), layout.start[0], layout.start[1]]
    np.testing.assert_allclose(features[:, 2], path / path.max(), rtol=1e-6)
    # arms two rows apart are nearest each other, whatever their goals' context labels
    by_row = np.argsort(layout.goal_cells[:, 1])
    gaps = np.linalg.norm(np.diff(features[by_row], axis=0), axis=1)
    far = np.linalg.norm(features[by_row[0]] - features[by_row[-1]])
    assert gaps.max() < far
    with pytest.raises(ValueError, match="0..7"):
        family.variation_features(8)


def test_forkmaze_walls_block_moves():
    family = ForkMazeFamily(goals=4)
    envs = family.make_vec([0], 1, seed=0)
    obs, _ = envs.reset(seed=0)
    for action in (UP, DOWN):  # the corridor has walls above and below
        after, *_ = envs.step(np.array([action]))
        np.testing.assert_array_equal(after, obs)


def test_evaluate_reports_each_variation():
    family = make_family(EnvSpec(variations=6))
    results = evaluate(random_act(), family, [0, 3, 5], episodes=3, seed=1)
    assert sorted(results) == [0, 3, 5]
    assert all(r.episodes == 3 for r in results.values())


def test_gymnasium_family_variations_are_reset_seeds():
    family = make_family(EnvSpec(family="gymnasium", id="CartPole-v1", variations=4))
    envs = family.make_vec([7], 2, seed=0)
    first, _ = envs.reset(seed=0)
    again, _ = family.make_vec([7], 2, seed=5).reset(seed=5)
    np.testing.assert_allclose(first, again)  # same seed, same initial state
    other, _ = family.make_vec([8], 2, seed=0).reset(seed=0)
    assert not np.allclose(first, other)


def test_gymnasium_family_reports_variation_and_success_of_ended_episode():
    family = make_family(EnvSpec(family="gymnasium", id="CartPole-v1", variations=[3, 4]))
    envs = family.make_vec([3, 4], 4, seed=0)
    obs, _ = envs.reset(seed=0)
    ended_variations = set()
    for _ in range(300):
        obs, _, terminated, truncated, info = envs.step(np.zeros(4, dtype=np.int64))
        done = terminated | truncated
        ended_variations |= set(info["variation"][done])
        assert not info["success"][done].any()  # always pushing left never reaches 475
    assert ended_variations == {3, 4}


def test_gymnasium_family_continuous_actions():
    family = make_family(EnvSpec(family="gymnasium", id="Pendulum-v1", variations=2))
    results = evaluate(
        lambda obs: np.zeros((len(obs), 1), np.float32), family, [0, 1], episodes=1, seed=0
    )
    assert all(r.mean_return < 0 for r in results.values())


def test_unknown_gymnasium_id_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown gymnasium env id"):
        make_family(EnvSpec(family="gymnasium", id="NoSuchEnv-v9"))
