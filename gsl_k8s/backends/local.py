"""The local backend: each task is a `gsl train` subprocess on this machine."""

from __future__ import annotations

import signal
import subprocess
import sys

from gsl_k8s.layout import Task
from gsl_k8s.orchestration.controller import JobPhase
from gsl_k8s.store import ArtifactStore


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
