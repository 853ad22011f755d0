"""A real Kubernetes control plane for the tests (etcd, kube-apiserver and
kube-controller-manager v1.20.2 on 127.0.0.1), and a stand-in kubelet.

No kubelet or scheduler exists here, so `FakeKubelet` plays one: it runs each new Pod's
container command as a local process, with the container's environment (Secrets
resolved), and reports the Pod's phase when the process exits. The real Job controller
turns those phases into Job conditions, retries and all.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import kubernetes
import pytest
import yaml

from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION
from tests.conftest import TINY_SPEC, merge
from tests.servers import LOOPBACK, free_port

# `make test` passes the directory; scripts/build-kubernetes.sh knows where its cache is.
BIN = Path(
    os.environ.get("GSL_KUBE_BIN")
    or subprocess.run(
        [Path(__file__).resolve().parents[1] / "scripts/build-kubernetes.sh", "--bin-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
)
TOKEN = "gsl-test-admin-token"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The test process's own S3 keys: other than the Secret's, which pods must get from it.
TEST_PROCESS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-process", "AWS_SECRET_ACCESS_KEY": "x"}


def kube_binary(name: str) -> str:
    """A control-plane binary; the tests fail, not skip, where it is missing."""
    path = BIN / name if name != "etcd" else shutil.which("etcd")
    if path is None or not Path(path).exists():
        pytest.fail(f"{name} is missing: run `make test-deps` (scripts/kube-test-binaries.sh)")
    return str(path)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # the apiserver can hang in shutdown
            process.kill()
            process.wait()


def write_kubeconfig(
    path: Path, server: str, user: str, token: str, namespace: str = "default"
) -> Path:
    """A kubeconfig for `server` (its certificate is self-signed) with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "t", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "t", "context": {"cluster": "t", "user": user, "namespace": namespace}}
        ],
        "current-context": "t",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def service_account_token(core: kubernetes.client.CoreV1Api, namespace: str, account: str) -> str:
    """The token the token controller made for a ServiceAccount (Kubernetes 1.20)."""
    deadline = time.time() + 30
    while not (secrets := core.read_namespaced_service_account(account, namespace).secrets):
        assert time.time() < deadline, f"no token for ServiceAccount {account}"
        time.sleep(0.2)
    token = core.read_namespaced_secret(secrets[0].name, namespace).data["token"]
    return base64.b64decode(token).decode()


NodeCommands = Callable[[Path, Path], dict[str, list[str]]]


@contextmanager
def kube_cluster(node: NodeCommands | None = None) -> Iterator[Path]:
    """etcd, kube-apiserver (RBAC on) and kube-controller-manager; yields an admin kubeconfig.

    `node(workdir, kubeconfig)` gives the commands of a real node's processes (scheduler,
    kubelet: tests/cluster.py), started after the control plane and stopped first; with it,
    the controller-manager runs every default controller (nodelifecycle untaints the node).
    """
    workdir = Path(tempfile.mkdtemp(prefix="kube-"))
    key, public = workdir / "sa.key", workdir / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", key, "-pubout", "-out", public], check=True, capture_output=True
    )
    (workdir / "tokens.csv").write_text(f'{TOKEN},admin,admin-uid,"system:masters"\n')
    client_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    server = f"https://{LOOPBACK}:{api_port}"
    kubeconfig = write_kubeconfig(workdir / "kubeconfig", server, "admin", TOKEN)
    commands = {
        "etcd": [
            kube_binary("etcd"),
            *("--name", "t", "--data-dir", str(workdir / "etcd")),
            *("--listen-client-urls", etcd, "--advertise-client-urls", etcd),
            *("--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer),
            *("--initial-cluster", f"t={peer}"),
        ],
        "kube-apiserver": [
            kube_binary("kube-apiserver"),
            f"--etcd-servers={etcd}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={api_port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={public}",
            f"--service-account-signing-key-file={key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--kubelet-preferred-address-types=InternalIP,Hostname",  # 127.0.0.1
        ],
        "kube-controller-manager": [
            kube_binary("kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={free_port()}",
            "--port=0",
            "--controllers="
            + ("*" if node else "*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle"),
            f"--service-account-private-key-file={key}",
            f"--root-ca-file={workdir / 'certs' / 'apiserver.crt'}",  # pods' ca.crt
            "--use-service-account-credentials=false",
        ],
    }
    if node:
        commands |= node(workdir, kubeconfig)
    processes: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            log = (workdir / f"{name}.log").open("w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            if name == "kube-apiserver":
                _wait_ready(server, processes, workdir)
        yield kubeconfig
    finally:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(server: str, processes: list[subprocess.Popen], workdir: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(
        f"{server}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.25)
    logs = (workdir / "kube-apiserver.log").read_text()[-3000:]
    pytest.fail(f"kube-apiserver did not become ready:\n{logs}")


class FakeKubelet(threading.Thread):
    """Runs the Pods of one namespace as local processes (see the module docstring).

    Like a kubelet, it gives the process the container's env and envFrom Secrets (with only
    PATH and HOME of this one's, so a missing Secret shows) and gives a Pod
    that automounts its ServiceAccount token a kubeconfig with that token. Commands are
    adapted to a shared host: `gsl` is this checkout's, `kubectl` the cached binary,
    listeners go to 127.0.0.1 and metrics ports are off. `fail` names Jobs whose Pods fail
    at once instead of running.
    """

    def __init__(
        self, core: kubernetes.client.CoreV1Api, namespace: str, workdir: Path, kubeconfig: Path
    ):
        super().__init__(daemon=True)
        self.core = core
        self.namespace = namespace
        self.workdir = workdir
        self.server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        self.fail: set[str] = set()
        self.metrics_targets: Path | None = None  # set: trainers serve metrics, listed here
        self.started: list[str] = []
        self._running: dict[str, subprocess.Popen | None] = {}
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            pods = {p.metadata.name: p for p in self.core.list_namespaced_pod(self.namespace).items}
            for name, pod in pods.items():
                if pod.metadata.deletion_timestamp:  # stop it, then let the deletion finish
                    self._kill_process(name)
                    self._delete_pod(name)
                elif pod.status.phase == "Pending" and name not in self._running:
                    self._start(pod)
            for name in set(self._running) - set(pods):
                self._kill_process(name)
            for name, process in list(self._running.items()):
                if process is not None and process.poll() is not None:
                    phase = "Succeeded" if process.returncode == 0 else "Failed"
                    self._set_phase(name, phase)
                    self._running[name] = None  # reported
            time.sleep(0.2)

    def _start(self, pod) -> None:
        name = pod.metadata.name
        self.started.append(name)
        if (pod.metadata.labels or {}).get("job-name", "") in self.fail:
            self._running[name] = None
            self._set_phase(name, "Failed")
            return
        container = pod.spec.containers[0]
        env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(self.workdir)}  # no more
        env |= {e.name: self._env_value(e, pod) for e in container.env or []}
        for source in container.env_from or []:
            secret = self.core.read_namespaced_secret(source.secret_ref.name, self.namespace)
            env |= {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
        if pod.spec.automount_service_account_token is not False:
            env["KUBECONFIG"] = str(self._kubeconfig(pod))
        log = (self.workdir / f"{name}.log").open("w")
        command = self._command(container.command + (container.args or []))
        if self.metrics_targets is not None and "--metrics-port" in command:
            port = free_port()
            command[command.index("--metrics-port") + 1] = str(port)
            self._add_target(port, pod)
        self._running[name] = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._set_phase(name, "Running")

    @staticmethod
    def _env_value(variable, pod) -> str:
        """A variable's value, or the pod's name or namespace (the downward API's fields)."""
        if variable.value_from is None:
            return variable.value or ""
        fields = {"metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace}
        return fields[variable.value_from.field_ref.field_path]

    @staticmethod
    def _command(command: list[str]) -> list[str]:
        if command[0] == "gsl":
            command = [sys.executable, "-m", "gsl_k8s", *command[1:]]
        adapted = []
        for arg in command:
            if arg.startswith("--metrics-port="):
                arg = "--metrics-port=0"
            elif arg.startswith("--liveness="):
                arg = f"--liveness=http://{LOOPBACK}:{free_port()}/healthz"
            adapted.append(arg.replace("0.0.0.0", LOOPBACK))
        if "--metrics-port" in adapted:
            adapted[adapted.index("--metrics-port") + 1] = "0"
        return adapted

    def _kubeconfig(self, pod) -> Path:
        """A kubeconfig with the token of the Pod's ServiceAccount and its namespace, as
        in-cluster clients find them."""
        account = pod.spec.service_account_name or "default"
        token = service_account_token(self.core, self.namespace, account)
        path = self.workdir / f"{pod.metadata.name}.kubeconfig"
        return write_kubeconfig(path, self.server, account, token, self.namespace)

    def _add_target(self, port: int, pod) -> None:
        """List a trainer for Prometheus (file_sd), with the labels a PodMonitor would add."""
        targets = (
            json.loads(self.metrics_targets.read_text()) if self.metrics_targets.exists() else []
        )
        labels = {"namespace": self.namespace, "pod": pod.metadata.name}
        targets.append({"targets": [f"{LOOPBACK}:{port}"], "labels": labels})
        self.metrics_targets.write_text(json.dumps(targets))

    def _kill_process(self, name: str) -> None:
        process = self._running.get(name)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._running[name] = None

    def _delete_pod(self, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise

    def _set_phase(self, name: str, phase: str) -> None:
        body = {"status": {"phase": phase}}
        try:
            self.core.patch_namespaced_pod_status(name, self.namespace, body)
        except kubernetes.client.ApiException as err:
            if err.status != 404:  # deleted meanwhile
                raise

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)
        for process in self._running.values():
            if process is not None and process.poll() is None:
                process.kill()


class Operator:
    """`gsl operator` as a process, watching one namespace and reconciling every second;
    `kill` is a crash (SIGKILL), `start` a restart."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        env: dict[str, str],
        metrics_port: int = 0,
    ):
        self.command = [sys.executable, "-m", "gsl_k8s", "operator", "--namespace", namespace]
        self.command += ["--metrics-port", str(metrics_port), "--metrics-address", LOOPBACK]
        self.env = {
            **os.environ,
            **env,
            "KUBECONFIG": str(kubeconfig),
            "GSL_RECONCILE_SECONDS": "1",
        }
        self.log = log
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


class Namespace:
    """A test namespace: API clients, its stand-in kubelet, the S3 endpoint, and helpers."""

    def __init__(self, name, client, kubelet, s3_endpoint, workdir):
        self.name = name
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.kubelet = kubelet
        self.operator: Operator | None = None
        self.s3_endpoint = s3_endpoint
        self.workdir = workdir

    def experiment(self, name: str, patch: dict | None = None) -> dict:
        base = merge(
            TINY_SPEC,
            {
                "metadata": {"name": name},
                "spec": {
                    "storage": {"uri": f"s3://{self.name}/runs", "endpointUrl": self.s3_endpoint},
                    "kubernetes": {"credentialsSecret": "s3-credentials"},
                },
            },
        )
        return merge(base, patch or {})

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.name, PLURAL, body)

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.name, PLURAL, name)

    def jobs(self, name: str) -> list:
        selector = f"gsl.dev/experiment={name}"
        return self.batch.list_namespaced_job(self.name, label_selector=selector).items

    def wait_for_stage(self, name: str, stages: set[str], timeout: float = 300) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.get(name).get("status", {})
            if status.get("stage") in stages:
                return status
            time.sleep(0.5)
        logs = {p.name: p.read_text()[-3000:] for p in self.workdir.glob("*operator*.log")}
        pytest.fail(f"{name} never reached {stages}; status {status}\nlogs: {logs}")

    def condition(self, status: dict, kind: str) -> dict:
        return next(c for c in status["conditions"] if c["type"] == kind)
