"""How an experiment ends: a failure stops whatever still runs (through `Backend.stop`, for
the local backend a real SIGTERM and checkpoint), and the report is a task of its own."""

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gsl_k8s import layout
from gsl_k8s.backends.local import LocalBackend
from gsl_k8s.layout import BASELINE, FINETUNE, GENERALIST, REPORT, Task
from gsl_k8s.orchestration.controller import Controller, JobPhase, SpecialistCounts, Stage
from gsl_k8s.records.demos import DemoCount
from gsl_k8s.records.progress import ProgressReader, ProgressWriter
from gsl_k8s.records.result import TaskResult, read_result, write_result
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import (
    get_artifact,
    list_artifacts,
    open_store,
    put_artifact,
    read_json,
    write_json,
)
from tests.conftest import TINY_SPEC, merge, write_plan_of


class ScriptedBackend:
    """Reports the phases the test sets; records what the controller starts and stops."""

    def __init__(self):
        self.current: dict[Task, JobPhase] = {}
        self.started: list[Task] = []
        self.stops = 0

    def phases(self):
        return dict(self.current)

    def start(self, task):
        self.started.append(task)
        self.current[task] = JobPhase.RUNNING

    def stop(self):
        self.stops += 1
        self.current = {t: p for t, p in self.current.items() if p is not JobPhase.RUNNING}

    def log_hint(self, task):
        return f"the log of {task.name}"


def controller_after_the_plan(tmp_path, patch=None):
    """A controller whose plan gives three specialists two variations each (the baseline,
    if enabled, starts after the finetune)."""
    store = open_store(str(tmp_path))
    backend = ScriptedBackend()
    spec = merge(merge(TINY_SPEC, {"spec": {"baseline": {"mode": "after"}}}), patch or {})
    controller = Controller(parse_spec(spec), store, backend)
    write_plan_of(store, [[0, 1], [2, 3], [4, 5]])
    return controller, store, backend


def test_a_failed_experiment_stops_what_still_runs(tmp_path):
    controller, _, backend = controller_after_the_plan(tmp_path)
    assert controller.reconcile().stage is Stage.SPECIALISTS
    assert backend.started == [Task("specialist", 0), Task("specialist", 1)]  # parallelism 2
    assert backend.stops == 0
    backend.current[Task("specialist", 1)] = JobPhase.FAILED  # all three must succeed

    status = controller.reconcile()
    assert status.stage is Stage.FAILED and "specialist-1 failed" in status.message
    assert backend.stops == 1
    assert backend.current == {Task("specialist", 1): JobPhase.FAILED}  # specialist-0 stopped
    assert controller.reconcile().stage is Stage.FAILED  # level-based: stopping again is a no-op
    assert len(backend.started) == 2


def finetuned(tmp_path):
    """A controller whose experiment (no baseline) has finished its finetune."""
    controller, store, backend = controller_after_the_plan(
        tmp_path, {"spec": {"baseline": {"enabled": False}}}
    )
    write_json(store, layout.SPECIALISTS_DONE, {"succeeded": [0, 1, 2], "failed": []})
    write_json(store, FINETUNE.result, {"env_steps": 1024, "demo_env_steps": 0})
    return controller, store, backend


def test_the_report_is_the_last_task(tmp_path):
    controller, store, backend = finetuned(tmp_path)
    status = controller.reconcile()
    assert status.stage is Stage.REPORTING and backend.started == [REPORT]
    assert not store.exists(layout.REPORT_JSON)  # the controller writes no report itself
    write_json(store, layout.REPORT_JSON, {})  # as `gsl report` does, last, before it exits
    assert controller.reconcile().stage is Stage.REPORTING
    backend.current[REPORT] = JobPhase.SUCCEEDED
    succeeded = controller.reconcile()
    assert succeeded.stage is Stage.SUCCEEDED  # nothing of the experiment runs any more
    assert succeeded.specialists == SpecialistCounts(total=3, succeeded=3, failed=0)
    assert backend.started == [REPORT]


def test_a_failed_report_fails_the_experiment(tmp_path):
    controller, _, backend = finetuned(tmp_path)
    controller.reconcile()
    backend.current[REPORT] = JobPhase.FAILED
    failed = controller.reconcile()
    assert (
        failed.stage is Stage.FAILED and failed.message == "report failed (see the log of report)"
    )


def test_a_concurrent_baseline_starts_with_the_generalist_and_is_allowed_gsls_steps(tmp_path):
    store = open_store(str(tmp_path))
    backend = ScriptedBackend()
    controller = Controller(parse_spec(TINY_SPEC), store, backend)
    assert controller.reconcile().stage is Stage.GENERALIST
    assert backend.started == [BASELINE, GENERALIST]
    assert not store.exists(layout.BASELINE_ALLOWANCE)  # GSL has used no env steps yet
    ProgressWriter(store, GENERALIST.progress).write(2048, {"charts/sps": 1e3}, flush=True)
    controller.reconcile()
    assert read_json(store, layout.BASELINE_ALLOWANCE) == {"env_steps": 2048}

    # the generalist finished at 3072; specialist-0 has recorded 512 steps, the others none
    write_result(store, GENERALIST, TaskResult(3072, 0, "stopped", {}))
    write_plan_of(store, [[0, 1], [2, 3], [4, 5]])
    ProgressWriter(store, Task("specialist", 0).progress).write(512, {}, flush=True)
    assert controller.reconcile().stage is Stage.SPECIALISTS
    assert read_json(store, layout.BASELINE_ALLOWANCE) == {"env_steps": 3072 + 512}

    for i in range(3):
        write_result(store, Task("specialist", i), TaskResult(1024, 100, "budget", {}))
    write_json(store, layout.SPECIALISTS_DONE, {"succeeded": [0, 1, 2], "failed": []})
    write_result(store, FINETUNE, TaskResult(1024, 50, "budget", {}))
    status = controller.reconcile()
    assert status.stage is Stage.BASELINE  # it still trains, towards GSL's total
    total = 3072 + 3 * (1024 + 100) + 1024 + 50
    assert read_json(store, layout.BASELINE_BUDGET) == {"env_steps": total}
    assert backend.started.count(BASELINE) == 1


def test_a_baseline_after_the_finetune_starts_only_then(tmp_path):
    controller, store, backend = controller_after_the_plan(tmp_path)
    write_result(store, GENERALIST, TaskResult(3072, 0, "stopped", {}))
    for i in range(3):
        write_result(store, Task("specialist", i), TaskResult(1024, 0, "budget", {}))
    assert controller.reconcile().stage is Stage.FINETUNE
    assert BASELINE not in backend.started
    write_result(store, FINETUNE, TaskResult(1024, 0, "budget", {}))
    assert controller.reconcile().stage is Stage.BASELINE
    assert backend.started[-1] == BASELINE
    assert read_json(store, layout.BASELINE_BUDGET) == {"env_steps": 3072 + 3 * 1024 + 1024}
    assert not store.exists(layout.BASELINE_ALLOWANCE)


def task_phase(port: int) -> str | None:
    """The phase a trainer's /metrics on 127.0.0.1:`port` reports (gsl_task_phase)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gsl_task_phase" and sample.value == 1:
                return sample.labels["gsl_task_phase"]
    return None


def test_a_concurrent_baseline_waits_at_gsls_steps_and_stops_on_its_total(tmp_path):
    """The trainer side: it never trains past the allowance, then stops exactly on the
    budget once the controller writes it."""
    experiment = parse_spec(TINY_SPEC)  # batches of 8 x 32 = 256 env steps
    store = open_store(str(tmp_path / "run"))
    store.write_bytes(layout.SPEC, experiment.to_json().encode())
    write_json(store, layout.BASELINE_ALLOWANCE, {"env_steps": 700})
    command = [sys.executable, "-m", "gsl_k8s", "train", "--run", store.uri, "--role", "baseline"]
    port_file = tmp_path / "metrics-port"
    command += ["--metrics-address", "127.0.0.1", "--metrics-port-file", str(port_file)]
    trainer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        # whole batches only, while the allowance may still grow: it waits at 512
        while not port_file.exists() or task_phase(int(port_file.read_text())) != "waiting":
            assert time.time() < deadline and trainer.poll() is None, "the baseline never waited"
            time.sleep(0.2)
        progress = ProgressReader(store, BASELINE.progress)
        assert max(r["step"] for r in progress.records()) == 512

        write_json(store, layout.BASELINE_BUDGET, {"env_steps": 1000})
        assert trainer.wait(timeout=120) == 0, trainer.stderr.read()
    finally:
        trainer.kill()  # a waiting baseline would wait on
    result = read_result(store, BASELINE)
    assert result.env_steps == 1000  # the last rollout is shortened to end on the budget
    assert result.final_eval["eval/success_rate"] >= 0.0


def finetuned_round_one(tmp_path, per_variation: dict[str, float], specialists=None):
    """A two-round experiment (no baseline; specialists for the 3 weakest variations, or as
    `specialists` patches) whose round 1 finetune ended at 1024 steps with `per_variation`
    success."""
    specialists = merge({"select": {"strategy": "lowest", "count": 3}}, specialists or {})
    patch = {"rounds": 2, "baseline": {"enabled": False}, "specialists": specialists}
    controller, store, backend = controller_after_the_plan(tmp_path, {"spec": patch})
    write_result(store, GENERALIST, TaskResult(3072, 0, "stopped", {}))
    for i in range(3):
        write_result(store, Task("specialist", i), TaskResult(1024, 0, "budget", {}))
    write_json(store, layout.SPECIALISTS_DONE, {"succeeded": [0, 1, 2], "failed": []})
    put_artifact(store, FINETUNE.checkpoint(1024), b"round 1's finetuned weights")
    final = {
        "eval/success_rate": sum(per_variation.values()) / len(per_variation),
        "eval/return": 0.0,
        "eval/per_variation": per_variation,
    }
    write_result(store, FINETUNE, TaskResult(1024, 0, "budget", final))
    return controller, store, backend


def test_a_second_round_trains_specialists_on_what_the_finetune_left_weak(tmp_path):
    success = {"0": 1.0, "1": 0.0, "2": 1.0, "3": 0.25, "4": 1.0, "5": 0.5}
    controller, store, backend = finetuned_round_one(tmp_path, success)
    status = controller.reconcile()
    assert (status.stage, status.round) == (Stage.SPECIALISTS, 2)
    plan = read_json(store, layout.plan_key(2))
    assert plan["pinned_step"] == 1024 and plan["weak_variations"] == [1, 3, 5]
    assert sorted(len(subset) for subset in plan["subsets"]) == [1, 1, 1]
    # round 2 starts from round 1's finetuned weights
    assert get_artifact(store, layout.start_checkpoint(2)) == b"round 1's finetuned weights"
    second = [Task("specialist", i, round=2) for i in range(3)]
    assert backend.started == second[:2]  # parallelism 2
    assert [t.name for t in second] == ["r2-specialist-0", "r2-specialist-1", "r2-specialist-2"]

    for task in second:
        write_result(store, task, TaskResult(512, 64, "budget", {}))
    status = controller.reconcile()
    assert (status.stage, status.round) == (Stage.FINETUNE, 2)
    assert backend.started[-1] == Task("finetune", round=2)
    assert status.specialists == SpecialistCounts(total=3, succeeded=3, failed=0)


def test_partition_features_splits_by_the_generalists_feature_vectors(tmp_path):
    success = {str(v): 0.0 for v in range(6)}
    patch = {"select": {"count": 6}, "partition": "features"}
    controller, store, _ = finetuned_round_one(tmp_path, success, patch)
    # three pairs far apart, none of them neighbouring ids
    vectors = {0: [0, 0], 5: [0.1, 0], 1: [9, 9], 3: [9, 9.1], 2: [0, 9], 4: [0.1, 9]}
    features = {str(v): vector for v, vector in vectors.items()}
    write_json(store, layout.GENERALIST_FEATURES, {"source": "family", "features": features})
    controller.reconcile()
    assert read_json(store, layout.plan_key(2))["subsets"] == [[0, 5], [1, 3], [2, 4]]


def test_rounds_end_early_once_the_finetune_succeeds_everywhere(tmp_path):
    controller, store, backend = finetuned_round_one(tmp_path, {str(v): 1.0 for v in range(6)})
    status = controller.reconcile()
    assert status.stage is Stage.REPORTING and backend.started == [REPORT]
    assert not store.exists(layout.plan_key(2))


def test_the_local_backend_stops_a_trainer_with_sigterm_after_a_checkpoint(tmp_path):
    experiment = parse_spec(merge(TINY_SPEC, {"spec": {"generalist": {"envSteps": 10**7}}}))
    store = open_store(str(tmp_path / "run"))
    store.write_bytes(layout.SPEC, experiment.to_json().encode())
    backend = LocalBackend(store, tmp_path)
    backend.start(GENERALIST)
    deadline = time.time() + 120
    while not list_artifacts(store, GENERALIST.checkpoints, ".pt"):
        assert time.time() < deadline and backend.phases()[GENERALIST] is JobPhase.RUNNING
        time.sleep(0.2)
    first = list_artifacts(store, GENERALIST.checkpoints, ".pt")
    time.sleep(1)  # it trains on

    backend.stop()
    assert backend.phases() == {GENERALIST: JobPhase.FAILED}  # exit code 143, no result
    log = (tmp_path / GENERALIST.log).read_text()
    assert "SIGTERM at env step" in log and "checkpoint saved" in log
    last = list_artifacts(store, GENERALIST.checkpoints, ".pt")[-1]
    assert layout.checkpoint_step(last) > layout.checkpoint_step(first[-1])
    backend.stop()  # idempotent


def test_a_failed_local_task_points_at_its_log_file(tmp_path):
    """The report task of a store without a spec fails; the hint names its log, which
    holds the error."""
    store = open_store(str(tmp_path / "run"))
    backend = LocalBackend(store, tmp_path / "work")
    backend.start(REPORT)
    deadline = time.time() + 60
    while backend.phases()[REPORT] is JobPhase.RUNNING:
        assert time.time() < deadline
        time.sleep(0.1)
    assert backend.phases()[REPORT] is JobPhase.FAILED
    log = Path(backend.log_hint(REPORT))
    assert log == tmp_path / "work" / "report" / "log.txt"
    assert "gsl: error:" in log.read_text()


def test_a_trainer_stopped_while_it_starts_exits_at_once_with_143(tmp_path):
    """SIGTERM before the task loop's handler (in a container, PID 1 would ignore it)."""
    experiment = parse_spec(TINY_SPEC)
    store = open_store(str(tmp_path / "run"))
    store.write_bytes(layout.SPEC, experiment.to_json().encode())
    command = [sys.executable, "-m", "gsl_k8s", "train", "--run", store.uri, "--role", "generalist"]
    trainer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert trainer.stderr.readline().startswith("generalist: starting")  # torch loads next
    trainer.send_signal(signal.SIGTERM)
    assert trainer.wait(timeout=30) == 143, trainer.stderr.read()
    assert not list_artifacts(store, GENERALIST.checkpoints, ".pt")


def specialists_done(tmp_path, kept: list[int]):
    """A controller whose three specialists succeeded, each keeping `kept[i]` of 4 demos."""
    controller, store, backend = controller_after_the_plan(tmp_path)
    for i, n in enumerate(kept):
        count = DemoCount(asked=4, attempted=16, kept=n, env_steps=640)
        result = TaskResult(1024, 640, "budget", {}, {f"demos/{i}": count})
        write_result(store, Task("specialist", i), result)
    write_json(store, layout.SPECIALISTS_DONE, {"succeeded": [0, 1, 2], "failed": []})
    return controller, backend


def test_specialists_that_kept_fewer_demos_than_asked_are_named_in_the_status(tmp_path):
    controller, backend = specialists_done(tmp_path, kept=[4, 1, 0])
    status = controller.reconcile()
    assert status.stage is Stage.FINETUNE and backend.started == [FINETUNE]
    assert status.demo_shortfall == (
        "fewer demos than asked: specialist-1 kept 1 of 4 in 16 attempts; "
        "specialist-2 kept 0 of 4 in 16 attempts"
    )


def test_no_demo_from_any_specialist_fails_the_experiment_before_the_finetune(tmp_path):
    controller, backend = specialists_done(tmp_path, kept=[0, 0, 0])
    status = controller.reconcile()
    assert status.stage is Stage.FAILED and backend.started == []
    assert status.message.startswith("no specialist recorded a demonstration (fewer demos")
    assert "demos.successOnly: false" in status.message
