"""A concurrent baseline anneals its learning rate over the most env steps GSL may use, as
`max_gsl_env_steps` bounds them: the generalist, every round's specialists and finetune,
and the demonstrations they record. GSL's total never outgrows it, so the step size never
turns negative (and `PPO.update` clamps it anyway: tests/test_ppo.py)."""

from __future__ import annotations

import numpy as np

from gsl_k8s import layout
from gsl_k8s.envs import make_family
from gsl_k8s.envs.forkmaze import LEFT
from gsl_k8s.layout import BASELINE, GENERALIST, Task
from gsl_k8s.orchestration.controller import gsl_env_steps
from gsl_k8s.records.baseline import write_baseline_allowance, write_baseline_budget
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import EnvSpec, parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.demos import max_demo_env_steps, record_demos
from gsl_k8s.trainer.task import StepBudget, task_setup
from tests.conftest import TINY_SPEC, merge, write_plan_of


def never_succeeds(greedy: bool):
    """Walks into the wall left of the start: every episode runs to the horizon."""
    return lambda obs: np.full(len(obs), LEFT)


def worst_case_demo_steps(spec, episodes: int) -> int:
    """The env steps of recording `episodes` demos where none succeeds: every attempt
    taken, greedy actions first, then sampled ones."""
    d = spec.demos
    _, count = record_demos(
        never_succeeds,
        make_family(spec.env),
        spec.env.variation_ids,
        episodes,
        greedy=True,
        seed=0,
        success_only=True,
        attempts_per_episode=d.max_attempts_per_episode,
        log=lambda line: None,
    )
    assert count.kept == 0 and count.attempted > episodes * d.max_attempts_per_episode
    return count.env_steps


def test_demo_recording_stays_within_its_bound():
    spec = parse_spec(TINY_SPEC).spec
    horizon = make_family(spec.env).max_episode_steps
    for episodes in (1, 4, 40):
        used = worst_case_demo_steps(spec, episodes)
        assert used <= max_demo_env_steps(episodes, spec.demos.max_attempts_per_episode, horizon)


def test_a_concurrent_baselines_horizon_covers_every_round_and_its_demos(tmp_path):
    """Two rounds, every task at its budget, every demo recording at its worst: GSL's total
    (what the baseline gets once GSL ends) stays within the horizon it anneals over."""
    demos = {"successOnly": True, "episodesPerSpecialist": 4, "generalistEpisodes": 4}
    patch = {"spec": {"rounds": 2, "trainer": {"annealLearningRate": True}, "demos": demos}}
    experiment = parse_spec(merge(TINY_SPEC, patch))
    spec = experiment.spec
    store = open_store(str(tmp_path))
    store.write_bytes(layout.SPEC, experiment.to_json().encode())
    horizon = make_family(spec.env).max_episode_steps
    setup = task_setup(spec, store, BASELINE, horizon)

    specialist_demos = worst_case_demo_steps(spec, 4)
    write_result(store, GENERALIST, TaskResult(spec.generalist.env_steps, 0, "budget", {}))
    for round_ in (1, 2):
        subsets = [[v] for v in range(spec.specialists.count)]
        write_plan_of(store, subsets, round_=round_)
        for i in range(spec.specialists.count):
            used = TaskResult(spec.specialists.env_steps, specialist_demos, "budget", {})
            write_result(store, Task("specialist", i, round_), used)
        generalist_demos = worst_case_demo_steps(spec, 4) if round_ == 1 else 0
        used = TaskResult(spec.finetune.env_steps, generalist_demos, "budget", {})
        write_result(store, Task("finetune", round=round_), used)
    assert gsl_env_steps(store) <= setup.env_steps


def test_families_report_their_episode_cap():
    assert make_family(EnvSpec(variations=4, kwargs={"horizon": 12})).max_episode_steps == 12
    cartpole = EnvSpec(family="gymnasium", id="CartPole-v1", variations=2)
    assert make_family(cartpole).max_episode_steps == 500
    shorter = cartpole.model_copy(update={"kwargs": {"maxEpisodeSteps": 100}})
    assert make_family(shorter).max_episode_steps == 100


def test_a_concurrent_baseline_trains_whole_batches_up_to_gsls_steps_until_its_budget(tmp_path):
    spec = parse_spec(TINY_SPEC).spec
    store = open_store(str(tmp_path))
    budget = StepBudget(store, BASELINE, task_setup(spec, store, BASELINE), 512, granularity=1)
    assert (budget.room(0), budget.final) == (0, False)  # GSL has used no env steps yet
    write_baseline_allowance(store, 1300)
    assert budget.room(0) == 1024  # whole batches within GSL's steps so far
    write_baseline_allowance(store, 5000)
    assert budget.room(1024) == 3584  # caught up (276 left), so the allowance is read again
    write_baseline_budget(store, 4700)
    assert budget.room(1024) == 3584 and not budget.final  # not caught up: not read again
    assert (budget.room(4608), budget.final) == (92, True)  # the budget, to the step


def test_a_gsl_task_may_train_its_setups_budget_in_its_backends_granularity(tmp_path):
    spec = parse_spec(TINY_SPEC).spec
    store = open_store(str(tmp_path))
    budget = StepBudget(store, GENERALIST, task_setup(spec, store, GENERALIST), 512, 300)
    assert budget.final and budget.room(0) == spec.generalist.env_steps // 300 * 300
