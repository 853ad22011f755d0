"""The MiniGrid family: level seeds of one id, or a multi-task set of MiniGrid/BabyAI ids."""

from __future__ import annotations

import numpy as np
import pytest

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.envs.minigrid_family import DIRECTIONS, MiniGridFamily
from gsl_k8s.spec import EnvSpec, SpecError, parse_spec
from tests.conftest import TINY_SPEC, gsl, merge
from tests.test_learning import random_policy, train_generalist

VIEW = 7 * 7 * (11 + 6 + 3)  # one-hot object, colour and state of each cell in view
LEFT, RIGHT, FORWARD = 0, 1, 2
# Empty-5x5: the agent starts at (1, 1) facing right, the goal is at (3, 3)
TO_THE_GOAL = [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]


def direction(obs: np.ndarray) -> np.ndarray:
    """The direction each observation shows (right, down, left, up: 0..3)."""
    return obs[:, VIEW : VIEW + DIRECTIONS].argmax(1)


def test_levels_are_reset_seeds_and_only_the_given_ones_play():
    family = MiniGridFamily("MiniGrid-DoorKey-5x5-v0")
    assert family.obs_size == VIEW + DIRECTIONS  # DoorKey's mission never changes: not observed
    assert MiniGridFamily("MiniGrid-DoorKey-5x5-v0", agent_view_size=5).obs_size == 25 * 20 + 4
    first, _ = family.make_vec([3, 17], 2, seed=0, pinned=True).reset(seed=0)
    again, _ = family.make_vec([3, 17], 2, seed=9, pinned=True).reset(seed=9)
    np.testing.assert_array_equal(first, again)  # a level's layout is fixed by its seed
    assert not np.array_equal(first[0], first[1])
    envs = family.make_vec([3, 17], 4, seed=0)
    envs.reset(seed=0)
    ended = set()
    for action in np.random.default_rng(0).integers(0, 7, (600, 4)):
        _, _, terminated, truncated, info = envs.step(action)
        assert set(info["variation"].tolist()) <= {3, 17}
        ended |= set(info["variation"][terminated | truncated].tolist())
    envs.close()
    assert ended == {3, 17}


def test_pinned_sub_envs_keep_their_level():
    family = MiniGridFamily("MiniGrid-Empty-5x5-v0", max_steps=4)
    envs = family.make_vec([5, 9, 5], 3, seed=0, pinned=True)
    envs.reset(seed=0)
    for _ in range(12):  # three episodes each
        *_, info = envs.step(np.full(3, LEFT))
        assert info["variation"].tolist() == [5, 9, 5]
    envs.close()


def test_success_is_reaching_the_goal_with_a_positive_reward():
    family = MiniGridFamily("MiniGrid-Empty-5x5-v0")
    envs = family.make_vec([0], 1, seed=0)
    envs.reset(seed=0)
    for action in TO_THE_GOAL:
        _, reward, terminated, truncated, info = envs.step(np.array([action]))
        assert info["success"][0] == terminated[0]
    assert terminated[0] and not truncated[0] and reward[0] > 0.9
    results = evaluate(lambda obs: np.full(len(obs), LEFT), family, [0, 1], 2, seed=0)
    assert all(r.success_rate == 0.0 and r.mean_return == 0.0 for r in results.values())


def test_truncation_hands_over_the_last_observation():
    envs = MiniGridFamily("MiniGrid-Empty-5x5-v0", max_steps=3).make_vec([0], 2, seed=0)
    obs, _ = envs.reset(seed=0)
    assert direction(obs).tolist() == [0, 0]
    for _ in range(3):
        obs, _, terminated, truncated, info = envs.step(np.full(2, LEFT))
    assert truncated.all() and not terminated.any() and not info["success"].any()
    assert direction(info["final_obs"]).tolist() == [1, 1]  # three left turns from facing right
    assert direction(obs).tolist() == [0, 0]  # the next episode's first observation


def test_babyai_observes_its_mission_as_a_bag_of_words():
    family = MiniGridFamily("BabyAI-GoToLocal-v0")
    code = family.mission_code
    assert family.obs_size == VIEW + DIRECTIONS + code.size
    assert code.size == len(code.vocabulary) + 128
    assert MiniGridFamily("BabyAI-GoToLocal-v0", mission=False).obs_size == VIEW + DIRECTIONS
    envs = family.make_vec(list(range(8)), 8, seed=0, pinned=True)
    obs, _ = envs.reset(seed=0)
    missions = [sub.env.unwrapped.mission for sub in envs.env.envs]  # each sub-env's episode
    vectors = np.stack([code(mission) for mission in missions])
    np.testing.assert_array_equal(obs[:, VIEW + DIRECTIONS :], vectors)
    assert len(set(missions)) > 1 and len({row.tobytes() for row in obs[:, -code.size :]}) > 1
    envs.close()
    red_ball = code("put the red ball next to the blue box")
    swapped = code("put the blue box next to the red ball")
    words = len(code.vocabulary)
    np.testing.assert_array_equal(red_ball[:words], swapped[:words])  # the same words...
    assert not np.array_equal(red_ball, swapped)  # ...told apart by their pairs
    for word in ("red", "green", "blue", "purple", "yellow", "grey", "ball", "box", "key"):
        assert code(word)[code.vocabulary[word]] == 1.0  # every name has its own entry


def test_a_task_set_appends_the_tasks_one_hot():
    ids = ["MiniGrid-Empty-5x5-v0", "BabyAI-GoToObj-v0", "MiniGrid-DoorKey-5x5-v0"]
    family = make_family(EnvSpec(family="minigrid", variations=3, kwargs={"ids": ids}))
    assert family.obs_size == VIEW + DIRECTIONS + family.mission_code.size + 3
    envs = family.make_vec([0, 2], 4, seed=0)
    obs, info = envs.reset(seed=0)
    for action in np.random.default_rng(0).integers(0, 7, (200, 4)):
        going = info["variation"]
        obs, _, terminated, truncated, info = envs.step(action)
        assert set(info["variation"].tolist()) <= {0, 2}
        ended = terminated | truncated
        np.testing.assert_array_equal(info["variation"][~ended], going[~ended])
        assert set(obs[:, -3:].argmax(1).tolist()) <= {0, 2}
    envs.close()
    with pytest.raises(ValueError, match=r"variations \[3\] outside 0..2"):
        family.make_vec([3], 1, seed=0)


def test_features_are_a_tasks_one_hot_or_a_levels_layout():
    ids = ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0"]
    tasks = MiniGridFamily(ids=ids)
    np.testing.assert_array_equal(tasks.variation_features(1), [0.0, 1.0])
    levels = MiniGridFamily("MiniGrid-DoorKey-5x5-v0")
    features = {level: levels.variation_features(level) for level in (0, 1, 2, 0)}
    assert features[0].shape == (2 + 7 * 3,) and 0 <= features[0].min() <= features[0].max() <= 1
    np.testing.assert_array_equal(features[0], levels.variation_features(0))
    assert not np.array_equal(features[0], features[1])
    goal = 2 + 3 * 5  # goal: share of cells, mean column, mean row
    np.testing.assert_allclose(features[0][goal : goal + 3], [1 / 25, 0.75, 0.75])


def test_ppo_learns_empty_5x5(tmp_path):
    """Measured over seeds 0-3: returns 0.86-0.90 and success 1.0; random 0.22 and 0.44."""
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {"family": "minigrid", "id": "MiniGrid-Empty-5x5-v0", "variations": 1},
                "specialists": {"count": 1},
                "trainer": {
                    "numEnvs": 8,
                    "rolloutSteps": 128,
                    "numMinibatches": 4,
                    "updateEpochs": 4,
                    "learningRate": 1e-3,
                    "entCoef": 0.01,
                },
                "generalist": {
                    "envSteps": 6144,
                    "evaluation": {"everySteps": 6144, "episodesPerVariation": 16},
                },
            }
        },
    )
    random_return, random_success = random_policy(experiment)
    final = result.final_eval
    assert final["eval/return"] > 2 * random_return, (final, random_return)
    assert final["eval/success_rate"] >= 0.9 > random_success, (final, random_success)


def minigrid_spec(env: dict) -> dict:
    return merge(TINY_SPEC, {"spec": {"env": {"family": "minigrid", **env}}})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"variations": 4}, "env.id: minigrid needs either id"),
        (
            {"id": "MiniGrid-Empty-5x5-v0", "kwargs": {"ids": ["MiniGrid-Empty-5x5-v0"]}},
            "not both",
        ),
        ({"kwargs": {"ids": "MiniGrid-Empty-5x5-v0"}}, "env.kwargs.ids: must be a non-empty list"),
        ({"kwargs": {"ids": ["A-v0", "A-v0"]}}, "env.kwargs.ids: has duplicate ids"),
        ({"variations": 3, "kwargs": {"ids": ["A-v0", "B-v0"]}}, "env.variations: [2] do not"),
    ],
)
def test_the_schema_refuses_a_bad_minigrid_env(env, message):
    with pytest.raises(SpecError) as err:
        parse_spec(minigrid_spec(env))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"id": "MiniGrid-NoSuchThing-v0"}, "unknown MiniGrid or BabyAI env id"),
        ({"id": "CartPole-v1"}, "CartPole-v1 is not a MiniGrid or BabyAI env"),
        ({"id": "MiniGrid-Empty-5x5-v0", "kwargs": {"colour": 1}}, "cannot create"),
    ],
)
def test_gsl_validate_refuses_bad_ids_in_one_line(write_spec, env, message):
    proc = gsl("validate", str(write_spec(minigrid_spec(env))))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
