"""The record formats of `gsl_k8s.records`: a task's result and progress segments."""

import json

import pytest

from gsl_k8s import layout
from gsl_k8s.layout import GENERALIST
from gsl_k8s.records.baseline import (
    read_baseline_allowance,
    read_baseline_budget,
    write_baseline_allowance,
    write_baseline_budget,
)
from gsl_k8s.records.demos import DemoCount, read_generalist_demos, write_generalist_demos
from gsl_k8s.records.features import VariationFeatures, read_features, write_features
from gsl_k8s.records.plan import (
    PinnedPlateau,
    RoundPlan,
    SpecialistsOutcome,
    read_pinned,
    read_plan,
    read_plan_if_written,
    read_specialists_outcome,
    write_pinned,
    write_plan,
    write_specialists_outcome,
)
from gsl_k8s.records.progress import ProgressReader, ProgressWriter
from gsl_k8s.records.result import TaskResult, read_result, write_result
from gsl_k8s.records.run import RunRecord, read_run, write_run
from gsl_k8s.store import StoreError, open_store, write_json


def test_a_result_round_trips_through_result_json(tmp_path):
    store = open_store(str(tmp_path))
    result = TaskResult(
        env_steps=4096,
        demo_env_steps=320,
        reason="plateau",
        final_eval={"eval/success_rate": 0.5, "eval/per_variation": {"0": 0.5}},
        demos={"demos/0": DemoCount(asked=8, attempted=11, kept=8, env_steps=320, sampled=3)},
    )
    write_result(store, GENERALIST, result)
    stored = json.loads(store.read_bytes(GENERALIST.result))
    count = {"asked": 8, "attempted": 11, "kept": 8, "env_steps": 320, "sampled": 3}
    assert stored["demos"]["demos/0"] == count
    assert read_result(store, GENERALIST) == result
    assert read_result(store, GENERALIST).env_steps_used == 4096 + 320


def test_a_result_without_demo_counts_reads_with_none():
    old = {"env_steps": 10, "demo_env_steps": 0, "reason": "budget", "final_eval": {}}
    assert TaskResult.from_json(old).demos == {}


def test_progress_segments_continue_after_the_existing_ones(tmp_path):
    store = open_store(str(tmp_path))
    first = ProgressWriter(store, GENERALIST.progress)
    first.write(0, {"eval/success_rate": 0.0}, flush=True)
    first.write(256, {"charts/sps": 100.0})  # buffered
    reader = ProgressReader(store, GENERALIST.progress)
    assert [r["step"] for r in reader.records()] == [0]
    first.flush()
    second = ProgressWriter(store, GENERALIST.progress)  # a resumed task
    second.write(512, {"eval/success_rate": 1.0}, flush=True)
    assert [r["step"] for r in reader.records()] == [0, 256, 512]
    assert store.list(GENERALIST.progress)[-1].endswith("00000002.jsonl")


# The files as the controller and the trainers wrote them before these records were typed:
# existing runs and the operator read them, so each must read and write back byte for byte.
STORED = {
    layout.PLAN: {
        "plateau_step": 2048,
        "pinned_step": 3072,
        "success_rate_at_pin": 0.5,
        "return_at_pin": 0.25,
        "scores": {"0": 1.0, "1": 0.0, "10": 0.5},
        "weak_variations": [1, 10],
        "subsets": [[1], [10]],
    },
    layout.PLATEAU_PINNED: {"step": 3072, "plateau_step": 2048},
    layout.specialists_done_key(2): {"succeeded": [0, 2], "failed": [1]},
    layout.BASELINE_BUDGET: {"env_steps": 9000},
    layout.BASELINE_ALLOWANCE: {"env_steps": 4000},
    layout.GENERALIST_FEATURES: {"source": "family", "features": {"0": [0.0, 1.0], "1": [1.0]}},
    layout.GENERALIST_DEMOS_DONE: {
        "asked": 4,
        "attempted": 5,
        "kept": 4,
        "env_steps": 80,
        "sampled": 1,
    },
    layout.RUN: {"created": 1700000000.25},
}


def test_every_record_reads_the_stored_format_and_writes_it_back_byte_for_byte(tmp_path):
    before, after = open_store(str(tmp_path / "before")), open_store(str(tmp_path / "after"))
    for key, data in STORED.items():
        write_json(before, key, data)
    write_plan(after, 1, read_plan(before))
    write_pinned(after, read_pinned(before))
    write_specialists_outcome(after, 2, read_specialists_outcome(before, 2))
    write_baseline_budget(after, read_baseline_budget(before))
    write_baseline_allowance(after, read_baseline_allowance(before))
    write_features(after, read_features(before))
    write_generalist_demos(after, read_generalist_demos(before))
    write_run(after, read_run(before))
    for key in STORED:
        assert after.read_bytes(key) == before.read_bytes(key), key


def test_records_read_as_typed_values(tmp_path):
    store = open_store(str(tmp_path))
    for key, data in STORED.items():
        write_json(store, key, data)
    plan = read_plan(store)
    assert plan.scores == {0: 1.0, 1: 0.0, 10: 0.5} and plan.subsets == [[1], [10]]
    assert read_pinned(store) == PinnedPlateau(step=3072, plateau_step=2048)
    assert read_specialists_outcome(store, 2) == SpecialistsOutcome([0, 2], [1])
    assert (read_baseline_budget(store), read_baseline_allowance(store)) == (9000, 4000)
    assert read_features(store) == VariationFeatures("family", {0: [0.0, 1.0], 1: [1.0]})
    assert read_generalist_demos(store) == DemoCount(4, 5, 4, 80, 1)
    assert read_run(store) == RunRecord(created=1700000000.25)


def test_records_not_yet_written_read_as_absent(tmp_path):
    store = open_store(str(tmp_path))
    assert read_plan_if_written(store) is None and read_pinned(store) is None
    assert read_specialists_outcome(store, 1) is None
    assert read_baseline_budget(store) is None
    assert read_baseline_allowance(store) == 0  # nothing allowed yet
    assert read_generalist_demos(store) is None


def test_a_round_plan_round_trips(tmp_path):
    store = open_store(str(tmp_path))
    plan = RoundPlan(None, 512, 0.25, -1.5, {3: 0.0, 7: 0.5}, [3, 7], [[3, 7]])
    write_plan(store, 2, plan)
    assert read_plan(store, 2) == plan
    assert read_plan_if_written(store, 1) is None


@pytest.mark.parametrize(
    ("key", "read", "data", "problem"),
    [
        (layout.PLAN, read_plan, {"subsets": [[0]]}, "no field 'plateau_step'"),
        (layout.PLATEAU_PINNED, read_pinned, {"plateau_step": 3}, "no field 'step'"),
        (layout.BASELINE_BUDGET, read_baseline_budget, {"steps": 3}, "no field 'env_steps'"),
        (layout.RUN, read_run, [], "list indices must be integers"),
        (layout.GENERALIST_DEMOS_DONE, read_generalist_demos, {"kept": 1, "odd": 2}, "'odd'"),
        (GENERALIST.result, lambda s: read_result(s, GENERALIST), {"reason": "x"}, "'env_steps'"),
    ],
)
def test_a_malformed_record_is_a_store_error_naming_it(tmp_path, key, read, data, problem):
    store = open_store(str(tmp_path))
    write_json(store, key, data)
    with pytest.raises(StoreError, match="malformed record") as raised:
        read(store)
    assert key in str(raised.value) and problem in str(raised.value)


def test_a_record_that_is_not_json_is_a_store_error(tmp_path):
    store = open_store(str(tmp_path))
    store.write_bytes(layout.PLATEAU_PINNED, b"{truncated")
    with pytest.raises(StoreError, match=r"pinned\.json: malformed record"):
        read_pinned(store)
