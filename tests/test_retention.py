"""Retention: the final generalist's success on the variations specialists mastered."""

import numpy as np
import pytest
import torch

from gsl_k8s.core.losses import variation_demo_weights
from gsl_k8s.core.retention import (
    MASTERED_SUCCESS,
    best_specialist_success,
    fraction_retained,
    retention_summary,
)
from gsl_k8s.envs import evaluate, make_family
from gsl_k8s.layout import FINETUNE, Task
from gsl_k8s.orchestration.controller import JobPhase, Stage, Status
from gsl_k8s.orchestration.display import ProgressTable
from gsl_k8s.orchestration.report import retention_line
from gsl_k8s.records.demos import Episode, demo_batches, write_shards
from gsl_k8s.records.progress import ProgressWriter
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import EnvSpec, NetworkSpec, parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.builtin import BuiltinBackend
from gsl_k8s.trainer.demos import behaviour_cloning, collect_demos
from tests.conftest import TINY_SPEC, finetune_context, merge, write_plan_of
from tests.test_gail import shortest_path_expert


def test_a_variation_counts_its_best_specialist_over_rounds():
    rounds = [{"0": 0.25, "1": 1.0}, {"0": 0.9}, {"2": 0.0}]
    assert best_specialist_success(rounds) == {"0": 0.9, "1": 1.0, "2": 0.0}


def test_the_fraction_retained_is_capped_at_one_and_undefined_without_success():
    assert fraction_retained(0.8, 0.2) == pytest.approx(0.25)
    assert fraction_retained(0.5, 1.0) == 1.0
    assert fraction_retained(0.0, 0.5) is None


def test_retention_averages_over_the_mastered_variations_only():
    specialist = {"1": 1.0, "3": 0.8, "10": 0.5}  # 10 is not mastered: left out of the mean
    final = {"0": 1.0, "1": 0.06, "3": 1.0, "10": 0.0}  # 0 had no specialist: not listed
    r = retention_summary(specialist, final)
    assert r["mastered_success"] == MASTERED_SUCCESS
    assert list(r["per_variation"]) == ["1", "3", "10"]  # in variation order
    assert r["per_variation"]["1"] == {"specialist": 1.0, "final": 0.06, "retained": 0.06}
    assert r["per_variation"]["10"]["retained"] == 0.0
    assert r["mastered"] == [1, 3]
    assert r["specialist_success"] == pytest.approx(0.9)
    assert r["final_success"] == pytest.approx(0.53)
    # 3's gain (1.0 of 0.8) is capped: it does not hide 1's loss
    assert r["retained"] == pytest.approx((0.06 + 1.0) / 2)
    line = retention_line(r)
    assert line.startswith("retention 0.53 on the 2 variations specialists mastered (>= 0.80)")


def test_without_a_mastered_variation_retention_is_none():
    r = retention_summary({"2": 0.5}, {"2": 0.5}, mastered_success=0.9)
    assert r["mastered"] == [] and r["retained"] is None and r["final_success"] is None
    assert "no specialist reached 0.90" in retention_line(r)


def test_the_live_table_shows_the_finetune_s_retention_so_far(tmp_path):
    store = open_store(str(tmp_path))
    write_plan_of(store, [[0], [1]])
    for i, success in enumerate((1.0, 0.5)):  # specialist 1 mastered nothing
        evaluation = {"eval/per_variation": {str(i): success}}
        write_result(store, Task("specialist", i), TaskResult(100, 0, "budget", evaluation))
    finetune = ProgressWriter(store, FINETUNE.progress)
    metrics = {"eval/success_rate": 0.5, "eval/per_variation": {"0": 0.75, "1": 0.25}}
    finetune.write(0, metrics, flush=True)
    table = ProgressTable("tiny", store, parse_spec(TINY_SPEC).spec)
    rendered = table.render(Status(Stage.FINETUNE, "resuming"), {FINETUNE: JobPhase.RUNNING})
    caption = "finetune so far: retention 0.75 on the 1 variation specialists mastered"
    assert any(line.startswith(caption) for line in rendered.caption.splitlines())


def test_per_variation_demo_weights_fade_where_the_policy_succeeds_and_last_where_it_fails():
    success = {0: 1.0, 1: 0.25, 2: 0.95}  # 3 never evaluated: as if failing
    weights = variation_demo_weights(2.0, 0.1, success, np.array([0, 1, 2, 3, 1]))
    torch.testing.assert_close(weights, torch.tensor([0.2, 1.5, 0.2, 2.0, 1.5]))
    with pytest.raises(ValueError, match="decayed"):
        variation_demo_weights(2.0, 1.5, success, [0])


def finetune_backend(tmp_path, weighting: str) -> tuple[BuiltinBackend, list[dict]]:
    """A finetune of BC (coef 0.5, decay 0.01) with demos of variations 0 and 1, 20 steps
    each; and the list its progress records go to."""
    torch.set_num_threads(1)
    logged: list[dict] = []
    patch = {"finetune": {"method": "bc", "coef": 0.5, "decay": 0.01, "demoWeighting": weighting}}
    experiment = parse_spec(merge(TINY_SPEC, {"spec": patch}))
    store = open_store(str(tmp_path / weighting))
    backend = BuiltinBackend(
        finetune_context(experiment.spec, store, lambda step, metrics: logged.append(metrics))
    )
    agent = Agent(backend.observation_space, backend.action_space, experiment.spec.trainer.network)
    episodes = []
    for variation in (0, 1):
        obs = np.stack([backend.observation_space.sample() for _ in range(20)])
        episodes.append(Episode(obs, np.zeros(20, int), np.zeros(20), variation))
    backend.prepare(agent, 0, write_shards(store, "demos/0", episodes))
    return backend, logged


@pytest.mark.parametrize("weighting", ["global", "per-variation"])
def test_per_variation_weighting_keeps_the_demos_of_failing_variations(tmp_path, weighting):
    """After one update BC's weight has decayed to 0.5 * 0.01 = 0.005; per variation, the
    demos of variation 1, which the last evaluation found failing, still weigh 0.5."""
    backend, logged = finetune_backend(tmp_path, weighting)
    backend.evaluated({0: 1.0, 1: 0.0})
    backend.train_until(256)
    backend.train_until(512)
    assert logged[0]["losses/demo_weight"] == pytest.approx(0.5)  # decay^0 = 1: all of it
    second = logged[1]["losses/demo_weight"]
    if weighting == "global":
        assert second == pytest.approx(0.005)
    else:  # about half the demo steps are variation 1's
        assert 0.15 < second < 0.35, second
        state = backend.state_dict()
        assert state["demo_success"] == {0: 1.0, 1: 0.0}
        resumed, _ = finetune_backend(tmp_path / "again", weighting)
        resumed.load_state_dict(state, resumed=True)
        assert resumed.demos.success == {0: 1.0, 1: 0.0} and resumed.demos.iteration == 2
        resumed.close()
    backend.close()


def test_behaviour_cloning_learns_the_demonstrated_goals(tmp_path):
    """A fresh policy cloned on shortest-path demos of a 4-goal maze: the loss falls and
    the policy reaches the goals far more often than before."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    family = make_family(EnvSpec(variations=4, kwargs={"goals": 4}))
    demos = collect_demos(shortest_path_expert(family), family, range(4), 32, seed=1)
    store = open_store(str(tmp_path))
    batches = demo_batches(store, write_shards(store, "demos/0", demos.episodes), 64, seed=0)
    envs = family.make_vec([0], 1, seed=0)
    agent = Agent(envs.single_observation_space, envs.single_action_space, NetworkSpec())

    def success() -> float:
        act = lambda obs: agent.act(torch.as_tensor(obs)).numpy()  # noqa: E731
        results = evaluate(act, family, range(4), episodes=32, seed=2)
        return float(np.mean([r.success_rate for r in results.values()]))

    before = success()
    first, last = behaviour_cloning(agent, batches, 1000, 1e-3, 0.5, torch.device("cpu"))
    after = success()
    assert last < first / 2, (first, last)
    assert after >= before + 0.5, (before, after)
