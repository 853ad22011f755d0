"""Kueue: the queue labels and suspension of the operator's Jobs, by server version,
which Jobs count as queued (waiting for admission) rather than running; and the status
the operator writes of both and of the progress."""

from types import SimpleNamespace

import kubernetes_validate
import pytest
from kubernetes.client import models

from gsl_k8s.backends.kubernetes import operator
from gsl_k8s.backends.kubernetes.backend import KubernetesBackend, job_queued
from gsl_k8s.backends.kubernetes.jobs import QUEUE_LABEL, WORKLOAD_PRIORITY_LABEL
from gsl_k8s.backends.kubernetes.status import ExperimentStatus
from gsl_k8s.layout import GENERALIST, Task
from gsl_k8s.orchestration.controller import JobPhase, Stage, Status
from gsl_k8s.orchestration.progress import StageProgress
from gsl_k8s.spec import SpecError, parse_spec
from tests.conftest import TINY_SPEC, merge
from tests.test_kube_units import V1_20, every_job

QUEUED = {
    "spec": {
        "kubernetes": {
            "queueName": "team-gpu",
            "specialist": {
                "queueName": "spot",
                "priorityClassName": "batch-low",
                "workloadPriorityClassName": "low",
            },
        }
    }
}


@pytest.mark.parametrize(
    "server, suspended",
    [(V1_20, False), ((1, 21), False), ((1, 22), True), ((1, 31), True)],
    ids=["1.20", "1.21", "1.22", "1.31"],
)
def test_queued_jobs_carry_kueues_labels_and_are_created_suspended_where_the_server_can(
    server, suspended
):
    """Job suspend is off by default before 1.22: there Kueue's webhook must suspend them."""
    jobs = every_job(QUEUED, server=server)
    for job in jobs:
        labels = job["metadata"]["labels"]
        specialist = labels["gsl.dev/role"] == "specialist"
        assert labels[QUEUE_LABEL] == ("spot" if specialist else "team-gpu")  # a role overrides
        assert labels.get(WORKLOAD_PRIORITY_LABEL) == ("low" if specialist else None)
        assert job["spec"].get("suspend", False) is suspended
        assert QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    specialist = next(j for j in jobs if j["metadata"]["labels"]["gsl.dev/role"] == "specialist")
    assert specialist["spec"]["template"]["spec"]["priorityClassName"] == "batch-low"


def test_without_a_queue_jobs_are_neither_labelled_nor_suspended():
    for job in every_job(server=(1, 31)):
        assert not [k for k in job["metadata"]["labels"] if k.startswith("kueue.x-k8s.io/")]
        assert "suspend" not in job["spec"]


def test_the_jobs_a_1_31_server_gets_with_a_queue_are_valid():
    for job in every_job(QUEUED, server=(1, 31)):
        kubernetes_validate.validate(job, "1.37.0", strict=True)


def test_a_workload_priority_needs_a_queue():
    role = {"workloadPriorityClassName": "low"}
    with pytest.raises(SpecError, match="specialist.workloadPriorityClassName: needs a Kueue"):
        parse_spec(merge(TINY_SPEC, {"spec": {"kubernetes": {"specialist": role}}}))
    queued = {"queueName": "spot", **role}  # the role's own queue will do
    parse_spec(merge(TINY_SPEC, {"spec": {"kubernetes": {"specialist": queued}}}))


def job(
    name: str = "generalist",
    queue: bool = True,
    suspend: bool | None = None,
    active: int | None = None,
    complete: bool = False,
) -> models.V1Job:
    """A Job as the API server returns it."""
    role, _, index = name.partition("-")
    labels = {"gsl.dev/experiment": "tiny", "gsl.dev/role": role, "gsl.dev/index": index or "0"}
    if queue:
        labels[QUEUE_LABEL] = "team-gpu"
    conditions = [models.V1JobCondition(type="Complete", status="True")] if complete else None
    return models.V1Job(
        metadata=models.V1ObjectMeta(name=f"tiny-{name}", labels=labels),
        spec=models.V1JobSpec(template=models.V1PodTemplateSpec(), suspend=suspend),
        status=models.V1JobStatus(active=active, conditions=conditions),
    )


@pytest.mark.parametrize(
    "jobs_fields, queued",
    [
        ({"suspend": True}, True),  # not admitted yet, or preempted by Kueue
        ({"suspend": True, "queue": False}, True),
        ({"suspend": False}, True),  # in a queue, and no pod yet
        ({"suspend": False, "active": 1}, False),  # admitted: its pod exists
        ({"queue": False}, False),  # no queue: an unsynced Job is no queued one
        ({"suspend": True, "complete": True}, False),  # finished
    ],
    ids=["suspended", "suspended-no-label", "no-pod-yet", "admitted", "no-queue", "finished"],
)
def test_which_jobs_wait_for_admission(jobs_fields, queued):
    assert job_queued(job(**jobs_fields)) is queued


class JobsOf:
    """A BatchV1Api stand-in that lists `jobs`."""

    def __init__(self, *jobs: models.V1Job):
        self.jobs = jobs

    def list_namespaced_job(self, namespace: str, label_selector: str):
        return models.V1JobList(items=list(self.jobs))


def test_the_backend_reports_queued_tasks_as_running_and_queued():
    """A queued Job counts as started (the controller starts no other in its place); the
    operator reports it as queued."""
    experiment = parse_spec(merge(TINY_SPEC, QUEUED))
    owner = {
        "apiVersion": "gsl.dev/v1alpha1",
        "kind": "GSLExperiment",
        "metadata": {"name": "tiny", "namespace": "ns", "uid": "u"},
    }
    batch = JobsOf(
        job("generalist", active=1),
        job("specialist-0", suspend=True),
        job("specialist-1", suspend=False),
    )
    backend = KubernetesBackend(batch, experiment, "s3://b/p/ns/tiny", owner, (1, 31))
    phases = backend.phases()
    assert set(phases.values()) == {JobPhase.RUNNING}
    assert backend.queued == [Task("specialist", 0), Task("specialist", 1)]
    assert GENERALIST not in backend.queued


def test_the_queued_condition_names_what_waits():
    assert operator.queued_condition([]).status == "False"
    condition = operator.queued_condition([GENERALIST, Task("specialist", 2)])
    assert (condition.status, condition.reason) == ("True", "WaitingForAdmission")
    assert condition.message.startswith("generalist, specialist-2: waiting for admission")


GENERALIST_AT_A_THIRD = StageProgress(Stage.GENERALIST, 1, 2000, 6000, 20.0, 40.0)
LATER = [
    StageProgress(Stage.SPECIALISTS, 1, 0, 3072, 0.0, None),
    StageProgress(Stage.FINETUNE, 1, 0, 1024, 0.0, None),
    StageProgress(Stage.BASELINE, 1, 1000, 10096, 20.0, None),
]


@pytest.mark.parametrize(
    "stage, phases, queued, summary",
    [
        (Stage.GENERALIST, {GENERALIST: JobPhase.RUNNING}, [], "33% ETA 40s"),
        (Stage.GENERALIST, {GENERALIST: JobPhase.RUNNING}, [GENERALIST], "Queued"),
        (
            Stage.GENERALIST,
            {GENERALIST: JobPhase.RUNNING, Task("baseline"): JobPhase.RUNNING},
            [GENERALIST],
            "33% ETA 40s, 1 queued",
        ),
        (Stage.REPORTING, {}, [], "14%"),  # 3000 of every stage's 20192 steps, rounded down
    ],
    ids=["running", "queued", "some-queued", "reporting"],
)
def test_the_progress_summary_says_queued_while_every_running_job_waits(
    stage, phases, queued, summary
):
    backend = SimpleNamespace(last_phases=phases, queued=queued)
    stages = [GENERALIST_AT_A_THIRD, *LATER]
    progress = operator.progress_status(stages, Status(stage, "m"), backend)
    assert progress.summary == summary
    assert (progress.steps_done, progress.steps_planned) == (2000, 6000 + 3072 + 1024)
    assert [s.stage for s in progress.stages] == [str(p.stage) for p in stages]


def test_the_status_patch_carries_the_progress_the_queued_tasks_and_their_condition():
    backend = SimpleNamespace(last_phases={GENERALIST: JobPhase.RUNNING}, queued=[GENERALIST])
    observed = ExperimentStatus().to_patch()
    patch = operator.with_progress_and_queue(
        observed, [GENERALIST_AT_A_THIRD, *LATER], Status(Stage.GENERALIST, "m"), backend, {}
    )
    assert patch["queued"] == ["generalist"] and patch["progress"]["summary"] == "Queued"
    [condition] = [c for c in patch["conditions"] if c["type"] == "Queued"]
    assert condition["status"] == "True" and condition["lastTransitionTime"]
    generalist, specialists = patch["progress"]["stages"][:2]
    assert generalist == {
        "stage": "Generalist",
        "round": 1,
        "stepsDone": 2000,
        "stepsPlanned": 6000,
        "elapsedSeconds": 20.0,
        "etaSeconds": 40.0,
    }
    assert "etaSeconds" not in specialists  # unknown: no null sent


def test_the_progress_series_go_with_the_experiment():
    from prometheus_client import REGISTRY

    operator.record_progress("team-k", "exp", [GENERALIST_AT_A_THIRD, *LATER])
    generalist = {"namespace": "team-k", "experiment": "exp", "stage": "Generalist"}
    ratio = REGISTRY.get_sample_value("gsl_operator_experiment_progress_ratio", generalist)
    assert ratio == pytest.approx(1 / 3)
    assert REGISTRY.get_sample_value("gsl_operator_experiment_eta_seconds", generalist) == 40
    baseline = {**generalist, "stage": "Baseline"}
    assert REGISTRY.get_sample_value("gsl_operator_experiment_eta_seconds", baseline) is None
    operator.forget_experiment("team-k", "exp")
    assert REGISTRY.get_sample_value("gsl_operator_experiment_progress_ratio", generalist) is None
