"""The ManiSkill2 family: variations are reset seeds, checked against the simulator's state.

These tests fail (they do not skip) where ManiSkill2 cannot load: it needs
`pip install 'gsl-k8s[maniskill2]'` and `apt-get install libvulkan1`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsl_k8s.envs import evaluate
from gsl_k8s.envs.maniskill2_family import ManiSkill2Family
from tests.conftest import gsl, merge, quickest_pipeline
from tests.test_learning import train_generalist


def cube_position(env) -> np.ndarray:
    """Where the simulator has the cube of a (wrapped) PickCube/LiftCube env."""
    return np.asarray(env.unwrapped.obj.pose.p)


def test_a_subset_only_ever_plays_its_seeds():
    """Every episode starts with the cube where `reset(seed=v)` of a raw env puts it, for the
    v that info["variation"] names, and v is always one of the subset's."""
    family = ManiSkill2Family("PickCube-v0", max_episode_steps=4)
    raw = family.make_task_env()
    reference = {}
    for seed in range(8):
        raw.reset(seed=seed)
        reference[seed] = cube_position(raw)
    raw.close()
    assert len({tuple(p.round(4)) for p in reference.values()}) == 8  # seeds are tell-apart

    subset = [2, 5]
    envs = family.make_vec(subset, 3, seed=0)
    subs = envs.unwrapped.envs
    _, info = envs.reset(seed=0)
    starts = [cube_position(sub) for sub in subs]
    claimed = info["variation"]
    checked = 0
    for _ in range(60):
        _, _, terminated, truncated, info = envs.step(envs.action_space.sample())
        for i, sub in enumerate(subs):
            if starts[i] is not None:  # the first step of an episode: its variation is known
                variation = int(info["variation"][i] if claimed is None else claimed[i])
                assert variation in subset
                np.testing.assert_allclose(starts[i], reference[variation], atol=1e-6)
                starts[i], checked = None, checked + 1
            if terminated[i] or truncated[i]:
                starts[i] = cube_position(sub)  # same-step autoreset: the next episode's
        claimed = None
    envs.close()
    assert checked >= 40


def test_evaluation_reports_every_variation():
    family = ManiSkill2Family("PickCube-v0", max_episode_steps=10)
    rng = np.random.default_rng(0)
    results = evaluate(
        lambda obs: rng.uniform(-1, 1, (len(obs), 7)), family, [0, 4, 9], episodes=2, seed=0
    )
    assert sorted(results) == [0, 4, 9] and all(r.episodes == 2 for r in results.values())


@pytest.mark.slow
def test_ppo_learns_to_reach_for_the_cube(tmp_path):
    """LiftCube's dense reward pays for reaching, grasping and lifting; at this budget PPO
    learns to reach and hover at the cube (no lift, so no success): its return must clearly
    beat both a random policy and keeping still."""
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {
                    "family": "maniskill2",
                    "variations": 4,
                    "kwargs": {"task": "LiftCube-v0", "maxEpisodeSteps": 50},
                },
                "specialists": {"count": 1},
                "trainer": {
                    "numEnvs": 8,
                    "rolloutSteps": 128,
                    "learningRate": 1e-3,
                    "normalizeObservations": True,
                    "entCoef": 0.0,
                },
                "generalist": {
                    "envSteps": 24_576,
                    "evaluation": {"everySteps": 24_576, "episodesPerVariation": 8},
                },
            }
        },
    )
    family = ManiSkill2Family("LiftCube-v0", max_episode_steps=50)
    rng = np.random.default_rng(0)
    baselines = {
        name: np.mean([r.mean_return for r in evaluate(act, family, [0, 1, 2, 3], 4, 0).values()])
        for name, act in [
            ("random", lambda obs: rng.uniform(-1, 1, (len(obs), 7))),
            ("still", lambda obs: np.zeros((len(obs), 7))),
        ]
    }
    trained = result.final_eval["eval/return"]
    assert trained > 1.4 * max(baselines.values()), (trained, baselines)


@pytest.mark.parametrize(
    "task, message",
    [
        ("PickSingleYCB-v0", "`python -m mani_skill2.utils.download_asset PickSingleYCB-v0`"),
        ("NoSuchTask-v0", "unknown ManiSkill2 task 'NoSuchTask-v0': use one of PickCube-v0"),
    ],
)
def test_tasks_without_their_assets_fail_validation_in_one_line(write_spec, task, message):
    spec = write_spec(
        {"spec": {"env": {"family": "maniskill2", "variations": 4, "kwargs": {"task": task}}}}
    )
    proc = gsl("validate", str(spec))
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("gsl: error: spec.env: "), proc.stderr
    assert message in errors[0]


@pytest.mark.slow
def test_gsl_run_on_pickcube_end_to_end(write_spec, tmp_path):
    maniskill2 = {
        "spec": {
            "env": {
                "family": "maniskill2",
                "variations": 4,
                "kwargs": {"task": "PickCube-v0", "maxEpisodeSteps": 20},
            },
            "trainer": {"numEnvs": 4, "rolloutSteps": 32},
            "specialists": {"partition": "contiguous"},
        }
    }
    spec = write_spec(merge(quickest_pipeline(4 * 32), maniskill2))
    run = tmp_path / "run"
    proc = gsl("run", str(spec), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run / "report.json").read_text())
    assert sorted(report["final"]["per_variation"]) == ["0", "1", "2", "3"]
    assert report["specialists"]["count"] == 2
