"""The local backend: each task is a `gsl train` subprocess on this machine."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from gsl_k8s.layout import Task
from gsl_k8s.orchestration.controller import Controller, JobPhase, Stage, Status
from gsl_k8s.spec import GSLExperiment
from gsl_k8s.store import ArtifactStore

POLL_SECONDS = 0.5


def train_command(run_uri: str, task: Task) -> list[str]:
    """The command line that runs `task` (the Kubernetes backend runs the same one)."""
    return ["gsl", "train", "--run", run_uri, "--role", task.role, "--index", str(task.index)]


class LocalBackend:
    """Starts tasks as subprocesses, output in `<task>/log.txt`."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._processes: dict[Task, subprocess.Popen] = {}

    def phases(self) -> dict[Task, JobPhase]:
        """See `Backend.phases`."""
        phases = {}
        for task, process in self._processes.items():
            code = process.poll()
            if code is None:
                phases[task] = JobPhase.RUNNING
            else:
                phases[task] = JobPhase.SUCCEEDED if code == 0 else JobPhase.FAILED
        return phases

    def start(self, task: Task) -> None:
        """See `Backend.start`."""
        if task in self._processes and self._processes[task].poll() is None:
            return
        log_dir = self.store.local_dir(task.prefix)
        log_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "gsl_k8s", *train_command(self.store.uri, task)[1:]]
        with (log_dir / "log.txt").open("ab") as log:
            self._processes[task] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every running task (each checkpoints) and wait for it to exit."""
        running = [p for p in self._processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()


def run_local(
    experiment: GSLExperiment,
    store: ArtifactStore,
    on_status: Callable[[Status, dict[Task, JobPhase]], None] | None = None,
) -> Status:
    """Reconcile until the experiment succeeds or fails. On Ctrl-C, every task checkpoints
    and KeyboardInterrupt propagates; calling again resumes."""
    backend = LocalBackend(store)
    controller = Controller(experiment, store, backend)
    try:
        while True:
            status = controller.reconcile()
            if on_status is not None:
                on_status(status, backend.phases())
            if status.stage in (Stage.SUCCEEDED, Stage.FAILED):
                return status
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        backend.stop_all()
        raise
