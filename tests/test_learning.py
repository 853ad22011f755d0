"""PPO learns: tiny budgets must beat a random policy by a wide margin."""

import numpy as np
import pytest

from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.layout import GENERALIST, SPEC
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.task import TaskRunner
from tests.conftest import TINY_SPEC, merge


def train_generalist(tmp_path, patch):
    experiment = parse_spec(merge(TINY_SPEC, patch))
    store = open_store(str(tmp_path))
    store.write_bytes(SPEC, experiment.to_json().encode())
    return experiment, TaskRunner(store, GENERALIST).run()


def random_policy(experiment, seed=0):
    family = make_family(experiment.spec.env)
    envs = family.make_vec([0], 1, seed)
    space = envs.single_action_space
    space.seed(seed)
    results = evaluate(
        lambda obs: np.stack([space.sample() for _ in obs]),
        family,
        experiment.spec.env.variation_ids,
        episodes=64,
        seed=seed,
    )
    return np.mean([r.mean_return for r in results.values()]), np.mean(
        [r.success_rate for r in results.values()]
    )


def test_ppo_learns_cartpole(tmp_path):
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {"family": "gymnasium", "id": "CartPole-v1", "variations": 4},
                "trainer": {"numEnvs": 8, "rolloutSteps": 128},
                "generalist": {
                    "envSteps": 50_000,
                    "evaluation": {"everySteps": 50_000, "episodesPerVariation": 4},
                },
            }
        },
    )
    random_return, _ = random_policy(experiment)
    trained_return = result.final_eval["eval/return"]
    assert random_return < 40
    assert trained_return > 5 * random_return, (trained_return, random_return)


@pytest.mark.slow
def test_ppo_learns_pendulum_with_default_settings(tmp_path):
    """Continuous control out of the box: the trainer's defaults, a 60k-step budget."""
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {"family": "gymnasium", "id": "Pendulum-v1", "variations": 8},
                "trainer": {
                    "numEnvs": 32,
                    "rolloutSteps": 64,
                    "updateEpochs": 10,
                    "numMinibatches": 32,
                },
                "generalist": {
                    "envSteps": 61_440,
                    "evaluation": {"everySteps": 61_440, "episodesPerVariation": 4},
                },
            }
        },
    )
    random_return, _ = random_policy(experiment)
    trained_return = result.final_eval["eval/return"]
    assert random_return < -1000
    assert trained_return > 0.6 * random_return, (trained_return, random_return)


def test_ppo_learns_one_forkmaze_goal(tmp_path):
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {
                    "variations": [2],
                    "kwargs": {"goals": 8, "corridorLength": 6, "armLength": 3, "horizon": 64},
                },
                "specialists": {"count": 1},
                "trainer": {"numEnvs": 16, "rolloutSteps": 64},
                "generalist": {
                    "envSteps": 80_000,
                    "evaluation": {"everySteps": 80_000, "episodesPerVariation": 32},
                },
            }
        },
    )
    _, random_success = random_policy(experiment)
    trained_success = result.final_eval["eval/success_rate"]
    assert trained_success >= 0.9
    assert trained_success - random_success >= 0.5, (trained_success, random_success)
    records = read_progress(open_store(str(tmp_path)), GENERALIST.progress)
    names = set().union(*records)
    assert {
        "charts/sps",
        "charts/episodic_return",
        "losses/policy_loss",
        "eval/success_rate",
    } <= names
