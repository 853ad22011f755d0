"""The Procgen family: variations are level seeds, any subset of them, checked by Procgen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsl_k8s.envs import evaluate
from gsl_k8s.envs.procgen_family import ProcgenFamily, procgen_env
from gsl_k8s.spec import NetworkSpec
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.features import variation_features
from tests.conftest import gsl, merge, quickest_pipeline
from tests.test_learning import random_policy, train_generalist

SCATTERED_LEVELS = [3, 17, 120, 999]


def level_seeds(envs) -> np.ndarray:
    """The level each sub-env is playing, as Procgen itself reports it."""
    return np.array([info["level_seed"] for info in envs.procgen.get_info()])


def test_a_scattered_subset_only_ever_plays_its_levels():
    envs = ProcgenFamily("bigfish").make_vec(SCATTERED_LEVELS, 16, seed=0)
    envs.reset(seed=0)
    playing = level_seeds(envs)
    episodes, played = 0, set()
    for _ in range(600):
        _, _, terminated, _, info = envs.step(envs.action_space.sample())
        # A finished episode is reported with the level it played; the others keep theirs.
        assert (info["variation"] == playing).all()
        playing = level_seeds(envs)
        assert set(playing.tolist()) <= set(SCATTERED_LEVELS)
        episodes += int(terminated.sum())
        played |= set(info["variation"][terminated].tolist())
    envs.close()
    assert episodes > 30 and played == set(SCATTERED_LEVELS)


def test_a_loaded_level_plays_exactly_like_a_fresh_one():
    """Loading a level's start state into a running sub-env is a fresh episode of that level."""
    fresh = procgen_env(num=1, env_name="bigfish", distribution_mode="easy", start_level=17,
                        num_levels=1, rand_seed=5)  # fmt: skip
    envs = ProcgenFamily("bigfish").make_vec([17], 3, seed=1)
    frames, _ = envs.reset(seed=1)
    _, fresh_frames, _ = fresh.observe()
    assert np.array_equal(frames[1], fresh_frames["rgb"][0])
    actions = np.random.default_rng(0).integers(0, 15, 400)
    for action in actions:
        fresh.act(np.array([action], dtype=np.int32))
        fresh_reward, fresh_frames, fresh_first = fresh.observe()
        frames, reward, terminated, _, _ = envs.step(np.array([0, action, 0]))
        assert np.array_equal(frames[1], fresh_frames["rgb"][0])
        assert reward[1] == fresh_reward[0] and terminated[1] == fresh_first[0]
    envs.close()


def test_levels_are_described_by_the_encoders_embedding_of_their_first_frame():
    family = ProcgenFamily("bigfish")
    envs = family.make_vec([0], 1, seed=0)
    agent = Agent(envs.single_observation_space, envs.single_action_space, NetworkSpec())
    envs.close()
    source, features = variation_features(family, agent, [*SCATTERED_LEVELS, 3], seed=0)
    assert source == "encoder" and sorted(features) == SCATTERED_LEVELS
    assert {len(vector) for vector in features.values()} == {agent.actor_body.out_features}
    # a level's first frame is fixed by its seed: the same vector from another env seed
    _, again = variation_features(family, agent, [17], seed=5)
    np.testing.assert_allclose(again[17], features[17], atol=1e-5)  # batch-size float noise
    assert not np.allclose(features[3], features[17])


def test_evaluation_reports_every_level():
    family = ProcgenFamily("bigfish")
    results = evaluate(
        lambda obs: np.random.default_rng(0).integers(0, 15, len(obs)), family, [5, 42, 1000], 2, 0
    )
    assert sorted(results) == [5, 42, 1000] and all(r.episodes == 2 for r in results.values())


@pytest.mark.slow
def test_ppo_with_the_impala_cnn_beats_random_on_starpilot(tmp_path):
    """A narrower IMPALA-CNN keeps this within CPU CI; the full one is the default."""
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {
                    "family": "procgen",
                    "variations": [0, 1],
                    "kwargs": {"game": "starpilot", "maxEpisodeSteps": 300},
                },
                "specialists": {"count": 1},
                "trainer": {
                    "numEnvs": 16,
                    "rolloutSteps": 64,
                    "learningRate": 1e-3,
                    "updateEpochs": 3,
                    "network": {"channels": [8, 16, 16]},
                },
                "generalist": {
                    "envSteps": 8192,
                    "evaluation": {"everySteps": 8192, "episodesPerVariation": 8},
                },
            }
        },
    )
    random_return, _ = random_policy(experiment)
    trained_return = result.final_eval["eval/return"]
    assert trained_return > 2 * random_return, (trained_return, random_return)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"game": "pong"}, "unknown Procgen game 'pong'"),
        ({"distributionMode": "exploration"}, "use one of easy, hard, extreme, memory"),
        ({"useBackgroundz": False}, "cannot create Procgen bigfish"),
    ],
)
def test_bad_kwargs_fail_validation_in_one_line(write_spec, kwargs, message):
    spec = write_spec({"spec": {"env": {"family": "procgen", "variations": 8, "kwargs": kwargs}}})
    proc = gsl("validate", str(spec))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_gsl_run_on_scattered_levels_end_to_end(write_spec, tmp_path):
    levels = [4, 9, 31, 77, 250, 1024]
    procgen = {
        "spec": {
            "env": {
                "family": "procgen",
                "variations": levels,
                "kwargs": {"game": "bigfish", "maxEpisodeSteps": 64},
            },
            "trainer": {"numEnvs": 8, "rolloutSteps": 16, "network": {"channels": [4, 8, 8]}},
        }
    }
    spec = write_spec(merge(quickest_pipeline(8 * 16), procgen))
    run = tmp_path / "run"
    proc = gsl("run", str(spec), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run / "report.json").read_text())
    assert sorted(report["final"]["per_variation"]) == sorted(str(v) for v in levels)
    plan = json.loads((run / "plan.json").read_text())
    assert all(set(subset) <= set(levels) for subset in plan["subsets"])


def test_max_episode_steps_truncates_episodes():
    envs = ProcgenFamily("bigfish", max_episode_steps=10).make_vec([1], 4, seed=0)
    envs.reset(seed=0)
    for _ in range(10):
        _, _, terminated, truncated, _ = envs.step(np.zeros(4, dtype=np.int64))
    envs.close()
    assert (terminated | truncated).all() and truncated.any()
