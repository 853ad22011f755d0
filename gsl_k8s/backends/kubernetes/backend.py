"""Tasks as Jobs: the `Backend` the shared controller drives on Kubernetes."""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes.client import ApiException, BatchV1Api, CoreV1Api, VersionApi

from gsl_k8s.backends.kubernetes.jobs import (
    EXPERIMENT_LABEL,
    QUEUE_LABEL,
    job_manifest,
    job_name,
    task_of,
)
from gsl_k8s.errors import GSLError
from gsl_k8s.layout import Task
from gsl_k8s.orchestration.controller import JobPhase
from gsl_k8s.spec import GSLExperiment

TOO_MANY_REQUESTS = 429
SERVER_ERROR = 500


def api_error(err: ApiException) -> GSLError:
    """A Kubernetes API error in one line, e.g. `Kubernetes API: 409 AlreadyExists: ...`
    (the Status object's reason and message where the body has them); transient for
    throttling and server errors."""
    try:
        body = json.loads(err.body or "")
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    message = f"Kubernetes API: {err.status} {body.get('reason') or err.reason}"
    if body.get("message"):
        message += f": {body['message']}"
    status = err.status or 0
    return GSLError(message, transient=status >= SERVER_ERROR or status == TOO_MANY_REQUESTS)


def server_version(api: VersionApi) -> tuple[int, int]:
    """The API server's version as (major, minor); a provider's minor such as "27+" is 27."""
    info = api.get_code()
    return int(info.major), int(re.match(r"\d+", info.minor)[0])


def job_phase(job: Any) -> JobPhase:
    """Succeeded or Failed from the Job's conditions; Running until then."""
    for condition in job.status.conditions or []:
        if condition.status == "True" and condition.type == "Complete":
            return JobPhase.SUCCEEDED
        if condition.status == "True" and condition.type == "Failed":
            return JobPhase.FAILED
    return JobPhase.RUNNING


def job_queued(job: Any) -> bool:
    """Whether a Job waits for admission rather than runs: suspended (Kueue unsuspends it
    once its queue admits it), or in a Kueue queue with no pod yet. Neither is stuck."""
    if job_phase(job) is not JobPhase.RUNNING:
        return False
    if job.spec.suspend:
        return True
    pods = job.status.active or job.status.succeeded or job.status.failed
    return QUEUE_LABEL in (job.metadata.labels or {}) and not pods


def stop_jobs(batch: BatchV1Api, namespace: str, experiment: str) -> list[str]:
    """Delete the experiment's Jobs that still run; returns their names. Foreground
    deletion: each Job stays until its Pods have had their grace period to checkpoint, so
    that a Job created again later cannot run beside them. Finished Jobs stay, with their
    Pods' logs, until the experiment is deleted."""
    jobs = batch.list_namespaced_job(namespace, label_selector=f"{EXPERIMENT_LABEL}={experiment}")
    stopped = []
    for job in jobs.items:
        if job_phase(job) is not JobPhase.RUNNING or job.metadata.deletion_timestamp:
            continue
        try:
            batch.delete_namespaced_job(
                job.metadata.name, namespace, propagation_policy="Foreground"
            )
        except ApiException as err:
            if err.status != 404:  # gone meanwhile
                raise
        stopped.append(job.metadata.name)
    return stopped


def termination_reasons(core: CoreV1Api, namespace: str, job: str) -> list[str]:
    """Why the containers of a Job's pods ended, as the kubelet says (`OOMKilled`, `Error`,
    ...), oldest pod first."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    reasons = []
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        for container in pod.status.container_statuses or []:
            ended = container.state.terminated or container.last_state.terminated
            if ended is not None and ended.reason:
                reasons.append(ended.reason)
    return reasons


def failure_detail(core: CoreV1Api, experiment: GSLExperiment, namespace: str, task: Task) -> str:
    """What went wrong with a failed task's Job, for its status message: its last pod's
    termination reason, with the memory limit where that was exceeded."""
    reasons = termination_reasons(core, namespace, job_name(experiment.name, task))
    if not reasons:
        return "no pod of its Job ran to an end (see the Job's events)"
    if reasons[-1] == "OOMKilled":
        memory = getattr(experiment.spec.kubernetes, task.role).resources.memory
        return (
            f"OOMKilled: the trainer exceeded its memory limit of {memory} "
            f"(spec.kubernetes.{task.role}.resources.memory)"
        )
    return f"its last pod ended with {reasons[-1]}"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller reference to the experiment object, so that deleting it deletes its Jobs."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class KubernetesBackend:
    """One Job per task, named deterministically and owned by the experiment object, in the
    form the API server of version `server` (major, minor) understands.

    `requests` counts API calls, for the scale benchmark; `queued` lists the tasks whose Jobs
    wait for admission (`job_queued`). With `host_network`, the pods use the node's network
    namespace (clusters without a pod network).
    """

    def __init__(
        self,
        batch: BatchV1Api,
        experiment: GSLExperiment,
        run_uri: str,
        owner: dict[str, Any],
        server: tuple[int, int],
        host_network: bool = False,
    ):
        self.batch = batch
        self.server = server
        self.host_network = host_network
        self.experiment = experiment
        self.run_uri = run_uri
        self.namespace = owner["metadata"]["namespace"]
        self.owner_reference = owner_reference(owner)
        self.last_phases: dict[Task, JobPhase] = {}
        self.queued: list[Task] = []  # Running by their phase, but waiting for admission
        self.requests = 0

    def phases(self) -> dict[Task, JobPhase]:
        """See `Backend.phases`: one list call for all of the experiment's Jobs."""
        self.requests += 1
        jobs = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"{EXPERIMENT_LABEL}={self.experiment.name}"
        )
        self.last_phases = {task_of(job.metadata.labels): job_phase(job) for job in jobs.items}
        self.queued = sorted(task_of(job.metadata.labels) for job in jobs.items if job_queued(job))
        return self.last_phases

    def start(self, task: Task) -> None:
        """See `Backend.start`: create the Job; one that already exists is left alone."""
        manifest = job_manifest(
            self.experiment,
            self.run_uri,
            task,
            self.namespace,
            server=self.server,
            host_network=self.host_network,
        )
        manifest["metadata"]["ownerReferences"] = [self.owner_reference]
        self.requests += 1
        try:
            self.batch.create_namespaced_job(self.namespace, manifest)
        except ApiException as err:
            if err.status != 409:  # AlreadyExists: created by an earlier reconcile
                raise

    def log_hint(self, task: Task) -> str:
        """See `Backend.log_hint`: the kubectl command that prints the Job's log."""
        return f"kubectl logs job/{job_name(self.experiment.name, task)} -n {self.namespace}"

    def stop(self) -> None:
        """See `Backend.stop`: `stop_jobs`."""
        self.requests += 1
        self.requests += len(stop_jobs(self.batch, self.namespace, self.experiment.name))
