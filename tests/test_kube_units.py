"""Fast checks of the Kubernetes backend's pure parts: the Job and its pod's security, the
CRD schema, the status, the operator's metrics and its unknown-field check."""

import copy
import datetime
import json
from types import SimpleNamespace

import kubernetes_validate
import pytest

from gsl_k8s.backends.kubernetes import operator
from gsl_k8s.backends.kubernetes.backend import KubernetesBackend, failure_detail, server_version
from gsl_k8s.backends.kubernetes.crd import crd, openapi_schema
from gsl_k8s.backends.kubernetes.jobs import job_manifest, job_name, task_of
from gsl_k8s.backends.kubernetes.status import Condition, ExperimentStatus
from gsl_k8s.core.cost import CPUS_ENV, GPUS_ENV, Cost
from gsl_k8s.errors import EXIT_USAGE
from gsl_k8s.layout import REPORT, ROLES, Task
from gsl_k8s.orchestration.controller import JobPhase, Stage, Status
from gsl_k8s.orchestration.cost import PHASES
from gsl_k8s.orchestration.metrics_source import default_queries
from gsl_k8s.records.result import TaskResult, write_result
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from tests.conftest import TINY_SPEC, merge, write_plan_of
from tests.pod_security import violations

V1_20 = (1, 20)  # the API server of the tests (tests/kube.py)


def test_a_specialist_job_carries_the_roles_settings():
    experiment = parse_spec(
        merge(
            TINY_SPEC,
            {
                "spec": {
                    "storage": {"uri": "s3://b/p", "endpointUrl": "http://minio:9000"},
                    "kubernetes": {
                        "credentialsSecret": "s3",
                        "specialist": {
                            "resources": {"cpu": "4", "memory": "8Gi", "gpu": 1},
                            "nodeSelector": {"pool": "gpu"},
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                            "priorityClassName": "batch-low",
                            "backoffLimit": 5,
                            "activeDeadlineSeconds": 3600,
                            "image": "trainer:cuda",
                        },
                    },
                }
            },
        )
    )
    job = job_manifest(experiment, "s3://b/p/ns/tiny", Task("specialist", 3), "ns", server=V1_20)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert job["metadata"]["name"] == job_name("tiny", Task("specialist", 3)) == "tiny-specialist-3"
    assert job["metadata"]["namespace"] == "ns"
    assert task_of(job["metadata"]["labels"]) == Task("specialist", 3)
    assert job["spec"]["backoffLimit"] == 5 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert container["command"] == [
        *("gsl", "train", "--run", "s3://b/p/ns/tiny", "--role", "specialist"),
        *("--index", "3", "--namespace", "ns", "--metrics-port", "9400"),
    ]
    assert pod["terminationGracePeriodSeconds"] == 60  # the default
    assert container["image"] == "trainer:cuda"
    assert container["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": 1}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    assert {"name": "AWS_ENDPOINT_URL_S3", "value": "http://minio:9000"} in container["env"]
    # the trainer records what it holds, for its cost
    assert {"name": CPUS_ENV, "value": "4"} in container["env"]
    assert {"name": GPUS_ENV, "value": "1"} in container["env"]
    assert {"name": "GSL_S3_ADDRESSING_STYLE", "value": "path"} not in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["priorityClassName"] == "batch-low"
    assert pod["serviceAccountName"] == "gsl-trainer"
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]


def test_a_failed_jobs_log_hint_is_the_kubectl_command():
    experiment = parse_spec(TINY_SPEC)
    owner = {"apiVersion": "v", "kind": "k", "metadata": {"name": "tiny", "uid": "u"}}
    owner["metadata"]["namespace"] = "team-a"
    backend = KubernetesBackend(None, experiment, "s3://b/p/team-a/tiny", owner, (1, 20))
    hint = backend.log_hint(Task("specialist", 2, round=2))
    assert hint == "kubectl logs job/tiny-r2-specialist-2 -n team-a"


def test_openapi_conversion_is_structural():
    schema = openapi_schema(
        {
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "b": {"type": "integer", "exclusiveMinimum": 0, "default": 3, "title": "B"},
                "c": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {}}]},
                "d": {"type": "object", "additionalProperties": True},
                "e": {"$ref": "#/$defs/E"},
            },
            "$defs": {"E": {"type": "string", "enum": ["x", "y"]}},
        }
    )
    assert schema["properties"] == {
        "a": {"type": "string", "nullable": True},
        "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "default": 3},
        "c": {"x-kubernetes-preserve-unknown-fields": True},
        "d": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "e": {"type": "string", "enum": ["x", "y"]},
    }


def test_the_crd_has_a_status_subresource_and_printer_columns():
    [version] = crd()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [(c["jsonPath"], c["priority"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        (".status.stage", 0),
        (".status.round", 0),
        (".status.specialistsReady", 0),
        (".status.bestSuccess", 0),
        (".status.progress.summary", 0),
        (".metadata.creationTimestamp", 0),
        (".status.cpuHours", 1),  # -o wide
        (".status.gpuHours", 1),
        (".status.baselineCpuHours", 1),
        (".status.baselineGpuHours", 1),
    ]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status["cost"]["properties"]) == {*PHASES}
    assert set(status["cost"]["properties"]["gsl"]["properties"]) == {
        "wallSeconds",
        "cpuHours",
        "gpuHours",
    }


def test_the_status_carries_gsls_and_the_baselines_cost():
    costs = {phase: Cost() for phase in PHASES}
    costs["specialists"] = Cost.of_task(1800, cpus=4, gpus=1)
    costs["gsl"] = costs["specialists"] + Cost.of_task(3600, cpus=1, gpus=0)
    costs["baseline"] = Cost.of_task(7200, cpus=0.5, gpus=0)
    patch = ExperimentStatus(**operator.cost_status(costs)).to_patch()
    assert (patch["cpuHours"], patch["gpuHours"]) == (3.0, 0.5)
    assert (patch["baselineCpuHours"], patch["baselineGpuHours"]) == (1.0, 0.0)
    assert patch["cost"]["specialists"] == {"wallSeconds": 1800, "cpuHours": 2.0, "gpuHours": 0.5}
    assert patch["cost"]["finetune"] == {"wallSeconds": 0, "cpuHours": 0, "gpuHours": 0}


def status_of(store, evaluations, metric="success_rate") -> dict:
    """The status the operator observes of `store`, its controller having read the
    generalist's `evaluations` in its plateau metric."""
    spec = merge(TINY_SPEC, {"spec": {"generalist": {"plateau": {"metric": metric}}}})
    controller = SimpleNamespace(
        store=store, spec=parse_spec(spec).spec, evaluations=evaluations, resumed=None
    )
    backend = SimpleNamespace(last_phases={})
    result = Status(Stage.SPECIALISTS, "plan written")
    costs = {phase: Cost() for phase in PHASES}
    return operator.observed_status(
        controller, backend, result, {}, 1, operator.pruned_condition(None), costs
    )


def plateau_condition(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "GeneralistPlateaued")


def test_status_names_the_detected_plateau_the_pinned_step_and_every_rounds_best(tmp_path):
    store = open_store(str(tmp_path))
    write_plan_of(store, [[0, 1]], plateau_step=2000, pinned_step=3000, success_rate_at_pin=0.4)
    write_plan_of(store, [[1]], round_=2)
    for round_, success in ((1, 0.5), (2, 0.75)):
        final = {"eval/success_rate": success}
        write_result(store, Task("finetune", round=round_), TaskResult(1024, 0, "budget", final))
    status = status_of(store, [(1000, 0.3), (2000, 0.4)])
    assert status["plateauStep"] == 2000 and status["pinnedStep"] == 3000
    assert status["bestSuccess"] == 0.75  # round 2's finetune
    condition = plateau_condition(status)
    assert condition["status"] == "True"
    assert condition["message"] == "plateau at step 2000, step 3000 pinned"


def test_without_a_plateau_the_status_says_so_and_returns_are_no_success(tmp_path):
    store = open_store(str(tmp_path))
    write_plan_of(store, [[0, 1]], pinned_step=6000, success_rate_at_pin=0.25)
    status = status_of(store, [(6000, 57.0)], metric="return")  # evaluations in return
    assert status["plateauStep"] is None and status["pinnedStep"] == 6000
    assert status["bestSuccess"] == 0.25
    condition = plateau_condition(status)
    assert (condition["status"], condition["reason"]) == ("False", "BudgetExhausted")


def test_status_patches_never_send_empty_strings():
    status = ExperimentStatus(
        conditions=[Condition(type="Failed", status="False", reason="NoFailure")]
    )
    patch = status.to_patch()
    assert patch["conditions"] == [{"type": "Failed", "status": "False", "reason": "NoFailure"}]
    assert "" not in patch.values()


def every_job(patch: dict | None = None, server: tuple[int, int] = V1_20) -> list[dict]:
    """The Job of every task of TINY_SPEC (patched), the report's included, for an API
    server of version `server`."""
    experiment = parse_spec(merge(TINY_SPEC, patch or {}))
    tasks = [Task(role) for role in ROLES] + [Task("specialist", 2)]
    return [
        job_manifest(experiment, "s3://b/p/ns/tiny", task, "ns", server=server) for task in tasks
    ]


@pytest.mark.parametrize(
    "patch",
    [
        None,
        {
            "spec": {
                "kubernetes": {
                    "credentialsSecret": "s3",
                    "generalist": {"resources": {"gpu": 1}, "terminationGracePeriodSeconds": 300},
                }
            }
        },
    ],
    ids=["defaults", "gpu-and-secret"],
)
def test_every_jobs_pod_meets_the_restricted_pod_security_profile(patch):
    jobs = every_job(patch)
    assert {j["metadata"]["labels"]["gsl.dev/role"] for j in jobs} == set(ROLES)
    for job in jobs:
        template = job["spec"]["template"]
        assert violations(template["spec"], template["metadata"].get("annotations")) == []
        pod = template["spec"]
        [container] = pod["containers"]
        assert "runAsUser" not in pod["securityContext"]  # the image's, or the platform's
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
        assert volumes[mounts["/tmp"]] == {} and volumes[mounts["/dev/shm"]] == {"medium": "Memory"}
    if patch:
        generalist = next(j for j in jobs if j["metadata"]["name"] == "tiny-generalist")
        assert generalist["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300


def test_the_report_job_is_short_and_serves_no_metrics():
    [report] = [j for j in every_job() if j["metadata"]["labels"]["gsl.dev/role"] == "report"]
    assert report["metadata"]["name"] == job_name("tiny", REPORT) == "tiny-report"
    [container] = report["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gsl", "report", "s3://b/p/ns/tiny"]
    assert "ports" not in container
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_every_jobs_pod_pulls_with_the_specs_secrets_and_may_pin_its_user():
    """For private registries, and for clusters that want a fixed user: by default the pod
    names no user (the image's runs, or the one OpenShift assigns); a pinned user and group
    reach every pod, which still meets the profile."""
    patch = {
        "spec": {
            "kubernetes": {
                "imagePullSecrets": ["registry-a", "registry-b"],
                "podSecurityContext": {"runAsUser": 1000, "runAsGroup": 3000},
            }
        }
    }
    for job in every_job(patch):
        pod = job["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": 1000,
            "runAsGroup": 3000,
        }
        assert violations(pod) == []
    assert not [j for j in every_job() if "imagePullSecrets" in j["spec"]["template"]["spec"]]


class ServerOf:
    """A VersionApi stand-in for an API server that reports `major` and `minor`."""

    def __init__(self, major: str, minor: str):
        self.info = SimpleNamespace(major=major, minor=minor)

    def get_code(self):
        return self.info


@pytest.mark.parametrize(
    "reported, server, policy",
    [(("1", "20"), V1_20, False), (("1", "25"), (1, 25), False), (("1", "26+"), (1, 26), True)],
)
def test_jobs_have_a_pod_failure_policy_from_kubernetes_1_26(reported, server, policy):
    assert server_version(ServerOf(*reported)) == server
    assert {"podFailurePolicy" in job["spec"] for job in every_job(server=server)} == {policy}


def test_disruptions_are_no_failures_and_a_usage_error_fails_the_job():
    """The Jobs a 1.31 server gets, valid by Kubernetes 1.37's strict schemas."""
    jobs = every_job(server=(1, 31))
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert pod["restartPolicy"] == "Never"  # the only one a podFailurePolicy allows
        assert job["spec"]["podFailurePolicy"]["rules"] == [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": container["name"],
                    "operator": "In",
                    "values": [EXIT_USAGE],
                },
            },
        ]
        kubernetes_validate.validate(job, "1.37.0", strict=True)
    misspelled = copy.deepcopy(jobs[0])
    rule = misspelled["spec"]["podFailurePolicy"]["rules"][1]
    rule["onExitCode"] = rule.pop("onExitCodes")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelled, "1.37.0", strict=True)


COMPLIANT = every_job()[0]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "path, value, rule",
    [
        ("hostNetwork", True, "host namespaces: spec.hostNetwork"),
        ("hostPID", True, "host namespaces: spec.hostPID"),
        ("securityContext.runAsNonRoot", False, "non-root: spec.securityContext.runAsNonRoot"),
        ("securityContext.runAsUser", 0, "non-root user: spec.securityContext.runAsUser is 0"),
        (
            "securityContext.seccompProfile",
            {"type": "Unconfined"},
            "seccomp: spec.securityContext.seccompProfile",
        ),
        ("securityContext.seccompProfile", None, "seccomp: containers[trainer] has no"),
        ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], "sysctls"),
        ("securityContext.seLinuxOptions", {"type": "spc_t"}, "SELinux"),
        ("securityContext.windowsOptions", {"hostProcess": True}, "HostProcess"),
        ("volumes", [{"name": "h", "hostPath": {"path": "/"}}], "hostPath volumes"),
        ("volumes", [{"name": "g", "gitRepo": {"repository": "x"}}], "volume types"),
        ("containers.0.securityContext.privileged", True, "privileged"),
        ("containers.0.securityContext.allowPrivilegeEscalation", None, "privilege escalation"),
        (
            "containers.0.securityContext.capabilities",
            {"add": ["NET_ADMIN"]},
            "capabilities: containers[trainer] adds NET_ADMIN",
        ),
        (
            "containers.0.securityContext.capabilities",
            {"drop": ["NET_RAW"]},
            "capabilities: containers[trainer] does not drop ALL",
        ),
        ("containers.0.securityContext.procMount", "Unmasked", "/proc mount"),
        ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}, "AppArmor"),
        ("containers.0.ports", [{"containerPort": 80, "hostPort": 80}], "host ports"),
    ],
)
def test_the_pod_security_checker_finds_each_rule_broken(path, value, rule):
    pod = copy.deepcopy(COMPLIANT)
    *parents, leaf = path.split(".")
    node = pod
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is None:
        node.pop(leaf)
    else:
        node[leaf] = value
    found = violations(pod)
    assert any(f.startswith(rule) for f in found), found
    assert {f.split(":")[0] for f in found} == {rule.split(":")[0]}  # that rule alone


def test_an_apparmor_annotation_other_than_the_runtimes_default_is_refused():
    annotation = "container.apparmor.security.beta.kubernetes.io/trainer"
    assert violations(COMPLIANT, {annotation: "runtime/default"}) == []
    assert violations(COMPLIANT, {annotation: "unconfined"})[0].startswith("AppArmor")


def test_the_default_plateau_query_is_scoped_to_the_namespace():
    experiment = parse_spec(TINY_SPEC)
    selector = '{namespace="team-a",experiment="tiny",role="generalist"}'
    assert default_queries(experiment, "team-a") == (
        f"gsl_eval_success_ratio{selector}",
        f"gsl_eval_env_steps{selector}",
    )
    assert (
        default_queries(experiment)[1] == 'gsl_eval_env_steps{experiment="tiny",role="generalist"}'
    )


def test_operator_series_carry_the_namespace_and_go_with_the_experiment():
    from prometheus_client import REGISTRY

    def series(name: str) -> list[dict]:
        return [s.labels for m in REGISTRY.collect() for s in m.samples if s.name == name]

    operator.record_stage("team-a", "exp", "Failed")
    operator.record_stage("team-b", "exp", "Generalist")
    operator.JOBS.labels("team-a", "exp", "generalist", "failed").set(1)
    operator.count_reconcile("team-a", "ok")
    operator.record_costs("team-a", "exp", {"gsl": Cost.of_task(10, cpus=2, gpus=1)})
    failed = {"namespace": "team-a", "experiment": "exp", "stage": "Failed"}
    assert REGISTRY.get_sample_value("gsl_operator_experiment_stage", failed) == 1
    reconciles = {s["result"] for s in series("gsl_operator_reconciles_total")}
    assert reconciles == {"ok", "error", "invalid"}  # the others exist, at 0
    gsl = {"namespace": "team-a", "experiment": "exp", "phase": "gsl"}
    assert REGISTRY.get_sample_value("gsl_operator_experiment_cpu_seconds", gsl) == 20
    assert REGISTRY.get_sample_value("gsl_operator_experiment_gpu_seconds", gsl) == 10

    operator.forget_experiment("team-a", "exp")

    def of_team(name: str, team: str) -> list[dict]:  # other tests' series may be there too
        return [s for s in series(name) if s["namespace"] == team]

    assert of_team("gsl_operator_experiment_stage", "team-b")
    for name in ("stage", "cpu_seconds", "gpu_seconds"):
        assert not of_team(f"gsl_operator_experiment_{name}", "team-a"), name
    assert not of_team("gsl_operator_jobs", "team-a")
    operator.forget_experiment("team-b", "exp")


def test_a_job_waiting_for_admission_counts_as_queued_not_running():
    from prometheus_client import REGISTRY

    first, second = Task("specialist", 0), Task("specialist", 1)
    backend = SimpleNamespace(
        last_phases={first: JobPhase.RUNNING, second: JobPhase.RUNNING}, queued=[second]
    )
    status = Status(Stage.SPECIALISTS, "training", round=1)
    operator.record_observed("team-q", "exp", status, backend, {})

    def jobs(state: str) -> float | None:
        labels = {"namespace": "team-q", "experiment": "exp", "role": "specialist"}
        return REGISTRY.get_sample_value("gsl_operator_jobs", {**labels, "state": state})

    assert (jobs("running"), jobs("queued"), jobs("failed")) == (1, 1, 0)
    operator.forget_experiment("team-q", "exp")
    assert jobs("queued") is None


@pytest.mark.parametrize(
    "applied, fields, status",
    [
        (merge(TINY_SPEC, {"spec": {"trainer": {"numEnv": 4}, "seeed": 1}}), 2, "True"),
        (merge(TINY_SPEC, {"spec": {"env": {"kwargs": {"anything": 1}}}}), 0, "False"),
        (merge(TINY_SPEC, {"status": {"stage": "Generalist"}}), 0, "False"),
        (None, None, "Unknown"),
    ],
    ids=["typos", "free-form-kwargs", "status", "no-annotation"],
)
def test_unknown_keys_in_the_last_applied_configuration_are_named(applied, fields, status):
    annotations = {} if applied is None else {operator.LAST_APPLIED: json.dumps(applied)}
    found = operator.pruned_fields({"annotations": annotations})
    assert (found if found is None else len(found)) == fields
    condition = operator.pruned_condition(found)
    assert condition.type == "FieldsPruned" and condition.status == status
    if fields:
        assert found == ["spec.trainer.numEnv", "spec.seeed"]
        assert condition.message.startswith("spec.trainer.numEnv, spec.seeed: unknown field")


def test_on_the_host_network_trainers_may_serve_no_metrics():
    """Trainers sharing a node's network serve no metrics with metricsPort 0; host network
    is the one setting outside the restricted profile."""
    experiment = parse_spec(merge(TINY_SPEC, {"spec": {"kubernetes": {"metricsPort": 0}}}))
    job = job_manifest(
        experiment, "s3://b/p/ns/tiny", Task("generalist"), "ns", server=V1_20, host_network=True
    )
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["hostNetwork"] is True
    assert container["command"][-2:] == ["--metrics-port", "0"] and "ports" not in container
    assert violations(pod) == ["host namespaces: spec.hostNetwork is true"]


class PodsThatEnded:
    """A CoreV1Api stand-in whose Job pods' containers ended with `reasons`, in turn."""

    def __init__(self, *reasons: str):
        self.reasons = reasons
        self.selectors: list[str] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str):
        from kubernetes.client import models

        self.selectors.append(label_selector)
        pods = []
        for i, reason in enumerate(self.reasons):
            ended = models.V1ContainerStateTerminated(exit_code=137, reason=reason)
            container = models.V1ContainerStatus(
                name="trainer",
                image="t",
                image_id="t",
                ready=False,
                restart_count=0,
                state=models.V1ContainerState(terminated=ended),
                last_state=models.V1ContainerState(),
            )
            created = datetime.datetime(2026, 1, 1, 0, 0, len(self.reasons) - i)  # newest first
            meta = models.V1ObjectMeta(name=f"pod-{i}", creation_timestamp=created)
            status = models.V1PodStatus(container_statuses=[container])
            pods.append(models.V1Pod(metadata=meta, status=status))
        return models.V1PodList(items=pods)


def test_a_failed_jobs_detail_names_oomkilled_and_the_memory_limit():
    patch = {"spec": {"kubernetes": {"specialist": {"resources": {"memory": "300Mi"}}}}}
    experiment = parse_spec(merge(TINY_SPEC, patch))
    task = Task("specialist", 1)
    core = PodsThatEnded("OOMKilled", "Error")  # the newest pod, listed first, ran out
    assert failure_detail(core, experiment, "ns", task) == (
        "OOMKilled: the trainer exceeded its memory limit of 300Mi "
        "(spec.kubernetes.specialist.resources.memory)"
    )
    assert core.selectors == ["job-name=tiny-specialist-1"]
    assert failure_detail(PodsThatEnded("Error"), experiment, "ns", task) == (
        "its last pod ended with Error"
    )
    assert failure_detail(PodsThatEnded(), experiment, "ns", task).startswith("no pod of its Job")
