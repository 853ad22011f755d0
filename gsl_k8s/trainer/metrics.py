"""Prometheus metrics of one trainer process, served on `/metrics`.

Every series carries the labels namespace (the Kubernetes namespace; empty, so absent in
Prometheus, for `gsl run`), experiment, role and index:

    gsl_env_steps_total               counter  env steps trained (continues across resumes)
    gsl_env_steps_per_second          gauge    training throughput
    gsl_eval_success_ratio            gauge    mean success over variations, latest evaluation
    gsl_eval_return                   gauge    mean episodic return, latest evaluation
    gsl_eval_env_steps                gauge    the env step of the latest evaluation
    gsl_train_loss{loss=...}          gauge    latest PPO losses (policy, value, entropy, ...)
    gsl_task_phase{gsl_task_phase=..} enum     starting, training, evaluating, recording_demos,
                                               waiting (a concurrent baseline, for GSL), done
    gsl_checkpoint_age_seconds        gauge    time since the last checkpoint (or the start)
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, start_http_server

from gsl_k8s.layout import Task

PHASES = ["starting", "training", "evaluating", "recording_demos", "waiting", "done"]
LABELS = ["namespace", "experiment", "role", "index"]


class TrainerMetrics:
    """The metrics above, in a registry of their own; `observe` maps progress records."""

    def __init__(self, experiment: str, task: Task, namespace: str = ""):
        self.registry = CollectorRegistry()
        labels = {
            "namespace": namespace,
            "experiment": experiment,
            "role": task.role,
            "index": str(task.index),
        }

        def metric(kind, name: str, doc: str, **kwargs):
            return kind(name, doc, LABELS, registry=self.registry, **kwargs).labels(**labels)

        self.env_steps = metric(Counter, "gsl_env_steps", "Env steps trained.")
        self.steps_per_second = metric(
            Gauge, "gsl_env_steps_per_second", "Training throughput in env steps per second."
        )
        self.eval_success = metric(
            Gauge, "gsl_eval_success_ratio", "Mean success rate at the latest evaluation."
        )
        self.eval_return = metric(
            Gauge, "gsl_eval_return", "Mean episodic return at the latest evaluation."
        )
        self.eval_step = metric(
            Gauge, "gsl_eval_env_steps", "Env step at which the latest evaluation ran."
        )
        self.phase = metric(Enum, "gsl_task_phase", "What the task is doing.", states=PHASES)
        self._losses = Gauge(
            "gsl_train_loss", "Latest training losses.", [*LABELS, "loss"], registry=self.registry
        )
        self._labels = labels
        self._last_checkpoint = time.time()
        metric(
            Gauge, "gsl_checkpoint_age_seconds", "Seconds since the last checkpoint (or start)."
        ).set_function(lambda: time.time() - self._last_checkpoint)
        self._step = 0

    def serve(self, address: str, port: int) -> int:
        """Serve `/metrics` on address:port (port 0 picks a free one); returns the port."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        return server.server_port

    def resumed_at(self, step: int) -> None:
        """Count the env steps trained before a resume."""
        self.observe(step, {})

    def observe(self, step: int, record: dict[str, Any]) -> None:
        """Update from one progress record (`charts/*`, `losses/*`, `eval/*`) at `step`."""
        if step > self._step:
            self.env_steps.inc(step - self._step)
            self._step = step
        for name, value in record.items():
            if not isinstance(value, int | float):
                continue
            if name == "charts/sps":
                self.steps_per_second.set(value)
            elif name.startswith("losses/"):
                loss = name.removeprefix("losses/")
                self._losses.labels(**self._labels, loss=loss).set(value)
        if "eval/success_rate" in record:
            # The step first: a scrape in between pairs the new step with the old values,
            # which the next scrape corrects, never an old step with the new values.
            self.eval_step.set(step)
            self.eval_success.set(record["eval/success_rate"])
            self.eval_return.set(record["eval/return"])

    def checkpointed(self) -> None:
        """A checkpoint was written just now."""
        self._last_checkpoint = time.time()
