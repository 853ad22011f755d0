"""The Job that runs one task of an experiment, `gsl train` (or `gsl report`) in the trainer
image, with a pod that meets the Pod Security Standards' "restricted" profile: non-root
(the image's user unless the spec leaves the user to the platform), RuntimeDefault seccomp,
no capabilities, no privilege escalation, a read-only root filesystem with emptyDirs at /tmp
and /dev/shm. On clusters without a pod network the operator may run them in the node's
network namespace (`host_network`), which the baseline profile forbids.

Where the API server has Job `podFailurePolicy` (Kubernetes 1.26+), a pod that a disruption
ended (preemption, eviction, a node drain) does not count against the Job's backoffLimit,
and one that ended with the usage-error exit code fails the Job at once: no retry mends it.

With a Kueue queue (`queueName`), every Job carries Kueue's queue label (and a role's
WorkloadPriorityClass label) and, where the server has Job `suspend` (on by default from
Kubernetes 1.22), is created suspended: Kueue admits it by quota and unsuspends it. The
operator never unsuspends a Job itself."""

from __future__ import annotations

from typing import Any

from gsl_k8s.core.cost import CPUS_ENV, GPUS_ENV
from gsl_k8s.errors import EXIT_USAGE
from gsl_k8s.layout import Task, task_command
from gsl_k8s.spec import GSLExperiment, KubernetesSpec, RoleJobSpec
from gsl_k8s.store.s3 import S3Options

EXPERIMENT_LABEL = "gsl.dev/experiment"
ROLE_LABEL = "gsl.dev/role"
INDEX_LABEL = "gsl.dev/index"
ROUND_LABEL = "gsl.dev/round"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gsl-operator"}
POD_FAILURE_POLICY_SINCE = (1, 26)  # Kubernetes version: beta, and on by default
SUSPEND_SINCE = (1, 22)  # Job suspend: alpha (off) in 1.21, beta and on by default in 1.22
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
WORKLOAD_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


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


def pod_security_context(k8s: KubernetesSpec) -> dict[str, Any]:
    """The pod's security context: the restricted profile's, with the spec's user and group
    where it names them."""
    ids = k8s.pod_security_context
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if ids.run_as_user is not None:
        context["runAsUser"] = ids.run_as_user
    if ids.run_as_group is not None:
        context["runAsGroup"] = ids.run_as_group
    return context


def queue_name(k8s: KubernetesSpec, role: RoleJobSpec) -> str | None:
    """The Kueue LocalQueue of a role's Jobs: the role's own, else the experiment's."""
    return role.queue_name or k8s.queue_name


def kueue_labels(k8s: KubernetesSpec, role: RoleJobSpec) -> dict[str, str]:
    """Kueue's labels for a role's Jobs: its queue and, with one, its workload priority."""
    queue = queue_name(k8s, role)
    if queue is None:
        return {}
    labels = {QUEUE_LABEL: queue}
    if role.workload_priority_class_name:
        labels[WORKLOAD_PRIORITY_LABEL] = role.workload_priority_class_name
    return labels


def pod_failure_policy(container: str) -> dict[str, Any]:
    """Disruptions do not count as failures; the usage-error exit code fails the Job."""
    usage_error = {"containerName": container, "operator": "In", "values": [EXIT_USAGE]}
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": usage_error},
        ]
    }


def container_spec(
    experiment: GSLExperiment, run_uri: str, task: Task, namespace: str
) -> dict[str, Any]:
    """The task's container: its command, image, environment and resources."""
    k8s = experiment.spec.kubernetes
    role = _role(experiment, task)
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
    return container


def pod_spec(
    k8s: KubernetesSpec, role: RoleJobSpec, container: dict[str, Any], host_network: bool
) -> dict[str, Any]:
    """The pod around `container`: never restarted in place, with the role's scheduling."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": role.termination_grace_period_seconds,
        "serviceAccountName": k8s.service_account_name,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(k8s),
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
        "nodeSelector": role.node_selector,
        "tolerations": role.tolerations,
    }
    if k8s.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in k8s.image_pull_secrets]
    if host_network:
        pod["hostNetwork"] = True
    if role.affinity:
        pod["affinity"] = role.affinity
    if role.priority_class_name:
        pod["priorityClassName"] = role.priority_class_name
    return pod


def job_manifest(
    experiment: GSLExperiment,
    run_uri: str,
    task: Task,
    namespace: str,
    *,
    server: tuple[int, int],
    host_network: bool = False,
) -> dict[str, Any]:
    """The batch/v1 Job for `task` in `namespace` (owner references are added by the
    caller), for an API server of version `server` (major, minor); with `host_network`,
    its pod uses the node's network namespace."""
    role = _role(experiment, task)
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "gsl-trainer",
        EXPERIMENT_LABEL: experiment.name,
        ROLE_LABEL: task.role,
        INDEX_LABEL: str(task.index),
        ROUND_LABEL: str(task.round),
    }
    container = container_spec(experiment, run_uri, task, namespace)
    pod = pod_spec(experiment.spec.kubernetes, role, container, host_network)
    job_spec: dict[str, Any] = {
        "backoffLimit": role.backoff_limit,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if server >= POD_FAILURE_POLICY_SINCE:  # valid with restartPolicy Never only
        job_spec["podFailurePolicy"] = pod_failure_policy(container["name"])
    if role.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = role.active_deadline_seconds
    if role.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = role.ttl_seconds_after_finished
    queue = kueue_labels(experiment.spec.kubernetes, role)
    if queue and server >= SUSPEND_SINCE:  # Kueue unsuspends it once admitted
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(experiment.name, task),
            "namespace": namespace,
            "labels": {**labels, **queue},
        },
        "spec": job_spec,
    }
