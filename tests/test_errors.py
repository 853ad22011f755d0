"""One error type: `gsl` prints every `GSLError` as one `gsl: error:` line and exits with its
code (1, 2 for a usage error, 75 for a transient one); the operator retries a transient one,
keeping its controller, and marks the experiment Failed with any other's reason."""

from __future__ import annotations

import json
import logging
import types

import kopf
import pytest
from botocore.exceptions import ClientError

from gsl_k8s import cli
from gsl_k8s.backends.kubernetes import operator
from gsl_k8s.errors import EXIT_FAILURE, EXIT_TEMPORARY, EXIT_USAGE
from gsl_k8s.layout import Task
from gsl_k8s.orchestration import controller as controller_module
from gsl_k8s.orchestration.controller import JobPhase
from gsl_k8s.orchestration.metrics_source import MetricsSourceError
from gsl_k8s.store import FileStore, StoreError, open_store
from gsl_k8s.trainer import task as task_module
from gsl_k8s.trainer.backend import TrainingFailed
from tests.conftest import TINY_SPEC, merge


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_store_error_is_one_line_with_exit_code_1_not_the_usage_code(capsys):
    code = cli.main(["report", "ftp://host/run"])
    err = capsys.readouterr().err
    assert err == (
        "gsl: error: ftp://host/run: unsupported storage scheme 'ftp' (use file:// or s3://)\n"
    )
    assert code == EXIT_FAILURE


def test_a_spec_error_is_a_usage_error(write_spec, capsys):
    code = cli.main(["validate", str(write_spec({"spec": {"specialists": {"count": 9}}}))])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.startswith("gsl: error: ")


def test_gsl_run_ends_on_a_refused_prometheus_query_with_one_line(
    write_spec, tmp_path, refusing_prometheus, capsys
):
    prometheus = {"url": refusing_prometheus, "query": "up{", "stepQuery": "up"}
    spec = {"generalist": {"metricsSource": {"prometheus": prometheus}}}
    path = write_spec({"spec": {**spec, "baseline": {"enabled": False}}})
    code = cli.main(["run", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert last_line(err) == (
        f"gsl: error: Prometheus {refusing_prometheus} rejected 'up{{': 1:5: parse error"
    )
    assert code == EXIT_FAILURE and "Traceback" not in err


def test_gsl_train_reports_a_failed_backend_as_gsl_error(tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise TrainingFailed("finetune: the sample-factory learner crashed: boom")

    monkeypatch.setattr(task_module, "TaskRunner", fail)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # leave pytest's SIGTERM
    (tmp_path / "spec.json").write_text(json.dumps(TINY_SPEC))
    code = cli.main(["train", "--run", str(tmp_path), "--role", "finetune"])
    err = capsys.readouterr().err
    assert last_line(err) == "gsl: error: finetune: the sample-factory learner crashed: boom"
    assert code == EXIT_FAILURE


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


def test_s3_errors_are_transient_only_where_a_retry_may_succeed(s3_uri):
    store = open_store(s3_uri)
    assert store._translate(client_error("SlowDown", 503), "k").transient
    assert store._translate(client_error("InternalError", 500), "k").transient
    assert not store._translate(client_error("AccessDenied", 403), "k").transient
    assert not store._translate(client_error("NoSuchKey", 404), "k").transient
    with pytest.raises(StoreError, match="does not exist") as missing:
        open_store("s3://no-such-bucket/prefix")
    assert not missing.value.transient and missing.value.exit_code == EXIT_FAILURE
    assert StoreError("blip", transient=True).exit_code == EXIT_TEMPORARY


class BlinkingStore(FileStore):
    """A file store whose `exists` raises `failure` while it is set."""

    failure: Exception | None = None

    def exists(self, key: str) -> bool:
        if self.failure is not None:
            raise self.failure
        return super().exists(key)


class NoJobs:
    """A KubernetesBackend stand-in: starts nothing, counts nothing."""

    def __init__(self, batch, experiment, *args):
        self.experiment = experiment
        self.requests = 0
        self.last_phases: dict[Task, JobPhase] = {}
        self.queued: list[Task] = []

    def phases(self):
        return self.last_phases

    def start(self, task):
        self.last_phases[task] = JobPhase.RUNNING

    def stop(self):
        self.last_phases = {}


class Handler:
    """Calls the operator's timer handler as kopf would, for one experiment, with the store,
    the Jobs and Kubernetes stood in for; records the Events and stops."""

    def __init__(self, tmp_path, monkeypatch, spec: dict):
        self.store = BlinkingStore(tmp_path / "run")
        self.events: list[tuple[str, str]] = []
        self.stops = 0
        self.memo = kopf.Memo()
        self.status: dict = {}
        self.spec = spec
        monkeypatch.setattr(operator, "open_experiment_store", lambda *args: self.store)
        monkeypatch.setattr(operator, "KubernetesBackend", NoJobs)
        monkeypatch.setattr(operator, "api_server_version", lambda: (1, 20))
        monkeypatch.setattr(operator, "stop", lambda *args: self._stopped())
        monkeypatch.setattr(kopf, "event", lambda body, type, reason, message: self._event(reason))
        monkeypatch.setattr(kopf, "warn", lambda body, reason, message: self._event(reason))

    def _event(self, reason: str) -> None:
        self.events.append(reason)

    def _stopped(self) -> None:
        self.stops += 1

    def __call__(self) -> dict:
        """One reconcile; returns the status patch (also kept as the status)."""
        patch = types.SimpleNamespace(status={})
        meta = {"name": "tiny", "namespace": "ns", "generation": 1}
        operator.reconcile(
            body={"metadata": meta},
            meta=meta,
            spec=self.spec,
            status=self.status,
            name="tiny",
            namespace="ns",
            patch=patch,
            memo=self.memo,
            logger=logging.getLogger("test"),
        )
        self.status = merge(self.status, patch.status)
        return patch.status


def failed_condition(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Failed")


def test_a_transient_store_error_is_retried_with_the_same_controller(tmp_path, monkeypatch):
    """An S3 blip: kopf retries later, and the controller stays (no `Resumed` Event, as
    if the operator had restarted)."""
    reconcile = Handler(tmp_path, monkeypatch, TINY_SPEC["spec"])
    assert reconcile()["stage"] == "Generalist"
    controller = reconcile.memo.controller
    reconcile.store.failure = StoreError("s3://b/p: cannot reach S3", transient=True)
    with pytest.raises(kopf.TemporaryError, match="cannot reach S3"):
        reconcile()
    reconcile.store.failure = None
    assert reconcile()["stage"] == "Generalist"
    assert reconcile.memo.controller is controller
    assert "Resumed" not in reconcile.events and reconcile.stops == 0


def test_a_lasting_store_error_fails_the_experiment_and_says_why(tmp_path, monkeypatch):
    reconcile = Handler(tmp_path, monkeypatch, TINY_SPEC["spec"])
    assert reconcile()["stage"] == "Generalist"
    denied = "s3://b/p/ns/tiny/run.json: access denied (AccessDenied)"
    reconcile.store.failure = StoreError(denied)
    status = reconcile()
    assert status["stage"] == "Failed" and status["message"] == denied
    condition = failed_condition(status)
    assert condition["status"] == "True" and condition["reason"] == "StoreError"
    assert condition["message"] == denied
    assert reconcile.events[-1] == "StoreError" and reconcile.stops == 1
    # what it observed before stays: the other conditions
    kinds = {c["type"] for c in reconcile.status["conditions"]}
    assert {"GeneralistPlateaued", "SpecialistsComplete", "Succeeded"} <= kinds


class RefusedQuery:
    def evaluations(self):
        raise MetricsSourceError("Prometheus http://p rejected 'up{': parse error", transient=False)


def test_a_refused_plateau_query_fails_the_experiment(tmp_path, monkeypatch):
    monkeypatch.setattr(controller_module, "metrics_source", lambda *args: RefusedQuery())
    reconcile = Handler(tmp_path, monkeypatch, TINY_SPEC["spec"])
    status = reconcile()
    assert status["stage"] == "Failed"
    condition = failed_condition(status)
    assert condition["reason"] == "MetricsSourceError" and "rejected 'up{'" in condition["message"]
    assert reconcile.stops == 1


def test_an_invalid_spec_is_a_usage_failure(tmp_path, monkeypatch):
    spec = merge(TINY_SPEC, {"spec": {"specialists": {"count": 9}}})["spec"]
    reconcile = Handler(tmp_path, monkeypatch, spec)
    status = reconcile()
    assert failed_condition(status)["reason"] == "InvalidSpec"
    assert "9 specialists for 6 variations" in status["message"]


def test_the_kubernetes_api_error_is_one_line(tmp_path):
    from kubernetes.client import ApiException

    from gsl_k8s.backends.kubernetes.backend import api_error

    err = ApiException(status=409, reason="Conflict")
    err.body = json.dumps({"reason": "AlreadyExists", "message": 'gslexperiments "x" exists'})
    converted = api_error(err)
    assert str(converted) == 'Kubernetes API: 409 AlreadyExists: gslexperiments "x" exists'
    assert not converted.transient
    assert api_error(ApiException(status=503, reason="Service Unavailable")).transient


def test_stored_runs_resume_in_the_handler_after_a_new_generation(tmp_path, monkeypatch):
    """The `Resumed` Event is for an operator that finds the run in the store: here, a
    second handler (a restarted operator) on the same store."""
    first = Handler(tmp_path, monkeypatch, TINY_SPEC["spec"])
    first()
    second = Handler(tmp_path, monkeypatch, TINY_SPEC["spec"])
    second()
    assert "Resumed" in second.events and "Resumed" not in first.events
