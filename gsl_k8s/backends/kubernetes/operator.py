"""`gsl operator`: kopf handlers that drive each GSLExperiment with the shared controller.

One timer per experiment reconciles every `GSL_RECONCILE_SECONDS` (default 10): it
validates the spec with the same pydantic model as `gsl run`, runs one
`Controller.reconcile` with Jobs as the backend, and patches a small status (stage,
conditions, counts) plus an Event on every stage change. Everything the controller decides
is derived from the Jobs and the store, so restarting the operator at any point resumes.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

import kopf
import kubernetes
from prometheus_client import Counter, Gauge, Histogram

from gsl_k8s import layout
from gsl_k8s.backends.kubernetes.backend import KubernetesBackend
from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION
from gsl_k8s.backends.kubernetes.status import Condition, ExperimentStatus, SpecialistCounts
from gsl_k8s.layout import FINETUNE
from gsl_k8s.orchestration.controller import (
    Controller,
    JobPhase,
    SpecChangedError,
    Stage,
    Status,
)
from gsl_k8s.records.result import read_result
from gsl_k8s.spec import API_VERSION, KIND, GSLExperiment, SpecError, parse_spec
from gsl_k8s.store import StoreError, join_uri, open_store, read_json
from gsl_k8s.store.s3 import S3Options

RECONCILE_SECONDS = float(os.environ.get("GSL_RECONCILE_SECONDS", "10"))
STORE_RETRY_SECONDS = 30
TERMINAL = (Stage.SUCCEEDED, Stage.FAILED)

RECONCILES = Counter("gsl_operator_reconciles", "Reconciles, by result.", ["result"])
for _result in ("ok", "error", "invalid"):  # every series exists from the start, at 0
    RECONCILES.labels(_result)
API_REQUESTS = Counter(
    "gsl_operator_api_requests", "Kubernetes API requests for Jobs (status patches excluded)."
)
JOBS = Gauge(
    "gsl_operator_jobs", "Jobs by experiment, role and state.", ["experiment", "role", "state"]
)
STAGE = Gauge(
    "gsl_operator_experiment_stage",
    "1 for the stage each experiment is in.",
    ["experiment", "stage"],
)
STAGE_SECONDS = Histogram(
    "gsl_operator_stage_duration_seconds",
    "Time experiments spent in each stage.",
    ["stage"],
    buckets=(10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600),
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def experiment_of(name: str, spec: dict[str, Any]) -> GSLExperiment:
    """The experiment as `gsl run` would validate it."""
    return parse_spec(
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
    )


def run_uri(experiment: GSLExperiment, namespace: str) -> str:
    """On Kubernetes an experiment lives under `<storage uri>/<namespace>/<name>/`."""
    return join_uri(join_uri(experiment.spec.storage.uri, namespace), experiment.name)


def open_experiment_store(experiment: GSLExperiment, namespace: str):
    """The experiment's store, reached with the spec's S3 settings and the operator's
    credentials. Only S3 is shared between pods."""
    storage = experiment.spec.storage
    if not storage.uri.startswith("s3://"):
        raise SpecError(f"spec.storage.uri: {storage.uri!r}: on Kubernetes, use s3://bucket/prefix")
    options = S3Options.from_env(**storage.s3_settings())
    return open_store(run_uri(experiment, namespace), options)


def conditions(
    result: Status, store, previous: list[dict[str, Any]], plateaued: bool
) -> list[dict[str, Any]]:
    """The four conditions, keeping each one's transition time while its status holds."""
    counts = result.specialists
    specialists_done = store.exists(layout.SPECIALISTS_DONE)
    wanted = [
        Condition(
            type="GeneralistPlateaued",
            status="True" if plateaued else "False",
            reason="PlateauPinned" if plateaued else "Training",
            message="plateau checkpoint pinned" if plateaued else "waiting for the plateau",
        ),
        Condition(
            type="SpecialistsComplete",
            status="True" if specialists_done else "False",
            reason=("SomeFailed" if counts.failed else "AllSucceeded")
            if specialists_done
            else "Running",
            message=f"{counts.succeeded} of {counts.total} succeeded, {counts.failed} failed",
        ),
        Condition(
            type="Succeeded",
            status="True" if result.stage is Stage.SUCCEEDED else "False",
            reason="ReportWritten" if result.stage is Stage.SUCCEEDED else str(result.stage),
            message=result.message if result.stage is Stage.SUCCEEDED else None,
        ),
        Condition(
            type="Failed",
            status="True" if result.stage is Stage.FAILED else "False",
            reason="TaskFailed" if result.stage is Stage.FAILED else "NoFailure",
            message=result.message if result.stage is Stage.FAILED else None,
        ),
    ]
    before = {c["type"]: c for c in previous}
    out = []
    for condition in wanted:
        old = before.get(condition.type)
        same = old is not None and old.get("status") == condition.status
        condition.last_transition_time = old["lastTransitionTime"] if same else now()
        out.append(condition.model_dump(by_alias=True, exclude_none=True))
    return out


def failed_status(reason: str, message: str, generation: int) -> dict[str, Any]:
    """The status of an experiment the operator will not run."""
    status = ExperimentStatus(
        stage=str(Stage.FAILED),
        message=message,
        observed_generation=generation,
        conditions=[
            Condition(
                type="Failed",
                status="True",
                reason=reason,
                message=message,
                last_transition_time=now(),
            )
        ],
    )
    return status.to_patch()


def best_success(controller: Controller, plan: dict | None) -> float | None:
    """The best evaluation success so far: the generalist's (as the controller last read
    it, or at its pinned checkpoint), or the finetune's final one."""
    values = [v for _, v in controller.evaluations]
    if plan is not None:
        values.append(plan["success_rate_at_pin"])
    if controller.store.exists(FINETUNE.result):
        values.append(read_result(controller.store, FINETUNE).final_eval["eval/success_rate"])
    return max(values) if values else None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    """Keep kopf's bookkeeping in annotations; post only warnings as Events. Watching
    named namespaces needs no cluster-wide scans (so a namespaced Role is enough)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = 30  # logging.WARNING
    settings.scanning.disabled = not memo.get("clusterwide", False)
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_SECONDS)
def reconcile(body, meta, spec, status, name, namespace, patch, memo, logger, **_) -> None:
    """One level-based step of one experiment."""
    generation = meta.get("generation", 0)
    if status.get("stage") in TERMINAL and status.get("observedGeneration") == generation:
        return
    try:
        if memo.get("generation") != generation:  # a new or changed spec: start afresh
            experiment = experiment_of(name, dict(spec))
            store = open_experiment_store(experiment, namespace)
            batch = kubernetes.client.BatchV1Api()
            memo.backend = KubernetesBackend(
                batch, experiment, run_uri(experiment, namespace), body
            )
            memo.controller = Controller(experiment, store, memo.backend)
            memo.generation = generation
        controller: Controller = memo.controller
        backend: KubernetesBackend = memo.backend
        requests_before = backend.requests
        result = controller.reconcile()
        API_REQUESTS.inc(backend.requests - requests_before)
    except (SpecError, SpecChangedError) as err:
        RECONCILES.labels("invalid").inc()
        reason = "SpecChanged" if isinstance(err, SpecChangedError) else "InvalidSpec"
        if status.get("stage") != str(Stage.FAILED):
            kopf.warn(body, reason=reason, message=str(err))
        patch.status.update(failed_status(reason, str(err), generation))
        memo.pop("generation", None)
        return
    except StoreError as err:
        RECONCILES.labels("error").inc()
        memo.pop("generation", None)
        raise kopf.TemporaryError(str(err), delay=STORE_RETRY_SECONDS) from None
    RECONCILES.labels("ok").inc()
    patch.status.update(observed_status(controller, backend, result, status, generation))
    if status.get("stage") != str(result.stage):
        if status.get("stage") and status.get("stageSince"):
            STAGE_SECONDS.labels(status["stage"]).observe(time.time() - status["stageSince"])
        kind = "Warning" if result.stage is Stage.FAILED else "Normal"
        kopf.event(body, type=kind, reason=str(result.stage), message=result.message)
    for stage in Stage:
        STAGE.labels(name, str(stage)).set(stage is result.stage)
    for phase in JobPhase:
        for role in layout.ROLES:
            count = sum(t.role == role and p is phase for t, p in backend.last_phases.items())
            JOBS.labels(name, role, phase.lower()).set(count)


def observed_status(
    controller: Controller,
    backend: KubernetesBackend,
    result: Status,
    previous: dict[str, Any],
    generation: int,
) -> dict[str, Any]:
    """The status patch after a reconcile."""
    store = controller.store
    counts = result.specialists
    running = sum(
        t.role == "specialist" and p is JobPhase.RUNNING for t, p in backend.last_phases.items()
    )
    plan = read_json(store, layout.PLAN) if store.exists(layout.PLAN) else None
    stage_changed = previous.get("stage") != str(result.stage)
    status = ExperimentStatus(
        stage=str(result.stage),
        message=result.message,
        stage_since=time.time() if stage_changed else previous.get("stageSince"),
        observed_generation=generation,
        conditions=conditions(result, store, previous.get("conditions", []), plan is not None),
        specialists=SpecialistCounts(
            total=counts.total, succeeded=counts.succeeded, failed=counts.failed, running=running
        ),
        specialists_ready=f"{counts.succeeded}/{counts.total}",
        best_success=best_success(controller, plan),
        plateau_step=plan["pinned_step"] if plan else None,
        plateau_checkpoint=f"{store.uri}/{layout.PLATEAU_CHECKPOINT}" if plan else None,
    )
    return status.to_patch()
