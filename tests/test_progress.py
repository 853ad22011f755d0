"""Progress and ETA: the pure rate arithmetic, and each stage's steps read from a store."""

import json
import re
import time

import pytest

from gsl_k8s import layout
from gsl_k8s.layout import BASELINE, FINETUNE, GENERALIST, Task
from gsl_k8s.orchestration.controller import JobPhase, Stage, Status
from gsl_k8s.orchestration.display import ProgressTable
from gsl_k8s.orchestration.progress import (
    ExperimentProgress,
    StageProgress,
    current_stage,
    eta_seconds,
    format_duration,
    summed,
)
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store, write_json
from tests.conftest import TINY_SPEC, merge, write_plan_of


def test_the_eta_is_the_rest_at_the_recent_rate():
    steady = [(1000.0 + 10 * i, 100 * i) for i in range(5)]  # 10 steps/s, 400 done at 1040
    assert eta_seconds(steady, planned=1000, now=1040.0) == pytest.approx(60.0)
    assert eta_seconds(steady, planned=1000, now=1050.0) == pytest.approx(50.0)  # 10 s later
    # slow at first, 100 steps/s over the last window: only the recent rate counts
    sped_up = [(0.0, 0), (900.0, 100), (1000.0, 200), (1010.0, 1200)]
    assert eta_seconds(sped_up, planned=2200, now=1010.0, window=20) == pytest.approx(10.0)
    # one sample in the window: the last two
    assert eta_seconds([(0.0, 0), (100.0, 500)], planned=1000, now=100.0, window=20) == 100.0


@pytest.mark.parametrize(
    "samples, now, expected",
    [
        ([], 0.0, None),
        ([(10.0, 500)], 10.0, None),  # one record: no rate yet
        ([(10.0, 500), (20.0, 500)], 20.0, None),  # no progress
        ([(10.0, 500), (20.0, 500), (30.0, 400)], 30.0, None),  # a resume went back
        ([(10.0, 100), (20.0, 200)], 20.0 + 301, None),  # nothing recorded for 5 minutes
        ([(10.0, 100), (20.0, 1000)], 9999.0, 0.0),  # done
    ],
    ids=["none", "one", "flat", "backwards", "stale", "done"],
)
def test_the_eta_is_unknown_without_a_recent_rate(samples, now, expected):
    assert eta_seconds(samples, planned=1000, now=now) == expected


def test_tasks_side_by_side_add_up():
    assert summed([[(1.0, 10), (3.0, 30)], [(2.0, 5), (4.0, 50)]]) == [
        (1.0, 10),
        (2.0, 15),
        (3.0, 35),
        (4.0, 80),
    ]
    assert summed([]) == []


def test_summaries():
    assert [format_duration(s) for s in (45, 720, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "45s",
        "12m",
        "3h05m",
        "2d04h",
    ]
    running = StageProgress(Stage.SPECIALISTS, 1, 370, 1000, 60.0, 720.0)
    assert running.summary() == "37% ETA 12m"
    assert StageProgress(Stage.FINETUNE, 1, 999, 1000, 60.0, None).summary() == "99%"
    assert StageProgress(Stage.FINETUNE, 1, 1000, 1000, 60.0, 0.0).summary() == "100%"


def write_records(store, task: Task, samples: list[tuple[float, int]], segment: int = 0):
    lines = [json.dumps({"step": step, "time": when}) for when, step in samples]
    store.write_bytes(f"{task.progress}/{segment:08d}.jsonl", ("\n".join(lines) + "\n").encode())


def test_each_stages_progress_from_the_store(tmp_path):
    spec = parse_spec(TINY_SPEC).spec  # caps: generalist 6000, 3 specialists of 1024, finetune 1024
    store = open_store(str(tmp_path))
    progress = ExperimentProgress(spec, store)
    write_records(store, GENERALIST, [(100.0, 0), (110.0, 1000), (120.0, 2000)])

    running = {GENERALIST: JobPhase.RUNNING}
    generalist, specialists, finetune, baseline = progress.read(running, now=120.0)
    assert (generalist.done, generalist.planned) == (2000, 6000)
    assert generalist.elapsed_seconds == 20.0 and generalist.eta_seconds == pytest.approx(40.0)
    assert generalist.summary() == "33% ETA 40s"
    assert (specialists.done, specialists.planned, specialists.eta_seconds) == (0, 3072, None)
    assert (finetune.planned, baseline.planned) == (1024, 6000 + 3072 + 1024)
    assert current_stage(progress.read(running, now=120.0), "Generalist", 1) == generalist

    # The generalist plateaus at 3072: the plan shrinks to what it trained.
    write_records(store, GENERALIST, [(130.0, 3072)], segment=1)
    write_result(store, GENERALIST, TaskResult(3072, 0, "plateau", {}))
    write_plan_of(store, [[0], [1]])  # two specialists after all
    write_records(store, Task("specialist", 0), [(140.0, 0), (150.0, 512)])
    write_records(store, Task("specialist", 1), [(141.0, 0), (151.0, 256)])
    phases = {
        GENERALIST: JobPhase.SUCCEEDED,
        Task("specialist", 0): JobPhase.RUNNING,
        Task("specialist", 1): JobPhase.FAILED,
    }
    stages = progress.read(phases, now=160.0)
    generalist, specialists, finetune, baseline = stages
    assert (generalist.done, generalist.planned, generalist.eta_seconds) == (3072, 3072, 0.0)
    assert generalist.elapsed_seconds == 30.0  # first record to last: it finished
    assert generalist.summary() == "100%"
    # specialist-1 failed for good at 256: it plans no more
    assert (specialists.done, specialists.planned) == (512 + 256, 1024 + 256)
    assert specialists.elapsed_seconds == 20.0 and specialists.eta_seconds is not None
    assert current_stage(stages, "Specialists", 1) == specialists
    assert current_stage(stages, "Reporting", 1) is None

    write_json(store, layout.BASELINE_BUDGET, {"env_steps": 5000})
    write_result(store, FINETUNE, TaskResult(1024, 0, "budget", {}))
    assert progress.read({BASELINE: JobPhase.RUNNING}, now=200.0)[-1].planned == 5000
    disabled = merge(TINY_SPEC, {"spec": {"baseline": {"enabled": False}}})
    assert len(ExperimentProgress(parse_spec(disabled).spec, store).read({})) == 3


def test_specialists_budgets_grow_with_their_subsets(tmp_path):
    """specialists.envStepsPerVariation: before the plan the specialists share the budget of
    the variations to select; after it, each plans its own subset's."""
    patch = {"select": {"strategy": "lowest", "count": 4}, "envStepsPerVariation": 300}
    spec = parse_spec(merge(TINY_SPEC, {"spec": {"specialists": patch}})).spec
    store = open_store(str(tmp_path))
    progress = ExperimentProgress(spec, store)
    assert progress.read({})[1].planned == 4 * 300  # three specialists, 400 each
    write_plan_of(store, [[0], [1, 2, 3, 4]])
    assert progress.read({})[1].planned == 5 * 300


def test_gsl_runs_table_is_captioned_with_each_stages_progress(tmp_path):
    store = open_store(str(tmp_path))
    now = time.time()
    write_records(store, GENERALIST, [(now - 20, 0), (now - 10, 1000), (now, 2000)])
    table = ProgressTable("tiny", store, parse_spec(TINY_SPEC).spec)
    rendered = table.render(Status(Stage.GENERALIST, "training"), {GENERALIST: JobPhase.RUNNING})
    generalist, specialists, finetune, baseline = rendered.caption.split(" · ")
    # 4000 steps to go at 100 steps/s from the last record, a moment ago
    eta, elapsed = re.fullmatch(
        r"Generalist 33% ETA (\d+)s \((\d+)s elapsed\)", generalist
    ).groups()
    assert 30 < int(eta) <= 40 and 20 <= int(elapsed) < 30
    assert (specialists, finetune) == ("Specialists 0%", "Finetune 0%")
    assert baseline == "Baseline 0%"
