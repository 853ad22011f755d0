"""A real single-node Kubernetes v1.20.2 cluster: the control plane of tests/kube.py plus
kube-scheduler and a kubelet that runs pods as Docker containers through its built-in
dockershim, all listening on 127.0.0.1.

There is no pod network: pods use hostNetwork, on 127.0.0.1 (the node's name and address);
any other pod gets a network namespace with only a loopback interface (CNI `loopback`), so
nothing reaches Docker's bridge. Images are this machine's (imagePullPolicy Never); the
sandbox ("pause") image is built here from a few lines of C.

Needs root and a Docker daemon with the cgroupfs driver on cgroup v1. The kubelet takes
over that daemon's Kubernetes containers, so there is one cluster per machine: test runs
that overlap (two checkouts, say) take turns through a lock file. The kubelet changes host
state that the teardown restores: sysctls, /var/log/pods and /var/log/containers, the
kubepods cgroups and mounts under its root directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import kubernetes
import pytest

from tests.kube import BIN, kube_binary, kube_cluster
from tests.servers import LOOPBACK, free_port

NODE = LOOPBACK  # an IP as the node name: the kubelet takes it as the node's address
PAUSE_IMAGE = "gsl-k8s/pause:1"
CNI_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
POD_CONTAINERS = "label=io.kubernetes.docker.type"  # what dockershim creates
SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops")
LOG_DIRS = (Path("/var/log/pods"), Path("/var/log/containers"))
HOST_LOCK = Path(tempfile.gettempdir()) / "gsl-k8s-real-cluster.lock"
HOST_LOCK_TIMEOUT = 30 * 60  # another run's real-cluster tests take minutes, not this long
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void down(int s) { _exit(0); }
static void reap(int s) { while (waitpid(-1, 0, WNOHANG) > 0); }
int main(void) {
  struct sigaction a = {0};
  a.sa_handler = down; sigaction(SIGINT, &a, 0); sigaction(SIGTERM, &a, 0);
  a.sa_handler = reap; a.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &a, 0);
  for (;;) pause();
}
"""


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def check_host() -> None:
    """Fail (never skip) where this machine cannot run the node."""
    if os.geteuid() != 0:
        pytest.fail("the real-cluster tests run a kubelet: run them as root")
    info = docker("info", "--format", "{{json .}}", check=False)
    if info.returncode != 0:
        pytest.fail("no Docker daemon answers: run `make test-deps`")
    daemon = json.loads(info.stdout)
    if (daemon["CgroupDriver"], daemon["CgroupVersion"]) != ("cgroupfs", "1"):
        pytest.fail("the kubelet here needs Docker's cgroupfs driver on cgroup v1")
    if not (CNI_PLUGINS / "loopback").exists():
        pytest.fail("the CNI plugins are missing: run `make test-deps`")


@contextmanager
def host_lock() -> Iterator[None]:
    """This machine's one cluster, held: waits for another test run's cluster to go."""
    with HOST_LOCK.open("a") as lock:
        deadline = time.time() + HOST_LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    pytest.fail(f"another test run held {HOST_LOCK} for {HOST_LOCK_TIMEOUT} s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def clear_orphaned_pods() -> None:
    """Remove the pod containers of a kubelet that is gone (an interrupted test run); fail
    where a kubelet that is not ours still runs them."""
    ids = docker("ps", "-aq", "--filter", POD_CONTAINERS).stdout.split()
    if not ids:
        return
    if subprocess.run(["pgrep", "-x", "kubelet"], capture_output=True).returncode == 0:
        pytest.fail("a kubelet outside these tests runs this Docker daemon's pods")
    docker("rm", "-f", *ids)


def build_pause_image() -> None:
    """The sandbox image: a static binary that waits for a signal, FROM scratch."""
    if docker("image", "inspect", PAUSE_IMAGE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as context:
        source = Path(context) / "pause.c"
        source.write_text(PAUSE_C)
        subprocess.run(
            ["gcc", "-Os", "-static", "-s", "-o", f"{context}/pause", str(source)], check=True
        )
        dockerfile = 'FROM scratch\nCOPY pause /\nENTRYPOINT ["/pause"]\n'
        (Path(context) / "Dockerfile").write_text(dockerfile)
        docker("build", "--network", "none", "-q", "-t", PAUSE_IMAGE, context)


def node_commands(state: Path):
    """The scheduler and the kubelet, for `kube_cluster(node=...)`; the kubelet keeps
    everything of its own under `state`."""

    def commands(workdir: Path, kubeconfig: Path) -> dict[str, list[str]]:
        cni = state / "cni"
        (cni / "net.d").mkdir(parents=True)
        loopback = {"cniVersion": "0.4.0", "name": "lo", "plugins": [{"type": "loopback"}]}
        (cni / "net.d/10-lo.conflist").write_text(json.dumps(loopback))
        return {
            "kube-scheduler": [
                kube_binary("kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={free_port()}",
                "--port=0",
            ],
            "kubelet": [
                kube_binary("kubelet"),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE}",
                "--container-runtime=docker",
                "--cgroup-driver=cgroupfs",
                f"--pod-infra-container-image={PAUSE_IMAGE}",
                "--fail-swap-on=false",
                f"--root-dir={state / 'kubelet'}",
                f"--cert-dir={state / 'kubelet/pki'}",
                f"--volume-plugin-dir={state / 'kubelet/volume-plugins'}",
                f"--experimental-dockershim-root-directory={state / 'dockershim'}",
                *("--network-plugin=cni", f"--cni-conf-dir={cni / 'net.d'}"),
                *(f"--cni-bin-dir={CNI_PLUGINS}", f"--cni-cache-dir={cni / 'cache'}"),
                f"--address={LOOPBACK}",
                f"--port={free_port()}",
                "--read-only-port=0",
                f"--healthz-bind-address={LOOPBACK}",
                f"--healthz-port={free_port()}",
                "--make-iptables-util-chains=false",  # leave the host's iptables alone
                "--image-gc-high-threshold=100",  # and other users' images
                "--image-gc-low-threshold=99",
                "--node-status-update-frequency=2s",  # Ready in about 8 s, not 17
            ],
        }

    return commands


def wait_until_usable(client, timeout: float = 120) -> None:
    """Until the node is Ready and untainted and the default ServiceAccount exists."""
    core = kubernetes.client.CoreV1Api(client)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            node = core.read_node(NODE)
            core.read_namespaced_service_account("default", "default")
        except kubernetes.client.ApiException:
            time.sleep(0.5)
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        if ready and not node.spec.taints:
            return
        time.sleep(0.5)
    pytest.fail(f"node {NODE} did not become Ready and untainted within {timeout:.0f} s")


def read_sysctls() -> dict[str, str]:
    return {
        key: subprocess.run(["sysctl", "-n", key], capture_output=True, text=True).stdout.strip()
        for key in SYSCTLS
    }


def remove_pod_containers() -> None:
    """Kill and remove every container of the kubelet's pods."""
    ids = docker("ps", "-aq", "--filter", POD_CONTAINERS).stdout.split()
    if ids:
        docker("rm", "-f", *ids)


def restore_host(state: Path, sysctls: dict[str, str], created: list[Path]) -> None:
    """Undo what the kubelet did to the host, once it has stopped."""
    for key, value in sysctls.items():
        if value:
            subprocess.run(["sysctl", "-qw", f"{key}={value}"], check=True)
    remove_pod_containers()
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{state}/")), reverse=True):
        if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mount], capture_output=True)
    for kubepods in Path("/sys/fs/cgroup").glob("*/kubepods"):
        cgroups = [kubepods, *(p for p in kubepods.rglob("*") if p.is_dir())]
        for cgroup in sorted(cgroups, key=lambda p: len(p.parts), reverse=True):
            with suppress(OSError):  # one the kernel still holds goes with its last task
                cgroup.rmdir()
    for path in created:
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


@contextmanager
def node_cluster() -> Iterator[tuple[Path, object]]:
    """One cluster's life, the host lock held: up and usable, then gone without a trace
    (its etcd data, the kubelet's state, its containers, the host changes undone)."""
    clear_orphaned_pods()
    sysctls = read_sysctls()
    created = [d for d in LOG_DIRS if not d.exists()]
    state = Path(tempfile.mkdtemp(prefix="kubelet-"))
    try:
        with kube_cluster(node=node_commands(state)) as kubeconfig:
            client = kubernetes.config.new_client_from_config(str(kubeconfig))
            wait_until_usable(client)
            yield kubeconfig, client
    finally:
        restore_host(state, sysctls, created)


class RealCluster:
    """This machine's one real cluster, which a test may lose and replace: `down()` tears
    it down completely, `up()` brings up a new one (new etcd, apiserver, kubelet and admin
    kubeconfig). `prepare(client)` runs on every cluster once it is usable."""

    def __init__(self, prepare: Callable[[object], None]):
        self.prepare = prepare
        self._life = ExitStack()
        self.kubeconfig: Path
        self.client: object

    def up(self) -> None:
        """A new cluster, prepared."""
        self.kubeconfig, self.client = self._life.enter_context(node_cluster())
        self.prepare(self.client)

    def down(self) -> None:
        """Tear the cluster down as a lost machine goes: its workloads die at once, then
        its processes stop and the host changes are undone."""
        remove_pod_containers()
        self._life.close()


@contextmanager
def real_cluster(prepare: Callable[[object], None] = lambda client: None) -> Iterator[RealCluster]:
    """The machine's cluster, usable (and replaceable) while the context lasts."""
    check_host()
    build_pause_image()
    with host_lock():
        cluster = RealCluster(prepare)
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The cached kubectl with the admin kubeconfig; output as text."""
    return subprocess.run(
        [str(BIN / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=check,
    )
