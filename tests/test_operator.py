"""The operator against a real kube-apiserver, with real trainers run by a stand-in kubelet."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml

from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION, crd_yaml
from tests.conftest import TINY_SPEC, merge
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
    the operator killed and restarted at every stage; no Job is ever created twice."""
    ns = namespace
    ns.create(ns.experiment("life", {"spec": {"specialists": {"parallelism": 3}}}))
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
    assert {"Generalist", "Specialists", "Finetune", "Baseline"} <= set(seen)
    assert ns.operator.starts >= 5

    status = ns.get("life")["status"]
    jobs = ns.jobs("life")
    names = sorted(j.metadata.name for j in jobs)
    assert names == sorted(
        ["life-generalist", "life-finetune", "life-baseline"]
        + [f"life-specialist-{i}" for i in range(3)]
    )
    assert all(j.status.succeeded == 1 for j in jobs)
    assert len(ns.kubelet.started) == 6  # one pod per Job: nothing ran twice
    owner = ns.get("life")["metadata"]["uid"]
    assert all(j.metadata.owner_references[0].uid == owner for j in jobs)
    assert status["specialistsReady"] == "3/3" and status["specialists"]["failed"] == 0
    assert status["observedGeneration"] == ns.get("life")["metadata"]["generation"]
    for kind in ("GeneralistPlateaued", "SpecialistsComplete", "Succeeded"):
        assert ns.condition(status, kind)["status"] == "True", kind
    assert ns.condition(status, "Failed")["status"] == "False"
    assert status["plateauCheckpoint"].endswith(f"{ns.name}/life/plateau/checkpoint.pt")
    assert 0 <= status["bestSuccess"] <= 1
    reasons = {
        e.reason
        for e in ns.core.list_namespaced_event(ns.name).items
        if e.involved_object.name == "life"
    }
    assert {"Specialists", "Finetune", "Succeeded"} <= reasons

    table = subprocess.run(
        [str(BIN / "kubectl"), "get", "gsl", "-n", ns.name],
        env={"KUBECONFIG": ns.operator.env["KUBECONFIG"], "HOME": str(ns.workdir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert table[0].split()[:5] == ["NAME", "STAGE", "SPECIALISTS", "BEST", "SUCCESS"]
    assert table[1].split()[:3] == ["life", "Succeeded", "3/3"]

    port = ns.operator.command[ns.operator.command.index("--metrics-port") + 1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        metrics = response.read().decode()
    assert 'gsl_operator_jobs{experiment="life",role="specialist",state="succeeded"} 3.0' in metrics
    reconciles = re.search(r'gsl_operator_reconciles_total\{result="ok"\} (\S+)', metrics)
    assert float(reconciles.group(1)) >= 1
    assert "gsl_operator_stage_duration_seconds_count" in metrics

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

    ns.create(ns.experiment("edited", {"spec": {"baseline": {"enabled": False}}}))
    ns.wait_for_stage("edited", {"Generalist"}, timeout=60)
    ns.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns.name, PLURAL, "edited", {"spec": {"seed": 99}}
    )
    edited = ns.wait_for_stage("edited", {"Failed"}, timeout=60)
    assert ns.condition(edited, "Failed")["reason"] == "SpecChanged"
    assert edited["observedGeneration"] == 2

    invalid = ns.wait_for_stage("invalid", {"Failed"}, timeout=60)
    assert ns.condition(invalid, "Failed")["reason"] == "InvalidSpec"
    assert "spec.specialists.count: 9 specialists for 6 variations" in invalid["message"]
    assert not ns.jobs("invalid")

    strict = ns.wait_for_stage("strict", {"Failed", "Succeeded"})
    assert strict["stage"] == "Failed"
    assert "strict-specialist-1" not in strict["message"]  # tasks are named, not Jobs
    assert "specialist-1 failed" in strict["message"]
    assert ns.condition(strict, "Failed")["status"] == "True"

    tolerant = ns.wait_for_stage("tolerant", {"Failed", "Succeeded"})
    assert tolerant["stage"] == "Succeeded", tolerant
    assert tolerant["specialists"] == {"total": 3, "succeeded": 2, "failed": 1, "running": 0}
    complete = ns.condition(tolerant, "SpecialistsComplete")
    assert complete["status"] == "True" and complete["reason"] == "SomeFailed"
    pods = [p for p in ns.kubelet.started if p.startswith("tolerant-specialist-1")]
    assert len(pods) == 2  # backoffLimit 1: the Job controller retried once


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
