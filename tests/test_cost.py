"""Cost per phase: CPU quantities, a task's cost and the phases' sums, from tasks' results."""

import pytest

from gsl_k8s.core.cost import (
    CPUS_ENV,
    GPUS_ENV,
    Cost,
    held_resources,
    parse_cpu_quantity,
    total_cost,
)
from gsl_k8s.layout import BASELINE, FINETUNE, GENERALIST, Task
from gsl_k8s.orchestration.cost import PhaseCostReader, cost_summary
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import SpecError, parse_spec
from gsl_k8s.store import open_store
from tests.conftest import TINY_SPEC, merge, write_plan_of


@pytest.mark.parametrize(
    "quantity, cpus",
    [("2", 2.0), ("1.5", 1.5), ("500m", 0.5), ("250m", 0.25), (".5", 0.5), (4, 4.0), ("3.", 3.0)],
)
def test_cpu_quantities_parse_to_cores(quantity, cpus):
    assert parse_cpu_quantity(quantity) == cpus


@pytest.mark.parametrize("quantity", ["", "m", "1Gi", "-1", "two", "1.5.2", "500 m"])
def test_other_cpu_quantities_are_refused_with_the_accepted_forms(quantity):
    with pytest.raises(ValueError, match="cores .* or millicores"):
        parse_cpu_quantity(quantity)


def test_a_spec_with_a_bad_cpu_request_is_a_one_line_error():
    bad = merge(TINY_SPEC, {"spec": {"kubernetes": {"specialist": {"resources": {"cpu": "2c"}}}}})
    with pytest.raises(SpecError, match="cpu.*not a CPU quantity"):
        parse_spec(bad)
    good = merge(TINY_SPEC, {"spec": {"kubernetes": {"specialist": {"resources": {"cpu": 2}}}}})
    assert parse_spec(good).spec.kubernetes.specialist.resources.cpu == "2"


def test_costs_are_resources_times_wall_time_and_add_up():
    a = Cost.of_task(wall_seconds=1800, cpus=4, gpus=1)
    b = Cost.of_task(wall_seconds=3600, cpus=0.5, gpus=0)
    assert (a.cpu_hours, a.gpu_hours) == (2.0, 0.5)
    both = a + b
    assert (both.wall_seconds, both.cpu_hours, both.gpu_hours) == (5400, 2.5, 0.5)
    assert total_cost([a, b]) == both and total_cost([]) == Cost()
    assert both.to_json() == {"wall_seconds": 5400, "cpu_hours": 2.5, "gpu_hours": 0.5}


def test_a_trainer_holds_its_pods_requests_else_its_threads_and_device():
    pod = {CPUS_ENV: "1500m", GPUS_ENV: "2"}
    assert held_resources(pod, threads=1, on_cuda=False) == (1.5, 2.0)
    assert held_resources({}, threads=3, on_cuda=False) == (3.0, 0.0)
    assert held_resources({}, threads=1, on_cuda=True) == (1.0, 1.0)


def test_a_result_older_than_costs_reads_as_free():
    old = {"env_steps": 10, "demo_env_steps": 0, "reason": "budget", "final_eval": {}}
    result = TaskResult.from_json(old)
    assert (result.wall_seconds, result.cpus, result.gpus) == (0, 0, 0)


def finished(store, task: Task, wall_seconds: float, cpus: float = 1, gpus: float = 0) -> None:
    result = TaskResult(10, 0, "budget", {}, wall_seconds=wall_seconds, cpus=cpus, gpus=gpus)
    write_result(store, task, result)


def test_phases_sum_every_rounds_finished_tasks(tmp_path):
    store = open_store(str(tmp_path))
    reader = PhaseCostReader(store)
    finished(store, GENERALIST, 3600, cpus=2, gpus=1)
    finished(store, BASELINE, 7200, cpus=2, gpus=1)
    assert reader.read()["gsl"] == Cost(3600, 7200, 3600)
    write_plan_of(store, [[0], [1]])
    write_plan_of(store, [[1]], round_=2)
    finished(store, Task("specialist", 0), 1800, cpus=0.5)
    # specialist-1 failed: no result, no cost
    finished(store, FINETUNE, 900, cpus=4)
    finished(store, Task("specialist", 0, round=2), 1800, cpus=0.5)
    finished(store, Task("finetune", round=2), 900, cpus=4)

    costs = reader.read()
    assert costs["generalist"] == Cost(3600, 7200, 3600)
    assert costs["specialists"] == Cost(3600, 1800, 0)
    assert costs["finetune"] == Cost(1800, 7200, 0)
    assert costs["gsl"] == Cost(9000, 16200, 3600)
    assert costs["baseline"] == Cost(7200, 14400, 7200)
    summary = cost_summary(costs)
    assert summary["gsl"] == {"wall_seconds": 9000, "cpu_hours": 4.5, "gpu_hours": 1.0}
    assert summary["gsl_over_baseline"] == {"cpu_hours": 16200 / 14400, "gpu_hours": 0.5}


def test_without_a_baseline_there_is_no_ratio(tmp_path):
    store = open_store(str(tmp_path))
    finished(store, GENERALIST, 60)
    summary = cost_summary(PhaseCostReader(store).read())
    assert summary["baseline"] == {"wall_seconds": 0, "cpu_hours": 0, "gpu_hours": 0}
    assert summary["gsl_over_baseline"] == {"cpu_hours": None, "gpu_hours": None}
