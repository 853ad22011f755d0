"""How an experiment ends: a failure stops whatever still runs (through `Backend.stop`, for
the local backend a real SIGTERM and checkpoint), and the report is a task of its own."""

import signal
import subprocess
import sys
import time

from gsl_k8s import layout
from gsl_k8s.backends.local import LocalBackend
from gsl_k8s.layout import FINETUNE, GENERALIST, REPORT, Task
from gsl_k8s.orchestration.controller import Controller, JobPhase, SpecialistCounts, Stage
from gsl_k8s.records.demos import DemoCount
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import list_artifacts, open_store, write_json
from tests.conftest import TINY_SPEC, merge


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


def controller_after_the_plan(tmp_path, patch=None):
    store = open_store(str(tmp_path))
    backend = ScriptedBackend()
    controller = Controller(parse_spec(merge(TINY_SPEC, patch or {})), store, backend)
    write_json(store, layout.PLAN, {"subsets": [[0, 1], [2, 3], [4, 5]]})
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
    assert failed.stage is Stage.FAILED and failed.message == "report failed (see report/log.txt)"


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
