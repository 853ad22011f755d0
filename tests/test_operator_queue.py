"""The operator against a real kube-apiserver: a Job that waits for admission shows as
Queued, and a running experiment shows its progress and ETA."""

from __future__ import annotations

import re
import subprocess
import time

from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION
from gsl_k8s.backends.kubernetes.jobs import QUEUE_LABEL
from tests.kube import BIN
from tests.test_operator import namespace, wait_until_gone  # noqa: F401 (a fixture)

PROGRESS = re.compile(r"\d+% ETA \w+")


def wait_for_status(ns, name: str, ready, what: str, timeout: float = 120) -> dict:
    """The experiment's status once `ready(status)` holds."""
    deadline = time.time() + timeout
    while not ready(status := ns.get(name).get("status", {})):
        assert time.time() < deadline, f"{name}: no {what} within {timeout:.0f} s: {status}"
        time.sleep(0.5)
    return status


def summary(status: dict) -> str:
    return (status.get("progress") or {}).get("summary") or ""


def test_a_job_waiting_for_admission_is_queued_then_runs_with_progress_and_an_eta(namespace):  # noqa: F811
    """Admission by quota, played by a ResourceQuota of no pods (this 1.20 server has no Job
    suspend, Kueue's switch): the generalist's Job, in a queue, gets no pod, and the
    experiment says Queued, naming it, in a condition and in `kubectl get`'s Progress
    column. Once the quota is gone the Job controller creates the pod, the generalist
    trains, and the status shows its progress and an ETA from its recent rate."""
    ns = namespace
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    ns.core.create_namespaced_resource_quota(ns.name, quota)
    generalist = {
        "envSteps": 200_000,
        "evaluation": {"everySteps": 2048},
        "plateau": {"minSteps": 10**9},  # trains on, for the ETA to be seen
    }
    spec = {
        "generalist": generalist,
        "baseline": {"enabled": False},
        "kubernetes": {"queueName": "team-gpu"},
    }
    ns.create(ns.experiment("queued", {"spec": spec}))
    status = wait_for_status(ns, "queued", lambda s: summary(s) == "Queued", "Queued")
    assert status["stage"] == "Generalist" and status["queued"] == ["generalist"]
    condition = ns.condition(status, "Queued")
    assert condition["status"] == "True" and condition["reason"] == "WaitingForAdmission"
    assert condition["message"].startswith("generalist: waiting for admission")
    [job] = ns.jobs("queued")
    assert job.metadata.labels[QUEUE_LABEL] == "team-gpu"
    assert job.spec.suspend is None  # not sent to a 1.20 server
    table = subprocess.run(
        [str(BIN / "kubectl"), "get", "gsl", "queued", "-n", ns.name],
        env={"KUBECONFIG": ns.operator.env["KUBECONFIG"], "HOME": str(ns.workdir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert "PROGRESS" in table[0].split() and "Queued" in table[1].split()
    assert not ns.kubelet.started  # no pod was ever created
    assert ns.get("queued")["status"]["stage"] == "Generalist"  # neither stuck nor failed

    ns.core.delete_namespaced_resource_quota("no-pods", ns.name)
    status = wait_for_status(
        ns, "queued", lambda s: PROGRESS.fullmatch(summary(s)), "progress with an ETA"
    )
    assert ns.condition(status, "Queued")["status"] == "False" and status["queued"] == []
    stage = status["progress"]["stages"][0]
    assert stage["stage"] == "Generalist"
    assert 0 < stage["stepsDone"] < stage["stepsPlanned"] == 200_000
    assert stage["etaSeconds"] > 0 and stage["elapsedSeconds"] > 0
    # GSL's budget so far: the generalist's cap, 3 specialists' and the finetune's budgets
    assert status["progress"]["stepsPlanned"] == 200_000 + 3 * 1024 + 1024
    ns.custom.delete_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, "queued")
    wait_until_gone(ns, "queued")
