"""The Job that runs one task of an experiment: `gsl train` in the trainer image."""

from __future__ import annotations

from typing import Any

from gsl_k8s.layout import Task, train_command
from gsl_k8s.spec import GSLExperiment, RoleJobSpec
from gsl_k8s.store.s3 import S3Options

EXPERIMENT_LABEL = "gsl.dev/experiment"
ROLE_LABEL = "gsl.dev/role"
INDEX_LABEL = "gsl.dev/index"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gsl-operator"}


def job_name(experiment: str, task: Task) -> str:
    """Deterministic: `<experiment>-generalist`, `<experiment>-specialist-3`, ..."""
    return f"{experiment}-{task.name}"


def task_of(labels: dict[str, str]) -> Task:
    """The task a Job runs, from its labels."""
    return Task(labels[ROLE_LABEL], int(labels[INDEX_LABEL]))  # type: ignore[arg-type]


def storage_env(experiment: GSLExperiment) -> dict[str, str]:
    """The S3 settings of the spec, as the environment `gsl train` reads them."""
    return S3Options(**experiment.spec.storage.s3_settings()).to_env()


def _role(experiment: GSLExperiment, task: Task) -> RoleJobSpec:
    return getattr(experiment.spec.kubernetes, task.role)


def job_manifest(experiment: GSLExperiment, run_uri: str, task: Task) -> dict[str, Any]:
    """The batch/v1 Job for `task` (owner references are added by the caller)."""
    k8s = experiment.spec.kubernetes
    role = _role(experiment, task)
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "gsl-trainer",
        EXPERIMENT_LABEL: experiment.name,
        ROLE_LABEL: task.role,
        INDEX_LABEL: str(task.index),
    }
    requests = {"cpu": role.resources.cpu, "memory": role.resources.memory}
    limits: dict[str, Any] = {"memory": role.resources.memory}
    if role.resources.gpu:
        limits["nvidia.com/gpu"] = role.resources.gpu
    container: dict[str, Any] = {
        "name": "trainer",
        "image": role.image or k8s.image,
        "command": [*train_command(run_uri, task), "--metrics-port", str(k8s.metrics_port)],
        "env": [{"name": k, "value": v} for k, v in sorted(storage_env(experiment).items())],
        "ports": [{"name": "metrics", "containerPort": k8s.metrics_port}],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {"allowPrivilegeEscalation": False},
        # PyTorch and vectorized envs share memory through /dev/shm (64 MiB by default).
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if k8s.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": k8s.credentials_secret}}]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": k8s.service_account_name,
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
        "nodeSelector": role.node_selector,
        "tolerations": role.tolerations,
    }
    if role.affinity:
        pod["affinity"] = role.affinity
    if role.priority_class_name:
        pod["priorityClassName"] = role.priority_class_name
    job_spec: dict[str, Any] = {
        "backoffLimit": role.backoff_limit,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if role.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = role.active_deadline_seconds
    if role.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = role.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(experiment.name, task), "labels": labels},
        "spec": job_spec,
    }
