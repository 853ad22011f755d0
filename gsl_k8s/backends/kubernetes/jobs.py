"""The Job that runs one task of an experiment, `gsl train` (or `gsl report`) in the trainer
image, with a pod that meets the Pod Security Standards' "restricted" profile: non-root
(the image's uid 65532), RuntimeDefault seccomp, no capabilities, no privilege escalation,
a read-only root filesystem with emptyDirs at /tmp and /dev/shm. On clusters without a pod
network the operator may run them in the node's network namespace (`host_network`), which
the baseline profile forbids."""

from __future__ import annotations

from typing import Any

from gsl_k8s.core.cost import CPUS_ENV, GPUS_ENV
from gsl_k8s.layout import Task, task_command
from gsl_k8s.spec import GSLExperiment, RoleJobSpec
from gsl_k8s.store.s3 import S3Options

EXPERIMENT_LABEL = "gsl.dev/experiment"
ROLE_LABEL = "gsl.dev/role"
INDEX_LABEL = "gsl.dev/index"
ROUND_LABEL = "gsl.dev/round"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gsl-operator"}
TRAINER_UID = 65532  # the trainer image's user


def job_name(experiment: str, task: Task) -> str:
    """Deterministic: `<experiment>-generalist`, `<experiment>-specialist-3`,
    `<experiment>-r2-finetune`, ..."""
    return f"{experiment}-{task.name}"


def task_of(labels: dict[str, str]) -> Task:
    """The task a Job runs, from its labels."""
    round_ = int(labels.get(ROUND_LABEL, "1"))
    return Task(labels[ROLE_LABEL], int(labels[INDEX_LABEL]), round_)  # type: ignore[arg-type]


def storage_env(experiment: GSLExperiment) -> dict[str, str]:
    """The S3 settings of the spec, as the environment `gsl train` reads them."""
    return S3Options(**experiment.spec.storage.s3_settings()).to_env()


def _role(experiment: GSLExperiment, task: Task) -> RoleJobSpec:
    return getattr(experiment.spec.kubernetes, task.role)


def job_manifest(
    experiment: GSLExperiment, run_uri: str, task: Task, namespace: str, host_network: bool = False
) -> dict[str, Any]:
    """The batch/v1 Job for `task` in `namespace` (owner references are added by the
    caller); with `host_network`, its pod uses the node's network namespace."""
    k8s = experiment.spec.kubernetes
    role = _role(experiment, task)
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "gsl-trainer",
        EXPERIMENT_LABEL: experiment.name,
        ROLE_LABEL: task.role,
        INDEX_LABEL: str(task.index),
        ROUND_LABEL: str(task.round),
    }
    requests = {"cpu": role.resources.cpu, "memory": role.resources.memory}
    limits: dict[str, Any] = {"memory": role.resources.memory}
    if role.resources.gpu:
        limits["nvidia.com/gpu"] = role.resources.gpu
    env = storage_env(experiment)
    if task.trains:  # what it holds, for its cost
        env |= {CPUS_ENV: role.resources.cpu, GPUS_ENV: str(role.resources.gpu)}
    container: dict[str, Any] = {
        "name": "trainer" if task.trains else task.role,
        "image": role.image or k8s.image,
        "command": task_command(run_uri, task),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # PyTorch and vectorized envs share memory through /dev/shm (64 MiB by default).
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    if task.trains:
        container["command"] += ["--namespace", namespace, "--metrics-port", str(k8s.metrics_port)]
        if k8s.metrics_port:
            container["ports"] = [{"name": "metrics", "containerPort": k8s.metrics_port}]
    if k8s.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": k8s.credentials_secret}}]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": role.termination_grace_period_seconds,
        "serviceAccountName": k8s.service_account_name,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
        "nodeSelector": role.node_selector,
        "tolerations": role.tolerations,
    }
    if host_network:
        pod["hostNetwork"] = True
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
        "metadata": {
            "name": job_name(experiment.name, task),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": job_spec,
    }
