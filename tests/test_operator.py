"""The operator against a real kube-apiserver, with real trainers run by a stand-in kubelet."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gsl_k8s.backends.kubernetes import operator
from gsl_k8s.backends.kubernetes.backend import KubernetesBackend, server_version
from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION, crd_yaml
from gsl_k8s.layout import Task
from tests.conftest import TINY_SPEC, gsl, merge
from tests.kube import BIN, CREDENTIALS, Operator
from tests.servers import free_port


@pytest.fixture
def namespace(kube_namespace, cluster):
    """`kube_namespace` with the trainers' ServiceAccount and the operator running."""
    ns = kube_namespace
    kubeconfig, _ = cluster
    ns.core.create_namespaced_service_account(ns.name, {"metadata": {"name": "gsl-trainer"}})
    ns.operator = Operator(
        kubeconfig, ns.name, ns.workdir / "operator.log", CREDENTIALS, metrics_port=free_port()
    )
    ns.operator.start()
    yield ns
    ns.operator.kill()


def test_crd_manifest_is_the_generated_one():
    assert Path("manifests/crd.yaml").read_text() == crd_yaml(), "run: gsl crd > manifests/crd.yaml"


def test_lifecycle_with_an_operator_crash_in_every_stage(namespace):
    """generalist -> plateau -> 3 specialist Jobs -> finetune -> baseline -> Succeeded, with
    the operator killed and restarted at every stage; no Job is ever created twice. The baseline
    runs after the finetune so that every stage lasts long enough to crash in."""
    ns = namespace
    spec = {"specialists": {"parallelism": 3}, "baseline": {"mode": "after"}}
    ns.create(ns.experiment("life", {"spec": spec}))
    seen = []
    deadline = time.time() + 400
    while time.time() < deadline:
        stage = ns.get("life").get("status", {}).get("stage")
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
            if stage in ("Succeeded", "Failed"):
                break
            ns.operator.kill()  # a crash in this stage...
            ns.operator.start()  # ...and a restart
        time.sleep(0.3)
    assert seen[-1] == "Succeeded", (seen, (ns.workdir / "operator.log").read_text()[-4000:])
    assert {"Generalist", "Specialists", "Finetune", "Baseline", "Reporting"} <= set(seen)
    assert ns.operator.starts >= 5

    status = ns.get("life")["status"]
    jobs = ns.jobs("life")
    names = sorted(j.metadata.name for j in jobs)
    assert names == sorted(
        ["life-generalist", "life-finetune", "life-baseline", "life-report"]
        + [f"life-specialist-{i}" for i in range(3)]
    )
    assert all(j.status.succeeded == 1 for j in jobs)
    assert len(ns.kubelet.started) == 7  # one pod per Job: nothing ran twice
    owner = ns.get("life")["metadata"]["uid"]
    assert all(j.metadata.owner_references[0].uid == owner for j in jobs)
    assert status["specialistsReady"] == "3/3" and status["specialists"]["failed"] == 0
    assert status["observedGeneration"] == ns.get("life")["metadata"]["generation"]
    for kind in ("GeneralistPlateaued", "SpecialistsComplete", "Succeeded"):
        assert ns.condition(status, kind)["status"] == "True", kind
    assert ns.condition(status, "Failed")["status"] == "False"
    assert status["plateauCheckpoint"].endswith(f"{ns.name}/life/plateau/checkpoint.pt")
    assert 0 <= status["bestSuccess"] <= 1
    # each trainer held its pod's request (1 CPU, no GPU) for its wall time
    assert status["cpuHours"] > 0 and status["baselineCpuHours"] > 0
    assert status["gpuHours"] == status["baselineGpuHours"] == 0
    phases = sum(status["cost"][p]["cpuHours"] for p in ("generalist", "specialists", "finetune"))
    # each phase is rounded to 1e-6 CPU-hours, so their sum may differ from the total's
    assert (
        status["cpuHours"] == status["cost"]["gsl"]["cpuHours"] == pytest.approx(phases, abs=1e-5)
    )
    reasons = {
        e.reason
        for e in ns.core.list_namespaced_event(ns.name).items
        if e.involved_object.name == "life"
    }
    assert {"Specialists", "Finetune", "Succeeded"} <= reasons

    def kubectl_get(*flags: str) -> list[str]:
        return subprocess.run(
            [str(BIN / "kubectl"), "get", "gsl", "-n", ns.name, *flags],
            env={"KUBECONFIG": ns.operator.env["KUBECONFIG"], "HOME": str(ns.workdir)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")

    table = kubectl_get()
    assert table[0].split()[:6] == ["NAME", "STAGE", "ROUND", "SPECIALISTS", "BEST", "SUCCESS"]
    assert table[1].split()[:4] == ["life", "Succeeded", "1", "3/3"]
    assert "CPU-H" not in table[0] and "BASELINE CPU-H" in kubectl_get("-o", "wide")[0]

    jobs = operator_metrics(ns, "gsl_operator_jobs", namespace=ns.name, experiment="life")
    assert jobs[("specialist", "succeeded")] == 3 and jobs[("report", "succeeded")] == 1
    reconciles = operator_metrics(ns, "gsl_operator_reconciles_total", namespace=ns.name)
    assert reconciles[("ok",)] >= 1
    assert operator_metrics(ns, "gsl_operator_stage_duration_seconds_count", namespace=ns.name)
    cpu = operator_metrics(ns, "gsl_operator_experiment_cpu_seconds", experiment="life")
    assert cpu[(ns.name, "gsl")] == pytest.approx(status["cpuHours"] * 3600, rel=1e-3)

    # Deleting the experiment deletes its Jobs and their Pods (garbage collection).
    ns.custom.delete_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, "life")
    deadline = time.time() + 60
    while (
        ns.jobs("life") or ns.core.list_namespaced_pod(ns.name).items
    ) and time.time() < deadline:
        time.sleep(0.5)
    assert not ns.jobs("life") and not ns.core.list_namespaced_pod(ns.name).items


def test_failed_specialists_and_invalid_specs(namespace):
    """A specialist whose Pods keep failing: with minSucceeded the experiment goes on,
    without it the experiment fails. A spec the server accepts but the schema's cross-field
    rules reject fails with InvalidSpec; editing a running experiment's spec, SpecChanged."""
    ns = namespace
    ns.kubelet.fail |= {"tolerant-specialist-1", "strict-specialist-1"}
    failing = {"kubernetes": {"specialist": {"backoffLimit": 1}}, "baseline": {"enabled": False}}
    ns.create(ns.experiment("tolerant", {"spec": {**failing, "specialists": {"minSucceeded": 2}}}))
    ns.create(ns.experiment("strict", {"spec": failing}))
    ns.create(ns.experiment("invalid", {"spec": {"specialists": {"count": 9}}}))
    # Two steps reach no goal: every specialist records no demonstration.
    unreachable = {"env": {"kwargs": {"horizon": 2}}, "demos": {"successOnly": True}}
    ns.create(ns.experiment("nodemos", {"spec": {**unreachable, "baseline": {"enabled": False}}}))

    ns.create(ns.experiment("edited", {"spec": {"generalist": {"envSteps": 10**8}}}))
    wait_for_pod(ns, "edited-generalist")
    ns.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns.name, PLURAL, "edited", {"spec": {"seed": 99}}
    )
    edited = ns.wait_for_stage("edited", {"Failed"}, timeout=60)
    assert ns.condition(edited, "Failed")["reason"] == "SpecChanged"
    assert edited["observedGeneration"] == 2
    wait_until_gone(ns, "edited")  # the old spec's generalist is stopped

    invalid = ns.wait_for_stage("invalid", {"Failed"}, timeout=60)
    assert ns.condition(invalid, "Failed")["reason"] == "InvalidSpec"
    assert "spec.specialists.count: 9 specialists for 6 variations" in invalid["message"]
    assert not ns.jobs("invalid")

    strict = ns.wait_for_stage("strict", {"Failed", "Succeeded"})
    assert strict["stage"] == "Failed"
    assert "strict-specialist-1" not in strict["message"]  # tasks are named, not Jobs
    assert "specialist-1 failed" in strict["message"]
    assert ns.condition(strict, "Failed")["status"] == "True"

    nodemos = ns.wait_for_stage("nodemos", {"Failed", "Succeeded"})
    assert nodemos["stage"] == "Failed"
    assert nodemos["message"].startswith("no specialist recorded a demonstration")
    assert nodemos["demoShortfall"].startswith("fewer demos than asked: specialist-0 kept 0 of 4")
    warnings = [
        e.message
        for e in ns.core.list_namespaced_event(ns.name).items
        if e.involved_object.name == "nodemos" and e.reason == "FewDemos"
    ]
    assert warnings == [nodemos["demoShortfall"]]
    assert not [j for j in ns.jobs("nodemos") if j.metadata.name == "nodemos-finetune"]

    tolerant = ns.wait_for_stage("tolerant", {"Failed", "Succeeded"})
    assert tolerant["stage"] == "Succeeded", tolerant
    assert tolerant["specialists"] == {"total": 3, "succeeded": 2, "failed": 1, "running": 0}
    complete = ns.condition(tolerant, "SpecialistsComplete")
    assert complete["status"] == "True" and complete["reason"] == "SomeFailed"
    pods = [p for p in ns.kubelet.started if p.startswith("tolerant-specialist-1")]
    assert len(pods) == 2  # backoffLimit 1: the Job controller retried once


def test_errors_that_last_fail_the_experiment_with_their_reason(namespace, refusing_prometheus):
    """A missing bucket and a plateau query Prometheus refuses: neither goes away on a retry,
    so the operator marks the experiment Failed, naming the error, instead of retrying it
    forever."""
    ns = namespace
    nobucket = {"storage": {"uri": "s3://no-such-bucket/runs"}}
    ns.create(ns.experiment("nobucket", {"spec": nobucket}))
    prometheus = {"url": refusing_prometheus, "query": "up{", "stepQuery": "up"}
    refused = {"generalist": {"metricsSource": {"prometheus": prometheus}}}
    ns.create(ns.experiment("refused", {"spec": {**refused, "baseline": {"enabled": False}}}))

    status = ns.wait_for_stage("nobucket", {"Failed"}, timeout=60)
    assert ns.condition(status, "Failed")["reason"] == "StoreError"
    assert status["message"].endswith("bucket 'no-such-bucket' does not exist")
    status = ns.wait_for_stage("refused", {"Failed"}, timeout=60)
    assert ns.condition(status, "Failed")["reason"] == "MetricsSourceError"
    assert (
        status["message"] == f"Prometheus {refusing_prometheus} rejected 'up{{': 1:5: parse error"
    )
    warnings = {
        (e.involved_object.name, e.reason)
        for e in ns.core.list_namespaced_event(ns.name).items
        if e.type == "Warning"
    }
    assert {("nobucket", "StoreError"), ("refused", "MetricsSourceError")} <= warnings
    assert not ns.jobs("refused")  # the plateau query comes before any Job


def test_an_experiment_created_again_resumes_from_its_store(namespace):
    """An experiment deleted mid-specialists (its Jobs go with it) and created again with
    the same spec (a new object, a new uid) picks up from the store: its status and a
    `Resumed` Event say what the store held, and only the unfinished tasks get Jobs."""
    ns = namespace
    slow = {"parallelism": 1, "envSteps": 4096}
    body = ns.experiment("again", {"spec": {"specialists": slow, "baseline": {"enabled": False}}})
    first = ns.create(body)
    deadline = time.time() + 300
    while "again-specialist-1" not in {j.metadata.name for j in ns.jobs("again")}:
        assert time.time() < deadline, ns.get("again").get("status")
        time.sleep(0.3)
    ns.custom.delete_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, "again")
    wait_until_gone(ns, "again", timeout=60)
    while any(
        o["metadata"]["name"] == "again"
        for o in ns.custom.list_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL)["items"]
    ):
        assert time.time() < deadline, "the deleted experiment is still there"
        time.sleep(0.2)
    second = ns.create(body)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    status = ns.wait_for_stage("again", {"Succeeded", "Failed"})
    assert status["stage"] == "Succeeded", status
    run = f"s3://{ns.name}/runs/{ns.name}/again"
    held = f"resuming from {run}: generalist done, 1/3 specialists done"
    assert status["resumed"] == held, status
    events = ns.core.list_namespaced_event(ns.name, field_selector="reason=Resumed").items
    assert {e.message for e in events} == {held}
    jobs = {j.metadata.name for j in ns.jobs("again")}
    assert jobs == {"again-specialist-1", "again-specialist-2", "again-finetune", "again-report"}


def wait_for_pod(ns, job: str, timeout: float = 120) -> None:
    """Until the stand-in kubelet has started a pod of `job`."""
    deadline = time.time() + timeout
    while not any(p.startswith(f"{job}-") for p in ns.kubelet.started):
        assert time.time() < deadline, f"no pod of {job} started"
        time.sleep(0.2)


def wait_until_gone(ns, experiment: str, keep: frozenset = frozenset(), timeout=15) -> None:
    """Until only the Jobs in `keep` are left of `experiment`, and no Pod of the others."""
    started = time.time()
    while True:
        jobs = {j.metadata.name for j in ns.jobs(experiment)}
        pods = {
            p.metadata.name
            for p in ns.core.list_namespaced_pod(ns.name).items
            if p.metadata.name.startswith(f"{experiment}-")
            and p.metadata.labels["job-name"] not in keep
        }
        if jobs <= keep and not pods:
            return
        assert time.time() < started + timeout, f"still there: {jobs - keep} {pods}"
        time.sleep(0.1)


def operator_metrics(ns, name: str, **labels: str) -> dict[tuple, float]:
    """The operator's samples of `name` whose labels include `labels`, by their other
    labels' values (sorted by label name)."""
    port = ns.operator.command[ns.operator.command.index("--metrics-port") + 1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    return {
        tuple(v for k, v in sorted(s.labels.items()) if k not in labels): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    }


def test_a_failed_or_deleted_experiment_stops_its_jobs(namespace):
    """A specialist fails for good while two others train: the others' Jobs and Pods are
    deleted before the experiment shows Failed (finished Jobs stay, with their logs), and
    no Job is started again. Deleting a running experiment stops its Jobs at once and drops
    its metric series."""
    ns = namespace
    ns.kubelet.fail.add("broken-specialist-1")
    long = {"envSteps": 10**8, "evaluation": {"everySteps": 10**6}}
    patch = {
        "specialists": {**long, "parallelism": 3},
        "kubernetes": {"specialist": {"backoffLimit": 0}},
    }
    ns.create(ns.experiment("broken", {"spec": patch}))
    status = ns.wait_for_stage("broken", {"Failed"}, timeout=240)
    assert "specialist-1 failed" in status["message"]
    for i in (0, 2):
        wait_for_pod(ns, f"broken-specialist-{i}", timeout=5)  # ran: started with the failing one
    # The Jobs are stopped in the reconcile that marks the experiment Failed, at most one
    # reconcile period (1 s here) after the Job failed; the stand-in kubelet's and the
    # garbage collector's reaction time come on top.
    finished = frozenset({"broken-generalist", "broken-specialist-1"})
    wait_until_gone(ns, "broken", keep=finished, timeout=10)
    gone = time.time()
    jobs = {j.metadata.name: j for j in ns.jobs("broken")}
    assert set(jobs) == finished  # finished Jobs stay, with their pods' logs
    failed = jobs["broken-specialist-1"]
    assert failed.status.failed == 1 and jobs["broken-generalist"].status.succeeded == 1
    [condition] = [c for c in failed.status.conditions if c.type == "Failed"]
    assert gone - condition.last_transition_time.timestamp() < 1 + 5
    pods = len(ns.kubelet.started)
    time.sleep(3)  # three more reconciles
    assert len(ns.kubelet.started) == pods and len(ns.jobs("broken")) == 2
    stages = operator_metrics(
        ns, "gsl_operator_experiment_stage", namespace=ns.name, experiment="broken"
    )
    assert stages[("Failed",)] == 1 and sum(stages.values()) == 1

    ns.create(ns.experiment("removed", {"spec": {"generalist": long}}))
    wait_for_pod(ns, "removed-generalist")
    removed = {"namespace": ns.name, "experiment": "removed"}
    deadline = time.time() + 10
    while operator_metrics(ns, "gsl_operator_jobs", **removed).get(("generalist", "running")) != 1:
        assert time.time() < deadline, "the running generalist is not counted"
        time.sleep(0.2)
    ns.custom.delete_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, "removed")
    wait_until_gone(ns, "removed")
    deadline = time.time() + 10
    while any(
        operator_metrics(ns, metric, **removed)
        for metric in ("gsl_operator_jobs", "gsl_operator_experiment_stage")
    ):
        assert time.time() < deadline, "the deleted experiment's series remain"
        time.sleep(0.2)
    assert operator_metrics(ns, "gsl_operator_experiment_stage", experiment="broken")


def test_unknown_keys_applied_with_kubectl_are_reported(namespace):
    """Kubernetes 1.20 prunes keys its schema does not know. kubectl's client-side
    validation (with the schema the server publishes) refuses them; a client that skips it
    succeeds, the keys vanish, and the operator names them in a Warning Event and a
    condition."""
    ns = namespace
    body = ns.experiment("typo", {"spec": {"baseline": {"enabled": False}}})
    body["spec"]["trainer"]["numEnv"] = 4  # numEnvs is meant
    body["spec"]["specialist"] = {"count": 2}  # specialists is meant
    manifest = ns.workdir / "typo.yaml"
    manifest.write_text(yaml.safe_dump(body))

    def kubectl_apply(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "kubectl"), "apply", *flags, "-n", ns.name, "-f", str(manifest)],
            env={"KUBECONFIG": ns.operator.env["KUBECONFIG"], "HOME": str(ns.workdir)},
            capture_output=True,
            text=True,
        )

    refused = kubectl_apply()
    assert refused.returncode != 0 and 'unknown field "numEnv"' in refused.stderr
    applied = kubectl_apply("--validate=false")
    assert applied.returncode == 0, applied.stderr
    stored = ns.get("typo")["spec"]
    assert "numEnv" not in stored["trainer"] and "specialist" not in stored  # pruned
    deadline = time.time() + 60
    while True:
        conditions = ns.get("typo").get("status", {}).get("conditions", [])
        pruned = [c for c in conditions if c["type"] == "FieldsPruned"]
        if pruned:
            break
        assert time.time() < deadline, "no FieldsPruned condition"
        time.sleep(0.5)
    [condition] = pruned
    assert condition["status"] == "True" and condition["reason"] == "UnknownFields"
    assert condition["message"].startswith("spec.trainer.numEnv, spec.specialist: unknown field")
    events = [
        e
        for e in ns.core.list_namespaced_event(ns.name).items
        if e.involved_object.name == "typo" and e.reason == "UnknownFields"
    ]
    assert events and events[0].type == "Warning"
    assert "spec.trainer.numEnv" in events[0].message
    ns.custom.delete_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, "typo")


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"trainer": {"numEnvs": "many"}}, "spec.trainer.numEnvs in body must be of type integer"),
        ({"trainer": {"numEnvs": 0}}, "spec.trainer.numEnvs in body should be greater than 0"),
        ({"finetune": {"method": "gail2"}}, 'spec.finetune.method: Unsupported value: "gail2"'),
        ({"storage": {"uri": 3}}, "spec.storage.uri in body must be of type string"),
    ],
)
def test_the_server_rejects_what_the_schema_can_express(cluster, patch, message):
    _, client = cluster
    custom = kubernetes.client.CustomObjectsApi(client)
    body = merge(TINY_SPEC, {"metadata": {"name": "bad"}, "spec": patch})
    with pytest.raises(kubernetes.client.ApiException) as error:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert error.value.status == 422
    assert message in yaml.safe_load(error.value.body)["message"]


def test_gsl_submit_creates_refuses_a_duplicate_and_replaces(cluster, tmp_path, monkeypatch):
    """`gsl submit` (what `helm test` runs): creates the experiment, refuses to create it
    twice, replaces it with --replace, and with --wait gives up after --timeout."""
    kubeconfig, client = cluster
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(client)
    spec = tmp_path / "submitted.yaml"
    spec.write_text(yaml.safe_dump(merge(TINY_SPEC, {"metadata": {"name": "submitted"}})))

    created = gsl("submit", str(spec), "--namespace", "default")
    assert created.returncode == 0 and "default/submitted: created" in created.stdout
    first = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "submitted")
    duplicate = gsl("submit", str(spec), "--namespace", "default")
    assert duplicate.returncode == 1 and "AlreadyExists" in duplicate.stderr
    replaced = gsl(
        "submit", str(spec), "--namespace", "default", "--replace", "--wait", "--timeout", "3"
    )
    assert replaced.returncode == 1  # nothing runs it: no operator watches "default"
    assert "submitted did not finish within 3 s" in replaced.stderr
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "submitted")
    assert obj["metadata"]["uid"] != first["metadata"]["uid"]
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "submitted")


class RecordingBatchApi(kubernetes.client.BatchV1Api):
    """The Jobs API, remembering each Job it is asked to create."""

    def __init__(self, client):
        super().__init__(client)
        self.sent: list[dict] = []

    def create_namespaced_job(self, namespace, body, **kwargs):
        self.sent.append(body)
        return super().create_namespaced_job(namespace, body, **kwargs)


def test_jobs_on_kubernetes_1_20_have_the_specs_pull_secrets_and_users_and_no_failure_policy(
    cluster,
):
    """What the operator does on this server: it reads version 1.20, so it sends Jobs
    without podFailurePolicy (1.26+); imagePullSecrets and a user left to the platform
    (runAsUser null, kept by the CRD as null) reach the Job the server stores."""
    _, client = cluster
    custom = kubernetes.client.CustomObjectsApi(client)
    private = {
        "imagePullSecrets": ["registry-credentials"],
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None},
    }
    body = merge(TINY_SPEC, {"metadata": {"name": "private"}, "spec": {"kubernetes": private}})
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert created["spec"]["kubernetes"]["podSecurityContext"] == private["podSecurityContext"]
    experiment = operator.experiment_of("private", created["spec"])
    server = server_version(kubernetes.client.VersionApi(client))
    assert server == (1, 20)
    batch = RecordingBatchApi(client)
    KubernetesBackend(batch, experiment, "s3://b/p/default/private", created, server).start(
        Task("generalist")
    )
    [sent] = batch.sent
    assert "podFailurePolicy" not in sent["spec"]
    job = batch.read_namespaced_job("private-generalist", "default")
    pod = job.spec.template.spec
    assert [secret.name for secret in pod.image_pull_secrets] == ["registry-credentials"]
    assert pod.security_context.run_as_user is None and pod.security_context.run_as_group is None
    assert pod.security_context.run_as_non_root is True
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "private")
