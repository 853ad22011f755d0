"""The chart and the operator on a real node (tests/cluster.py): our images as containers,
run by a real kubelet and scheduler, with the trainers' Pod Security settings in force
(non-root, RuntimeDefault seccomp, no capabilities, read-only root filesystem).

The chart is installed as on OpenShift with a private registry: under a nameOverride, with
no runAsUser (the platform's: here the images' own user), and with an imagePullSecret, which
the experiments' trainers get as well (a dummy one: the images are this machine's).

Pods use hostNetwork on 127.0.0.1, where moto's S3 server listens; pods get the S3 keys
only from the `s3-credentials` Secret (the test process has other keys).
"""

from __future__ import annotations

import base64
import fcntl
import json
import re
import subprocess
import time

import kubernetes
import pytest
import yaml

from gsl_k8s import layout
from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION
from gsl_k8s.layout import GENERALIST, Task, checkpoint_step
from gsl_k8s.records.progress import read_progress
from gsl_k8s.store import list_artifacts, open_store, read_json
from gsl_k8s.store.s3 import S3Options
from tests import cluster
from tests.cluster import kubectl
from tests.conftest import REPO, TINY_SPEC, merge
from tests.kube import BIN, CREDENTIALS, TEST_PROCESS_CREDENTIALS
from tests.pod_security import violations
from tests.servers import LOOPBACK, free_port
from tests.test_recovery import checkpointed_past_start

NAMESPACE = "gsl-e2e"
RECONCILE_SECONDS = 2
GRACE_SECONDS = 30
CLEANUP_SECONDS = 10  # a stopped pod's end, past its grace period, to its Job's removal
CHECKPOINT_EVERY = TINY_SPEC["spec"]["generalist"]["evaluation"]["everySteps"]
NAME_OVERRIDE = "lab"
FULLNAME = f"gsl-{NAME_OVERRIDE}"  # the release's, "gsl", then the chart's name
PULL_SECRET = "registry-credentials"
PLATFORM_USER = {"runAsUser": None}  # OpenShift's restricted SCC picks the pods' user
# `kubectl get` as the API server prints it, with the whole object
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# Small requests: two specialists and the operator fit on two cores.
ROLE = {
    "resources": {"cpu": "250m", "memory": "1Gi"},
    "terminationGracePeriodSeconds": GRACE_SECONDS,
}


class Release:
    """The chart installed in NAMESPACE, and helpers to watch experiments there."""

    def __init__(self, cluster, s3_endpoint: str, images: dict[str, str], workdir):
        self.cluster = cluster
        self.s3_endpoint = s3_endpoint
        self.images = images
        self.trainer_image = images["trainer"]
        self.workdir = workdir
        self.pods_seen: dict[str, set[str]] = {}  # Job name -> its pods' names
        # experiment -> what `wait_for` saw: its status and its `kubectl get` columns
        self.seen: dict[str, list[tuple[dict, dict[str, str]]]] = {}

    def install(self) -> None:
        """Into the cluster as it is now (a new one, too): the namespace, the S3 and the
        registry Secrets and `helm install` of charts/gsl with our operator image (pulled
        never), on the host network, reconciling every RECONCILE_SECONDS."""
        self.kubeconfig = kubeconfig = self.cluster.kubeconfig
        self.core = kubernetes.client.CoreV1Api(self.cluster.client)
        self.batch = kubernetes.client.BatchV1Api(self.cluster.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.cluster.client)
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        secret = {"metadata": {"name": "s3-credentials"}, "stringData": CREDENTIALS}
        self.core.create_namespaced_secret(NAMESPACE, secret)
        self.core.create_namespaced_secret(NAMESPACE, registry_secret())
        repository, tag = self.images["operator"].rsplit(":", 1)
        api = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        api_port = api.rsplit(":", 1)[1]
        values = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "nameOverride": NAME_OVERRIDE,
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "podSecurityContext": PLATFORM_USER,
            "hostNetwork": True,
            "metrics": {"port": free_port()},
            "operator": {
                "reconcileSeconds": RECONCILE_SECONDS,
                "healthPort": free_port(),
                # No kube-proxy: the API server's address, not its Service's.
                "extraEnv": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": LOOPBACK},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": api_port},
                ],
            },
            "s3": {"existingSecret": "s3-credentials"},
            "tests": {
                "storageUri": f"s3://{NAMESPACE}/helm-test",
                "endpointUrl": self.s3_endpoint,
                "credentialsSecret": "s3-credentials",
                "timeoutSeconds": 400,
            },
        }
        values_file = self.workdir / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        started = time.time()
        installed = helm(
            kubeconfig,
            *("install", "gsl", str(REPO / "charts/gsl"), "-n", NAMESPACE, "-f", str(values_file)),
            *("--wait", "--timeout", "2m"),
        )
        pods = kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "wide", check=False)
        assert installed.returncode == 0, "\n".join(
            [installed.stderr, pods.stdout, *self.events(), self.operator_logs()]
        )
        print(f"helm install --wait: {time.time() - started:.1f} s")

    def experiment(self, name: str, patch: dict | None = None) -> dict:
        roles = ("generalist", "specialist", "finetune", "baseline", "report")
        kubernetes_spec = {
            "image": self.trainer_image,
            "credentialsSecret": "s3-credentials",
            "imagePullSecrets": [PULL_SECRET],
            "podSecurityContext": {"runAsUser": None, "runAsGroup": None},
            "metricsPort": 0,  # trainers share the node's ports
            **{role: ROLE for role in roles},
        }
        base = {
            "metadata": {"name": name},
            "spec": {
                "baseline": {"enabled": False},
                "storage": {"uri": f"s3://{NAMESPACE}/runs", "endpointUrl": self.s3_endpoint},
                "kubernetes": kubernetes_spec,
            },
        }
        return merge(merge(TINY_SPEC, base), patch or {})

    def apply(self, body: dict, workdir) -> None:
        """`kubectl apply --server-side`: a client-side apply drops the spec's nulls (the
        platform's user), and the CRD's defaults take their place."""
        manifest = workdir / f"{body['metadata']['name']}.yaml"
        manifest.write_text(yaml.safe_dump(body))
        kubectl(self.kubeconfig, "apply", "--server-side", "-n", NAMESPACE, "-f", str(manifest))

    def status(self, name: str) -> dict:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
        return obj.get("status", {})

    def printed(self, name: str) -> tuple[dict, dict[str, str]]:
        """The experiment's status and its columns in `kubectl get gsl`, read at once."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}/{name}"
        response = self.cluster.client.call_api(
            path,
            "GET",
            query_params=[("includeObject", "Object")],
            header_params={"Accept": TABLE},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        table = json.loads(response.data)
        [row] = table["rows"]
        columns = [c["name"] for c in table["columnDefinitions"]]
        return row["object"].get("status", {}), dict(zip(columns, row["cells"], strict=True))

    def jobs(self, experiment: str) -> dict:
        selector = f"gsl.dev/experiment={experiment}"
        items = self.batch.list_namespaced_job(NAMESPACE, label_selector=selector).items
        return {j.metadata.name: j for j in items}

    def pods(self, selector: str) -> list:
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        for pod in pods:
            job = (pod.metadata.labels or {}).get("job-name")
            if job:
                self.pods_seen.setdefault(job, set()).add(pod.metadata.name)
        return pods

    def running_pod(self, job: str, timeout: float = 120):
        """A Running pod of `job` whose container has started."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for pod in self.pods(f"job-name={job}"):
                if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
                    return pod
            time.sleep(0.5)
        pytest.fail(f"no pod of {job} ran within {timeout:.0f} s: {self.events()}")

    def wait_for(self, name: str, stages: set[str], timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.pods("gsl.dev/experiment")
            status, columns = self.printed(name)
            self.seen.setdefault(name, []).append((status, columns))
            if status.get("stage") in stages:
                return status
            time.sleep(1)
        logs = self.operator_logs()
        pytest.fail(f"{name} never reached {stages}: {status}\n{logs}\n{self.events()}")

    def operator_logs(self) -> str:
        selector = "app.kubernetes.io/component=operator"
        found = kubectl(self.kubeconfig, "logs", "-n", NAMESPACE, "-l", selector, check=False)
        return found.stdout[-4000:]

    def events(self) -> list[str]:
        return [
            f"{e.involved_object.name}: {e.reason}: {e.message}"
            for e in self.core.list_namespaced_event(NAMESPACE).items
        ][-30:]


def registry_secret() -> dict:
    """A pull Secret for a registry the node never asks: its images are there already."""
    auths = {"auths": {"registry.invalid": {"auth": base64.b64encode(b"gsl:gsl").decode()}}}
    return {
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps(auths)},
    }


def estimated(seen: list[tuple[dict, dict[str, str]]]) -> list[tuple[dict, dict, str]]:
    """The statuses seen whose current stage had trained part of its budget at a known
    rate: (status, the stage's progress, the Progress column then)."""
    found = []
    for status, columns in seen:
        progress = status.get("progress", {})
        current = [s for s in progress.get("stages", []) if s["stage"] == status.get("stage")]
        if current and current[-1].get("etaSeconds"):
            found.append((status, current[-1], columns["Progress"]))
    return found


def recorded_steps(store) -> list[int]:
    """The env steps of the generalist's progress records, in order."""
    return [r["step"] for r in read_progress(store, GENERALIST.progress)]


def checkpoint_steps(store) -> list[int]:
    """The env steps of the generalist's checkpoints in the store."""
    return [checkpoint_step(k) for k in list_artifacts(store, GENERALIST.checkpoints, ".pt")]


def helm(kubeconfig, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "helm"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def release(real_cluster, images, s3_endpoint, tmp_path_factory):
    """The chart installed (`Release.install`), a bucket for the experiments (it outlives
    the cluster) and the S3 Secret."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=TEST_PROCESS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_PROCESS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=NAMESPACE)
    release = Release(real_cluster, s3_endpoint, images, tmp_path_factory.mktemp("helm"))
    release.install()
    yield release
    helm(release.kubeconfig, "uninstall", "gsl", "-n", NAMESPACE)


@pytest.fixture
def store_of(release, monkeypatch):
    """Open an experiment's store with the test process's own S3 keys."""
    for key, value in TEST_PROCESS_CREDENTIALS.items():
        monkeypatch.setenv(key, value)

    def open_run(name: str):
        options = S3Options(endpoint_url=release.s3_endpoint, region="us-east-1")
        return open_store(f"s3://{NAMESPACE}/runs/{NAMESPACE}/{name}", options)

    return open_run


def test_helm_install_runs_an_experiment_through_pod_deletions(release, store_of, tmp_path):
    """An experiment applied with kubectl runs to Succeeded, its trainers containers of our
    image under the restricted profile's settings, with the pull Secret and the platform's
    user. While it runs, its status and `kubectl get` show how far the current stage has
    come and its ETA. A trainer pod deleted mid-phase checkpoints in its grace period and
    the Job's next pod resumes from that checkpoint; the operator's pod deleted during the
    Specialists stage is replaced. No Job runs twice. The baseline trains beside GSL and
    ends on GSL's env-step total. Then `helm test` runs its own experiment with our
    operator image."""
    started = time.time()
    # The generalist trains until a plateau at 12288 env steps, well after the deletion and
    # before its cap, its stage's planned steps.
    later = {
        "spec": {
            "generalist": {"envSteps": 2 * 12288, "plateau": {"minSteps": 12288}},
            "baseline": {"enabled": True, "mode": "concurrent"},
        }
    }
    release.apply(release.experiment("life", later), tmp_path)
    store = store_of("life")

    first = release.running_pod("life-generalist")
    assert [s.name for s in first.spec.image_pull_secrets or []] == [PULL_SECRET]
    deadline = time.time() + 180
    # A checkpoint is saved before the progress record that names it; wait for both.
    while not (checkpoint_steps(store) and recorded_steps(store)):
        assert time.time() < deadline, "the generalist recorded no checkpoint"
        time.sleep(0.5)
    trained = recorded_steps(store)[-1]
    # SIGTERM; within the grace period the trainer checkpoints and exits (143).
    kubectl(release.kubeconfig, "delete", "pod", "-n", NAMESPACE, first.metadata.name)
    deadline = time.time() + 60
    while release.pods_seen["life-generalist"] == {first.metadata.name}:
        assert time.time() < deadline, "the Job started no pod in place of the deleted one"
        release.pods("job-name=life-generalist")
        time.sleep(0.2)

    release.wait_for("life", {"Specialists", "Failed"})
    selector = "app.kubernetes.io/component=operator"
    [operator] = release.pods(selector)
    assert operator.metadata.name.startswith(f"{FULLNAME}-operator-")
    assert operator.metadata.labels["app.kubernetes.io/name"] == NAME_OVERRIDE
    assert operator.spec.security_context.run_as_user is None
    assert [s.name for s in operator.spec.image_pull_secrets] == [PULL_SECRET]
    kubectl(release.kubeconfig, "delete", "pod", "-n", NAMESPACE, operator.metadata.name)
    status = release.wait_for("life", {"Succeeded", "Failed"})
    elapsed = time.time() - started
    print(f"experiment in containers: {elapsed:.0f} s")
    assert status["stage"] == "Succeeded", (status, release.operator_logs())
    [replacement] = release.pods(selector)
    assert replacement.metadata.name != operator.metadata.name
    # Seen while it ran: the stage's share done and its ETA, in the status and in the
    # Progress column of `kubectl get gsl`.
    estimates = estimated(release.seen["life"])
    assert estimates, [s.get("progress") for s, _ in release.seen["life"]]
    shares = []
    for status, stage, column in estimates:
        assert 0 < stage["stepsDone"] < stage["stepsPlanned"], stage
        shares.append(100 * stage["stepsDone"] // stage["stepsPlanned"])
        assert re.fullmatch(rf"{shares[-1]}% ETA \d+[smhd](\d\d[mh])?", column), (column, stage)
        assert column == status["progress"]["summary"], status["progress"]
    assert max(shares) > 0, estimates
    print("progress seen:", sorted({(s["stage"], c) for s, _, c in estimates}))

    jobs = release.jobs("life")
    expected = ["life-generalist", "life-baseline", "life-finetune", "life-report"]
    assert sorted(jobs) == sorted(expected + [f"life-specialist-{i}" for i in range(3)])
    assert all(j.status.succeeded == 1 for j in jobs.values())
    created = {name: job.metadata.creation_timestamp for name, job in jobs.items()}
    assert created["life-baseline"] < created["life-specialist-0"]  # with the generalist
    report = read_json(store, layout.REPORT_JSON)
    assert report["baseline"]["env_steps"] == report["final"]["env_steps_total"]
    runs = {job: len(pods) for job, pods in release.pods_seen.items() if job in jobs}
    assert runs == {job: 2 if job == "life-generalist" else 1 for job in jobs}, runs

    # The next pod resumed from the newest checkpoint: the env steps of the progress
    # records never go back by more than one checkpoint interval (a fresh start would go
    # back to 0), and go on past where the deleted pod was.
    steps = recorded_steps(store)
    assert steps[-1] > trained
    drops = [a - b for a, b in zip(steps, steps[1:], strict=False) if b < a]
    assert max(drops, default=0) <= CHECKPOINT_EVERY, f"{trained}: {steps}"
    print(f"progress lost to the deletion: {max(drops, default=0)} env steps")

    serialize = kubernetes.client.ApiClient().sanitize_for_serialization
    for job in jobs.values():
        pod = serialize(job.spec.template.spec)
        # restricted, but for the host network this cluster needs
        assert violations(pod) == ["host namespaces: spec.hostNetwork is true"], pod
        assert pod["terminationGracePeriodSeconds"] == GRACE_SECONDS
        assert pod["imagePullSecrets"] == [{"name": PULL_SECRET}]
        assert "runAsUser" not in pod["securityContext"], pod["securityContext"]

    started = time.time()
    tested = helm(release.kubeconfig, "test", "gsl", "-n", NAMESPACE, "--timeout", "8m")
    print(f"helm test: {time.time() - started:.0f} s")
    assert tested.returncode == 0, (tested.stdout, tested.stderr, release.operator_logs())
    assert "Phase:          Succeeded" in tested.stdout
    assert release.status(f"{FULLNAME}-helm-test")["stage"] == "Succeeded"


def test_an_oom_killed_trainer_fails_the_experiment_and_says_so(release, tmp_path):
    """A generalist with 2^20 envs fills its rollout beyond its memory limit: the kernel
    OOM-kills it, and the experiment's status message says so. (Under a limit below what
    importing torch takes, the trainer would only crawl, its library pages evicted.)"""
    small = {**ROLE, "resources": {"cpu": "250m", "memory": "512Mi"}, "backoffLimit": 0}
    patch = {
        "spec": {
            "trainer": {"numEnvs": 2**20},  # a rollout of 32 steps holds 2^25 transitions
            "generalist": {"envSteps": 10**9},
            "kubernetes": {"generalist": small},
        }
    }
    release.apply(release.experiment("oom", patch), tmp_path)
    status = release.wait_for("oom", {"Failed", "Succeeded"}, timeout=120)
    assert status["stage"] == "Failed"
    assert (
        "generalist: OOMKilled: the trainer exceeded its memory limit of 512Mi"
        in (status["message"])
    ), status["message"]
    assert "spec.kubernetes.generalist.resources.memory" in status["message"]


def test_a_failed_experiment_stops_its_jobs_within_a_reconcile_period(release, store_of, tmp_path):
    """Three specialists train; one's trainer is stopped from inside its container and its
    Job fails (no retries). Within one reconcile period the experiment is Failed and the
    other two Jobs are being deleted; they are gone after their pods' grace period."""
    long = {"envSteps": 10**8, "evaluation": {"everySteps": 10**6}, "parallelism": 3}
    patch = {
        "spec": {
            "specialists": long,
            "kubernetes": {"specialist": {**ROLE, "backoffLimit": 0}},
        }
    }
    release.apply(release.experiment("broken", patch), tmp_path)
    pods = [release.running_pod(f"broken-specialist-{i}", timeout=300) for i in range(3)]
    # Training, so the stop goes through the task loop's handler (checkpoint, then exit).
    progress = Task("specialist", 1).progress
    deadline = time.time() + 60
    while not read_progress(store_of("broken"), progress):
        assert time.time() < deadline, "specialist-1 recorded no progress"
        time.sleep(0.5)
    stop = "import os, signal; os.kill(1, signal.SIGTERM)"  # the trainer is PID 1
    kubectl(
        release.kubeconfig,
        *("exec", "-n", NAMESPACE, pods[1].metadata.name, "--", "python", "-c", stop),
    )
    deadline = time.time() + 120
    while True:
        failed = release.jobs("broken")["broken-specialist-1"]
        [condition] = [c for c in failed.status.conditions or [] if c.type == "Failed"] or [None]
        if condition is not None:
            break
        if time.time() > deadline:
            described = kubectl(
                release.kubeconfig,
                *("describe", "job,pod", "-n", NAMESPACE, "-l", "job-name=broken-specialist-1"),
                check=False,
            )
            pytest.fail(f"the specialist's Job did not fail:\n{described.stdout}")
        time.sleep(0.2)
    others = {"broken-specialist-0", "broken-specialist-2"}
    while True:
        jobs = release.jobs("broken")
        if all(jobs[name].metadata.deletion_timestamp for name in others if name in jobs):
            stopping = time.time()
            break
        assert time.time() < deadline, "the other specialists' Jobs are not being deleted"
        time.sleep(0.2)
    # lastTransitionTime has whole seconds: one more second of slack.
    latency = stopping - condition.last_transition_time.timestamp()
    print(f"Job failed -> others being deleted: {latency:.1f} s")
    assert latency < RECONCILE_SECONDS + 1 + 1
    status = release.wait_for("broken", {"Failed"}, timeout=5)  # patched after the stop
    assert status["message"].startswith("specialist-1 failed"), status["message"]
    assert "specialist-1: its last pod ended with Error" in status["message"]
    # The pods may use their whole grace period; the kubelet and the garbage collector then
    # need a few seconds more (under load 8 once 0.4 s past the grace period alone).
    while others & set(release.jobs("broken")):
        assert time.time() < stopping + GRACE_SECONDS + CLEANUP_SECONDS, "the Jobs are still there"
        time.sleep(0.5)


def test_an_experiment_resumes_in_a_new_cluster_from_its_bucket(
    real_cluster, release, store_of, tmp_path
):
    """The cluster is lost mid-specialists: torn down completely (etcd, apiserver, kubelet,
    every container killed), only the S3 bucket left. In a new cluster, `helm install` and
    `kubectl apply` of the same spec pick the experiment up from the bucket: its status
    and a `Resumed` Event say what the store held, no finished task runs again (each result
    was written once; the new cluster's Jobs are the unfinished tasks only), the
    interrupted specialist resumes from its checkpoint, and the experiment succeeds."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=release.s3_endpoint,
        aws_access_key_id=TEST_PROCESS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_PROCESS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.put_bucket_versioning(Bucket=NAMESPACE, VersioningConfiguration={"Status": "Enabled"})
    # One specialist at a time, each checkpointing several times before it ends.
    slow = {"parallelism": 1, "envSteps": 16384, "evaluation": {"everySteps": 1024}}
    body = release.experiment("lost", {"spec": {"specialists": slow}})
    release.apply(body, tmp_path)
    store = store_of("lost")
    specialists = [Task("specialist", i) for i in range(3)]
    deadline = time.time() + 600
    while not (
        store.exists(specialists[0].result) and checkpointed_past_start(store, specialists[1])
    ):
        assert time.time() < deadline, (release.status("lost"), release.operator_logs())
        time.sleep(0.5)
    checkpointed = max(
        checkpoint_step(k) for k in list_artifacts(store, specialists[1].checkpoints, ".pt")
    )

    started = time.time()
    real_cluster.down()  # nothing of the old cluster is left: its trainers were killed
    done = [t for t in specialists if store.exists(t.result)]
    assert done == specialists[:1], "the teardown took so long that specialist-1 finished"
    real_cluster.up()
    replaced = time.time()
    assert not kubectl(real_cluster.kubeconfig, "get", "ns", NAMESPACE, check=False).stdout
    release.install()
    release.apply(body, tmp_path)
    status = release.wait_for("lost", {"Succeeded", "Failed"}, timeout=600)
    print(f"new cluster up to Succeeded: {time.time() - started:.0f} s")
    assert status["stage"] == "Succeeded", (status, release.operator_logs())
    run = f"s3://{NAMESPACE}/runs/{NAMESPACE}/lost"
    held = f"resuming from {run}: generalist done, 1/3 specialists done"
    assert status["resumed"] == held, status
    events = release.core.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=lost,reason=Resumed"
    ).items
    assert {e.message for e in events} == {held}

    jobs = release.jobs("lost")  # the new cluster's
    assert sorted(jobs) == sorted(
        ["lost-specialist-1", "lost-specialist-2", "lost-finetune", "lost-report"]
    )
    root = f"runs/{NAMESPACE}/lost"
    for key in [layout.PLAN, *(t.result for t in [GENERALIST, *specialists])]:
        listed = s3.list_object_versions(Bucket=NAMESPACE, Prefix=f"{root}/{key}")
        assert len(listed.get("Versions", [])) == 1, key
    # specialist-1 went on from its checkpoint: no new record before it
    new_steps = [
        r["step"] for r in read_progress(store, specialists[1].progress) if r["time"] > replaced
    ]
    assert new_steps and min(new_steps) >= checkpointed > 0, (checkpointed, new_steps)


def test_overlapping_test_runs_take_turns_on_the_one_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "HOST_LOCK", tmp_path / "lock")
    monkeypatch.setattr(cluster, "HOST_LOCK_TIMEOUT", 1)
    with cluster.host_lock(), cluster.HOST_LOCK.open("a") as other_run:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(pytest.fail.Exception, match="another test run held"),
            cluster.host_lock(),
        ):
            pass
    with cluster.host_lock():  # released: the next run goes at once
        pass
