"""The local backend: each task is a `gsl train` (or, last, `gsl report`) subprocess on
this machine.

Each trainer serves its Prometheus metrics on a port of 127.0.0.1 that it binds itself (no
other process can take it in between) and writes to `<task>/metrics-port`; the backend lists
them in `prometheus_targets.json` (Prometheus `file_sd_configs` format) in its work
directory, beside the processes' logs. With a remote store, a task's log is also
uploaded to `<task>/log.txt` when the process ends.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gsl_k8s.layout import Task, task_command
from gsl_k8s.orchestration.controller import Controller, JobPhase, Stage, Status
from gsl_k8s.spec import GSLExperiment
from gsl_k8s.store import ArtifactStore

POLL_SECONDS = 0.5
METRICS_ADDRESS = "127.0.0.1"
TARGETS_FILE = "prometheus_targets.json"


class LocalBackend:
    """Starts tasks as subprocesses; logs and the metrics targets live in `workdir`."""

    def __init__(self, store: ArtifactStore, workdir: Path):
        self.store = store
        self.workdir = workdir
        self._processes: dict[Task, subprocess.Popen] = {}
        self._ports: dict[Task, int] = {}
        self._uploaded: set[Task] = set()

    def _log_path(self, task: Task) -> Path:
        return self.workdir / task.log

    def _port_file(self, task: Task) -> Path:
        return self.workdir / task.prefix / "metrics-port"

    def phases(self) -> dict[Task, JobPhase]:
        """See `Backend.phases`."""
        self._discover_targets()
        phases = {}
        for task, process in self._processes.items():
            code = process.poll()
            if code is None:
                phases[task] = JobPhase.RUNNING
                continue
            phases[task] = JobPhase.SUCCEEDED if code == 0 else JobPhase.FAILED
            if self.store.local_dir(task.log) is None and task not in self._uploaded:
                self.store.write_bytes(task.log, self._log_path(task).read_bytes())
                self._uploaded.add(task)
        return phases

    def start(self, task: Task) -> None:
        """See `Backend.start`."""
        if task in self._processes and self._processes[task].poll() is None:
            return
        log = self._log_path(task)
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "gsl_k8s", *task_command(self.store.uri, task)[1:]]
        if task.trains:
            port_file = self._port_file(task)
            port_file.unlink(missing_ok=True)
            self._ports.pop(task, None)
            command += ["--metrics-address", METRICS_ADDRESS, "--metrics-port-file", str(port_file)]
        with log.open("ab") as out:
            self._processes[task] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._uploaded.discard(task)

    def log_hint(self, task: Task) -> str:
        """See `Backend.log_hint`: the task's log file on this machine."""
        return str(self._log_path(task))

    def _discover_targets(self) -> None:
        """List the metrics ports the trainers have written since the last call."""
        found = False
        for task in self._processes:
            port_file = self._port_file(task)
            if task.trains and task not in self._ports and port_file.exists():
                self._ports[task] = int(port_file.read_text())
                found = True
        if found:
            targets = [
                {"targets": [f"{METRICS_ADDRESS}:{port}"], "labels": {"task": task.name}}
                for task, port in sorted(self._ports.items())
            ]
            (self.workdir / TARGETS_FILE).write_text(json.dumps(targets, indent=2))

    def wait_all(self, timeout: float = 60.0) -> None:
        """Wait for the tasks that are still exiting (a task writes its result before it
        exits), so that every log is uploaded."""
        for process in self._processes.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self.phases()

    def stop(self, timeout: float = 30.0) -> None:
        """See `Backend.stop`: SIGTERM every running task and wait for it to exit."""
        running = [p for p in self._processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM (a plain `kill`) stop `run_local` in this process as Ctrl-C does: its
    tasks checkpoint and KeyboardInterrupt propagates."""
    signal.signal(signal.SIGTERM, _interrupt)


def run_local(
    experiment: GSLExperiment,
    store: ArtifactStore,
    workdir: Path,
    on_status: Callable[[Status, dict[Task, JobPhase]], None] | None = None,
    on_resume: Callable[[str], None] | None = None,
) -> Status:
    """Reconcile until the experiment succeeds or fails. On Ctrl-C or an error (a store
    that fails, say), every task checkpoints and the exception propagates; calling again
    resumes (from the store alone: on another machine, too), and `on_resume` hears what
    the store already held."""
    backend = LocalBackend(store, workdir)
    controller = Controller(experiment, store, backend)
    if controller.resumed is not None and on_resume is not None:
        on_resume(controller.resumed)
    try:
        while True:
            status = controller.reconcile()
            if on_status is not None:
                on_status(status, backend.phases())
            if status.stage in (Stage.SUCCEEDED, Stage.FAILED):
                backend.wait_all()  # a failed experiment's tasks were stopped
                return status
            time.sleep(POLL_SECONDS)
    except BaseException:
        backend.stop()
        raise
