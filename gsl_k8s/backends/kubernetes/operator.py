"""`gsl operator`: kopf handlers that drive each GSLExperiment with the shared controller.

One timer per experiment reconciles every `GSL_RECONCILE_SECONDS` (default 10): it
validates the spec with the same pydantic model as `gsl run`, runs one
`Controller.reconcile` with Jobs as the backend, and patches a small status (stage,
conditions, counts, progress and ETA by stage) plus an Event on every stage change. Jobs
that wait for admission by Kueue (suspended, or queued with no pod yet) are Queued, not
stuck: the status names them; the operator never unsuspends a Job. Everything the controller decides
is derived from the Jobs and the store, so restarting the operator at any point resumes,
and so does applying the same spec in a new cluster with the same storage: the operator
then says what the store already held (`status.resumed`, a `Resumed` Event).

A failed experiment (a task failed for good; an invalid or changed spec, or any other error
that a retry would not cure, such as a missing bucket: the `Failed` condition's reason names
it) has its running Jobs deleted before it is marked Failed, and its message says how the
failed Jobs' pods ended (OOMKilled at the memory limit, say); a deleted one has them deleted
at once and its metric series dropped. A transient error (S3 or the API server unreachable)
is retried 30 s later with the same controller. Kubernetes 1.20 prunes unknown spec keys
instead of refusing them, so the operator looks for them in kubectl's last-applied
configuration and warns.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import time
from typing import Any

import kopf
import kubernetes
from prometheus_client import Counter, Gauge, Histogram

from gsl_k8s import layout
from gsl_k8s.backends.kubernetes.backend import (
    KubernetesBackend,
    api_error,
    failure_detail,
    server_version,
    stop_jobs,
)
from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION
from gsl_k8s.backends.kubernetes.status import (
    Condition,
    ExperimentStatus,
    PhaseCost,
    PhaseCosts,
    ProgressStatus,
    SpecialistCounts,
    StageProgressStatus,
)
from gsl_k8s.core.cost import Cost
from gsl_k8s.errors import GSLError
from gsl_k8s.layout import Task
from gsl_k8s.orchestration.controller import Controller, JobPhase, Stage, Status
from gsl_k8s.orchestration.cost import PHASES, PhaseCostReader
from gsl_k8s.orchestration.progress import (
    ExperimentProgress,
    StageProgress,
    current_stage,
    percent,
)
from gsl_k8s.records.plan import RoundPlan, planned_rounds, read_plan_if_written
from gsl_k8s.records.result import read_result
from gsl_k8s.spec import API_VERSION, KIND, GSLExperiment, SpecError, parse_spec, unknown_fields
from gsl_k8s.store import join_uri, open_store
from gsl_k8s.store.s3 import S3Options

RECONCILE_SECONDS = float(os.environ.get("GSL_RECONCILE_SECONDS", "10"))
# Trainer pods in the node's network namespace: for clusters without a pod network.
TRAINER_HOST_NETWORK = os.environ.get("GSL_TRAINER_HOST_NETWORK", "false") == "true"
RETRY_SECONDS = 30  # after a transient error
TERMINAL = (Stage.SUCCEEDED, Stage.FAILED)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Every series carries the experiment's namespace: names are unique only within one.
RECONCILE_RESULTS = ("ok", "error", "invalid")
RECONCILES = Counter(
    "gsl_operator_reconciles", "Reconciles, by namespace and result.", ["namespace", "result"]
)
API_REQUESTS = Counter(
    "gsl_operator_api_requests",
    "Kubernetes API requests for Jobs (status patches excluded), by namespace.",
    ["namespace"],
)
JOB_QUEUED = "queued"  # a Running Job that waits for admission (Kueue), counted apart
JOB_STATES = (*(phase.lower() for phase in JobPhase), JOB_QUEUED)
JOBS = Gauge(
    "gsl_operator_jobs",
    "Jobs by experiment, role and state (running, succeeded, failed; queued: waiting for "
    "admission, not running).",
    ["namespace", "experiment", "role", "state"],
)
STAGE = Gauge(
    "gsl_operator_experiment_stage",
    "1 for the stage each experiment is in.",
    ["namespace", "experiment", "stage"],
)
ROUND = Gauge(
    "gsl_operator_experiment_round",
    "The GSL round each experiment's specialists and finetune are in.",
    ["namespace", "experiment"],
)
CPU_SECONDS = Gauge(
    "gsl_operator_experiment_cpu_seconds",
    "Requested CPUs x wall seconds of each experiment's finished tasks, by phase (gsl: "
    "generalist, specialists and finetune together).",
    ["namespace", "experiment", "phase"],
)
GPU_SECONDS = Gauge(
    "gsl_operator_experiment_gpu_seconds",
    "Requested GPUs x wall seconds of each experiment's finished tasks, by phase.",
    ["namespace", "experiment", "phase"],
)
PROGRESS = Gauge(
    "gsl_operator_experiment_progress_ratio",
    "Env steps trained over planned, by stage (the latest round's).",
    ["namespace", "experiment", "stage"],
)
ETA = Gauge(
    "gsl_operator_experiment_eta_seconds",
    "Seconds until each stage's budget is trained, at the recent rate (0 once done; no "
    "sample while unknown).",
    ["namespace", "experiment", "stage"],
)
STAGE_SECONDS = Histogram(
    "gsl_operator_stage_duration_seconds",
    "Time experiments spent in each stage.",
    ["namespace", "stage"],
    buckets=(10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600),
)


def count_reconcile(namespace: str, result: str) -> None:
    """Count one reconcile; the namespace's other results exist from then on, at 0, so
    that `rate()` sees their first increase."""
    for other in RECONCILE_RESULTS:
        RECONCILES.labels(namespace, other)
    RECONCILES.labels(namespace, result).inc()


def record_stage(namespace: str, name: str, stage: str) -> None:
    """1 for the experiment's stage, 0 for the others."""
    for each in Stage:
        STAGE.labels(namespace, name, str(each)).set(str(each) == stage)


def forget_experiment(namespace: str, name: str) -> None:
    """Drop a deleted experiment's series, so that none (a Failed stage's alert, say)
    outlives it."""
    for stage in Stage:
        STAGE.remove(namespace, name, str(stage))
    ROUND.remove(namespace, name)
    for phase in PHASES:
        CPU_SECONDS.remove(namespace, name, phase)
        GPU_SECONDS.remove(namespace, name, phase)
    for role in layout.ROLES:
        for state in JOB_STATES:
            JOBS.remove(namespace, name, role, state)
    for stage in Stage:
        for gauge in (PROGRESS, ETA):
            gauge.remove(namespace, name, str(stage))


def record_progress(namespace: str, name: str, stages: list[StageProgress]) -> None:
    """Each stage's progress and ETA (a later round's replace an earlier one's)."""
    for stage in stages:
        PROGRESS.labels(namespace, name, str(stage.stage)).set(
            stage.done / stage.planned if stage.planned else 1.0
        )
        if stage.eta_seconds is None:
            ETA.remove(namespace, name, str(stage.stage))
        else:
            ETA.labels(namespace, name, str(stage.stage)).set(stage.eta_seconds)


def record_costs(namespace: str, name: str, costs: dict[str, Cost]) -> None:
    """Each phase's CPU and GPU seconds."""
    for phase, cost in costs.items():
        CPU_SECONDS.labels(namespace, name, phase).set(cost.cpu_seconds)
        GPU_SECONDS.labels(namespace, name, phase).set(cost.gpu_seconds)


def cost_status(costs: dict[str, Cost]) -> dict[str, Any]:
    """The status fields of the cost: GSL's and the baseline's totals, and each phase's."""
    by_phase = {phase: PhaseCost(**cost.to_json()) for phase, cost in costs.items()}
    gsl, baseline = by_phase["gsl"], by_phase["baseline"]
    return {
        "cpu_hours": gsl.cpu_hours,
        "gpu_hours": gsl.gpu_hours,
        "baseline_cpu_hours": baseline.cpu_hours,
        "baseline_gpu_hours": baseline.gpu_hours,
        "cost": PhaseCosts(**by_phase),
    }


@functools.cache
def api_server_version() -> tuple[int, int]:
    """The API server's version, asked once per operator process: which Job fields it has."""
    return server_version(kubernetes.client.VersionApi())


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


def pruned_fields(meta: dict[str, Any]) -> list[str] | None:
    """The keys of kubectl's last-applied configuration that the schema does not know, and
    the API server therefore dropped; None without that annotation (not applied by
    `kubectl apply`)."""
    applied = (meta.get("annotations") or {}).get(LAST_APPLIED)
    try:
        obj = json.loads(applied) if applied else None
    except ValueError:
        return None
    return unknown_fields(obj) if isinstance(obj, dict) else None


def pruned_condition(fields: list[str] | None) -> Condition:
    """`FieldsPruned`: whether the API server dropped keys of the applied spec."""
    if fields is None:
        return Condition(
            type="FieldsPruned",
            status="Unknown",
            reason="NoLastAppliedConfiguration",
            message="not created by kubectl apply: unknown keys cannot be detected",
        )
    if not fields:
        return Condition(type="FieldsPruned", status="False", reason="NoUnknownFields")
    return Condition(
        type="FieldsPruned",
        status="True",
        reason="UnknownFields",
        message=f"{', '.join(fields)}: unknown field(s), dropped by the API server; "
        "the experiment runs without them (see `gsl validate`)",
    )


def with_transition_times(
    wanted: list[Condition], previous: list[dict[str, Any]]
) -> list[Condition]:
    """The conditions, each keeping its previous transition time while its status holds."""
    before = {c["type"]: c for c in previous}
    out = []
    for condition in wanted:
        old = before.get(condition.type)
        same = old is not None and old.get("status") == condition.status
        since = old["lastTransitionTime"] if same else now()
        out.append(condition.model_copy(update={"last_transition_time": since}))
    return out


def plateau_condition(plan: RoundPlan | None) -> Condition:
    """`GeneralistPlateaued`: True once the plan says where the plateau was found; False
    while the generalist trains, and where it ran to its cap without one."""
    kind = "GeneralistPlateaued"
    if plan is None:
        return Condition(
            type=kind, status="False", reason="Training", message="waiting for the plateau"
        )
    if plan.plateau_step is None:
        message = f"no plateau within generalist.envSteps: step {plan.pinned_step} pinned"
        return Condition(type=kind, status="False", reason="BudgetExhausted", message=message)
    message = f"plateau at step {plan.plateau_step}, step {plan.pinned_step} pinned"
    return Condition(type=kind, status="True", reason="PlateauPinned", message=message)


def conditions(
    result: Status,
    store,
    previous: list[dict[str, Any]],
    plan: RoundPlan | None,
    pruned: Condition,
) -> list[Condition]:
    """The five conditions after a reconcile."""
    counts = result.specialists
    specialists_done = store.exists(layout.specialists_done_key(result.round))
    wanted = [
        plateau_condition(plan),
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
        pruned,
    ]
    return with_transition_times(wanted, previous)


def failed_status(
    reason: str, message: str, generation: int, pruned: Condition, previous: dict[str, Any]
) -> dict[str, Any]:
    """The status of an experiment the operator will not run on: stage, message and the
    `Failed` condition; what it observed before (counts, cost, other conditions) stays."""
    failed = Condition(type="Failed", status="True", reason=reason, message=message)
    before = previous.get("conditions", [])
    replaced = (failed.type, pruned.type)
    kept = [Condition.model_validate(c) for c in before if c["type"] not in replaced]
    status = ExperimentStatus(
        stage=str(Stage.FAILED),
        message=message,
        observed_generation=generation,
        conditions=with_transition_times([*kept, failed, pruned], before),
    )
    return status.to_patch(only={"stage", "message", "observed_generation", "conditions"})


def best_success(controller: Controller, plan: RoundPlan | None) -> float | None:
    """The best evaluation success so far: the generalist's (as the controller last read
    it, where its plateau metric is the success rate, and at its pinned checkpoint), or
    the final one of any round's finetune."""
    store = controller.store
    values = []
    if controller.spec.generalist.plateau.metric == "success_rate":
        values += [v for _, v in controller.evaluations]
    if plan is not None:
        values.append(plan.success_rate_at_pin)
    for round_ in planned_rounds(store):
        finetune = Task("finetune", round=round_)
        if store.exists(finetune.result):
            values.append(read_result(store, finetune).final_eval["eval/success_rate"])
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
    """One level-based step of one experiment: observe it and patch its status, Events and
    series. A transient error (S3 or the API server unreachable for a while) is retried
    later, keeping the controller; any other marks the experiment Failed, with the error's
    reason and message."""
    generation = meta.get("generation", 0)
    if status.get("stage") in TERMINAL and status.get("observedGeneration") == generation:
        record_stage(namespace, name, status["stage"])  # after a restart, too
        return
    pruned = warn_pruned(body, meta, memo)
    try:
        seen = observe(body, spec, name, namespace, generation, memo, logger)
    except (GSLError, kubernetes.client.ApiException) as caught:
        err = api_error(caught) if isinstance(caught, kubernetes.client.ApiException) else caught
        give_up(err, body, name, namespace, status, memo, logger)
        patch.status.update(failed_status(err.reason, str(err), generation, pruned, status))
        return
    count_reconcile(namespace, "ok")
    patch.status.update(status_patch(seen, status, generation, pruned))
    publish(seen, body, name, namespace, status)


def warn_pruned(body, meta, memo) -> Condition:
    """`FieldsPruned`; a Warning Event when the API server dropped other keys than before."""
    fields = pruned_fields(meta)
    if fields and fields != memo.get("pruned"):
        kopf.warn(body, reason="UnknownFields", message=pruned_condition(fields).message)
    memo.pruned = fields
    return pruned_condition(fields)


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one reconcile found: the controller's result and backend, the costs so far and
    each stage's progress."""

    controller: Controller
    backend: KubernetesBackend
    result: Status
    costs: dict[str, Cost]
    stages: list[StageProgress]


def observe(body, spec, name: str, namespace: str, generation: int, memo, logger) -> Observation:
    """One `Controller.reconcile` of the experiment (a Failed result has stopped the
    running Jobs, and says how the failed ones' pods ended), and what the status reports."""
    controller = experiment_controller(body, spec, name, namespace, generation, memo, logger)
    backend: KubernetesBackend = memo.backend
    requests_before = backend.requests
    result = with_failure_details(controller.reconcile(), backend, namespace)
    API_REQUESTS.labels(namespace).inc(backend.requests - requests_before)
    costs = memo.costs.read()
    return Observation(controller, backend, result, costs, memo.progress.read(backend.last_phases))


def status_patch(
    seen: Observation, previous: dict[str, Any], generation: int, pruned: Condition
) -> dict[str, Any]:
    """The status patch after a reconcile: what it observed, the progress and the queue."""
    observed = observed_status(
        seen.controller, seen.backend, seen.result, previous, generation, pruned, seen.costs
    )
    return with_progress_and_queue(observed, seen.stages, seen.result, seen.backend, previous)


def publish(seen: Observation, body, name: str, namespace: str, previous: dict[str, Any]) -> None:
    """The Events and series after a reconcile."""
    record_progress(namespace, name, seen.stages)
    post_events(body, namespace, seen.result, previous)
    record_observed(namespace, name, seen.result, seen.backend, seen.costs)


def give_up(err: GSLError, body, name: str, namespace: str, status, memo, logger) -> None:
    """Raise `kopf.TemporaryError` for a transient error (kopf retries it); for any other,
    stop whatever still runs, of this spec or a previous one, and warn: it has failed."""
    if err.transient:
        count_reconcile(namespace, "error")
        raise kopf.TemporaryError(str(err), delay=RETRY_SECONDS) from None
    memo.pop("generation", None)  # the same spec, applied again, starts afresh
    stop(namespace, name, logger)
    count_reconcile(namespace, "invalid" if err.usage else "error")
    if status.get("stage") != str(Stage.FAILED):
        kopf.warn(body, reason=err.reason, message=str(err))
    record_stage(namespace, name, str(Stage.FAILED))


def experiment_controller(
    body, spec, name: str, namespace: str, generation: int, memo, logger
) -> Controller:
    """The experiment's controller: made for a new or changed spec (with a `Resumed` Event
    where the store held the run already), else the one made before."""
    if memo.get("generation") != generation:
        experiment = experiment_of(name, dict(spec))
        store = open_experiment_store(experiment, namespace)
        batch = kubernetes.client.BatchV1Api()
        memo.backend = KubernetesBackend(
            batch,
            experiment,
            run_uri(experiment, namespace),
            body,
            api_server_version(),
            TRAINER_HOST_NETWORK,
        )
        memo.controller = Controller(experiment, store, memo.backend, namespace)
        memo.costs = PhaseCostReader(store)
        memo.progress = ExperimentProgress(experiment.spec, store)
        memo.generation = generation
        if memo.controller.resumed is not None:  # the store held this run already
            logger.info(memo.controller.resumed)
            kopf.event(body, type="Normal", reason="Resumed", message=memo.controller.resumed)
    return memo.controller


def post_events(body, namespace: str, result: Status, previous: dict[str, Any]) -> None:
    """An Event for a new stage (a Warning for Failed), and one for a new demo shortfall;
    the time the previous stage took."""
    if previous.get("stage") != str(result.stage):
        if previous.get("stage") and previous.get("stageSince"):
            elapsed = time.time() - previous["stageSince"]
            STAGE_SECONDS.labels(namespace, previous["stage"]).observe(elapsed)
        kind = "Warning" if result.stage is Stage.FAILED else "Normal"
        kopf.event(body, type=kind, reason=str(result.stage), message=result.message)
    if result.demo_shortfall and result.demo_shortfall != previous.get("demoShortfall"):
        kopf.warn(body, reason="FewDemos", message=result.demo_shortfall)


def record_observed(
    namespace: str, name: str, result: Status, backend: KubernetesBackend, costs: dict[str, Cost]
) -> None:
    """The experiment's series: stage, round, costs, and its Jobs by role and phase."""
    record_stage(namespace, name, str(result.stage))
    ROUND.labels(namespace, name).set(result.round)
    record_costs(namespace, name, costs)
    queued = set(backend.queued)
    for role in layout.ROLES:
        states = [
            JOB_QUEUED if t in queued else p.lower()
            for t, p in backend.last_phases.items()
            if t.role == role
        ]
        for state in JOB_STATES:
            JOBS.labels(namespace, name, role, state).set(states.count(state))


def with_failure_details(result: Status, backend: KubernetesBackend, namespace: str) -> Status:
    """A Failed result, its message extended by how each failed Job's pods ended."""
    if result.stage is not Stage.FAILED:
        return result
    core = kubernetes.client.CoreV1Api()
    failed = sorted(t for t, phase in backend.last_phases.items() if phase is JobPhase.FAILED)
    experiment = backend.experiment
    details = [f"{t.name}: {failure_detail(core, experiment, namespace, t)}" for t in failed]
    return dataclasses.replace(result, message="; ".join([result.message, *details]))


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def deleted(name, namespace, logger, **_) -> None:
    """Stop a deleted experiment's Jobs at once (the garbage collector deletes them all once
    the experiment is gone) and drop its metric series."""
    stop(namespace, name, logger)
    forget_experiment(namespace, name)


def stop(namespace: str, name: str, logger) -> None:
    """Delete the experiment's running Jobs; a failed API call is retried."""
    try:
        stopped = stop_jobs(kubernetes.client.BatchV1Api(), namespace, name)
    except kubernetes.client.ApiException as err:
        count_reconcile(namespace, "error")
        raise kopf.TemporaryError(f"stopping Jobs: {api_error(err)}") from None
    API_REQUESTS.labels(namespace).inc(1 + len(stopped))
    if stopped:
        logger.info(f"stopped {', '.join(stopped)}")


def observed_status(
    controller: Controller,
    backend: KubernetesBackend,
    result: Status,
    previous: dict[str, Any],
    generation: int,
    pruned: Condition,
    costs: dict[str, Cost],
) -> dict[str, Any]:
    """The status patch after a reconcile."""
    store = controller.store
    counts = result.specialists
    running = sum(
        t.role == "specialist" and p is JobPhase.RUNNING for t, p in backend.last_phases.items()
    )
    plan = read_plan_if_written(store)
    stage_changed = previous.get("stage") != str(result.stage)
    status = ExperimentStatus(
        stage=str(result.stage),
        message=result.message,
        stage_since=time.time() if stage_changed else previous.get("stageSince"),
        observed_generation=generation,
        conditions=conditions(result, store, previous.get("conditions", []), plan, pruned),
        round=result.round,
        specialists=SpecialistCounts(
            total=counts.total, succeeded=counts.succeeded, failed=counts.failed, running=running
        ),
        specialists_ready=f"{counts.succeeded}/{counts.total}",
        best_success=best_success(controller, plan),
        plateau_step=plan.plateau_step if plan else None,
        pinned_step=plan.pinned_step if plan else None,
        plateau_checkpoint=f"{store.uri}/{layout.PLATEAU_CHECKPOINT}" if plan else None,
        demo_shortfall=result.demo_shortfall,
        resumed=controller.resumed,
        **cost_status(costs),
    )
    return status.to_patch()


def queued_condition(queued: list[layout.Task]) -> Condition:
    """Queued: True while any of the experiment's Jobs waits for admission, naming them."""
    if not queued:
        return Condition(type="Queued", status="False", reason="NothingQueued")
    names = ", ".join(t.name for t in queued)
    return Condition(
        type="Queued",
        status="True",
        reason="WaitingForAdmission",
        message=f"{names}: waiting for admission (a suspended Job, or no pod yet)",
    )


def progress_status(
    stages: list[StageProgress], result: Status, backend: KubernetesBackend
) -> ProgressStatus:
    """Each stage's progress, GSL's totals, and the current stage's summary: "Queued" while
    every running Job waits for admission, else e.g. "37% ETA 12m" (", 1 queued" where
    some wait)."""
    gsl = [p for p in stages if p.stage is not Stage.BASELINE]
    current = current_stage(stages, result.stage, result.round)
    if current is None:  # Reporting and after: the whole experiment's share
        summary = f"{percent(sum(p.done for p in stages), sum(p.planned for p in stages))}%"
    else:
        summary = current.summary()
    running = sum(phase is JobPhase.RUNNING for phase in backend.last_phases.values())
    if backend.queued:
        queued = len(backend.queued)
        summary = "Queued" if queued == running else f"{summary}, {queued} queued"
    return ProgressStatus(
        summary=summary,
        steps_done=sum(p.done for p in gsl),
        steps_planned=sum(p.planned for p in gsl),
        stages=[
            StageProgressStatus(
                stage=str(p.stage),
                round=p.round,
                steps_done=p.done,
                steps_planned=p.planned,
                elapsed_seconds=round(p.elapsed_seconds, 1),
                eta_seconds=None if p.eta_seconds is None else round(p.eta_seconds, 1),
            )
            for p in stages
        ],
    )


def with_progress_and_queue(
    observed: dict[str, Any],
    stages: list[StageProgress],
    result: Status,
    backend: KubernetesBackend,
    previous: dict[str, Any],
) -> dict[str, Any]:
    """The status patch `observed` with the progress, the queued tasks and the Queued
    condition."""
    [queued] = with_transition_times(
        [queued_condition(backend.queued)], previous.get("conditions", [])
    )
    condition = queued.model_dump(by_alias=True, exclude_none=True)
    progress = progress_status(stages, result, backend)
    return {
        **observed,
        "conditions": [*observed["conditions"], condition],
        "queued": [t.name for t in backend.queued],
        "progress": {
            **progress.model_dump(by_alias=True, exclude={"stages"}),
            "stages": [s.model_dump(by_alias=True, exclude_none=True) for s in progress.stages],
        },
    }
