"""Shared helpers: tiny experiment specs written to a temporary directory."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gsl_k8s.spec import IMAGE_UID

REPO = Path(__file__).resolve().parents[1]
IMAGE_USER = f"{IMAGE_UID}:{IMAGE_UID}"  # the images' non-root user and group
TINY_SPEC = {
    "apiVersion": "gsl.dev/v1alpha1",
    "kind": "GSLExperiment",
    "metadata": {"name": "tiny"},
    "spec": {
        "seed": 3,
        "env": {"family": "forkmaze", "variations": 6},
        "trainer": {"numEnvs": 8, "rolloutSteps": 32, "updateEpochs": 4, "numMinibatches": 4},
        "generalist": {
            "envSteps": 6000,
            "evaluation": {"everySteps": 1024, "episodesPerVariation": 2},
            # flat whatever the curve: it fires at the 3rd evaluation, well before the cap
            "plateau": {"window": 3, "minImprovement": 2.0, "confidence": 0.0, "patience": 1},
        },
        "specialists": {
            "count": 3,
            "envSteps": 1024,
            "evaluation": {"everySteps": 512, "episodesPerVariation": 2},
            "parallelism": 2,
        },
        "demos": {"episodesPerSpecialist": 4, "generalistEpisodes": 4, "successOnly": False},
        "finetune": {
            "envSteps": 1024,
            "evaluation": {"everySteps": 512, "episodesPerVariation": 2},
        },
    },
}


def quickest_pipeline(batch: int) -> dict:
    """A patch of TINY_SPEC that runs every stage of an experiment at the least compute, for
    an env family whose steps (images, physics) are costly: one update of one minibatch per
    batch of `batch` env steps, one evaluation episode per variation after each batch (the
    generalist's plateau comes at the third evaluation), two specialists and a finetune of
    one batch each, no baseline."""
    each_batch = {"everySteps": batch, "episodesPerVariation": 1}
    return {
        "spec": {
            "trainer": {"updateEpochs": 1, "numMinibatches": 1},
            "generalist": {"evaluation": each_batch},
            "specialists": {"count": 2, "envSteps": batch, "evaluation": each_batch},
            "demos": {"episodesPerSpecialist": 2, "generalistEpisodes": 2},
            "finetune": {"envSteps": batch, "demoBatchSize": 16, "evaluation": each_batch},
            "baseline": {"enabled": False},
        }
    }


def gsl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the `gsl` command of this checkout; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "gsl_k8s", *args], capture_output=True, text=True, timeout=timeout
    )


def merge(base: dict, patch: dict) -> dict:
    """`base` with `patch` merged in, recursively."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# Fixtures that need `make test-deps` (Docker, the images, a Kubernetes build): the tests that use
# them are `slow`, outside `make test-fast`.
TEST_DEPS_FIXTURES = {"images", "cluster", "real_cluster", "kube_namespace"}


def pytest_configure(config: pytest.Config) -> None:
    """Torch in the test process trains on one thread, as each trainer task does
    (`trainer.threads`): on a busy runner more threads stall on each other, up to 15 times
    slower (tests/test_gail.py's learning test: 134 s with two threads, 9 s with one)."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that uses a fixture of TEST_DEPS_FIXTURES."""
    for item in items:
        if TEST_DEPS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def write_plan_of(store, subsets: list[list[int]], round_: int = 1, **fields) -> None:
    """Write a round's plan of the specialists' `subsets`; its other fields as given, else
    no plateau, step 0 pinned, every subset's variation weak and scored 0."""
    from gsl_k8s.records.plan import RoundPlan, write_plan

    weak = sorted(v for subset in subsets for v in subset)
    plan = {
        "plateau_step": None,
        "pinned_step": 0,
        "success_rate_at_pin": 0.0,
        "return_at_pin": 0.0,
        "scores": dict.fromkeys(weak, 0.0),
        "weak_variations": weak,
        "subsets": subsets,
    }
    write_plan(store, round_, RoundPlan(**{**plan, **fields}))


def finetune_context(spec, store, log):
    """The `TaskContext` of a round-1 finetune of `spec` on variations 0 and 1 (budget 1024,
    seed 0, CPU) whose progress records go to `log(step, metrics)`."""
    import torch

    from gsl_k8s.envs import make_family
    from gsl_k8s.layout import FINETUNE
    from gsl_k8s.trainer.backend import TaskContext

    return TaskContext(
        spec=spec,
        store=store,
        task=FINETUNE,
        variations=[0, 1],
        budget=1024,
        seed=0,
        family=make_family(spec.env),
        device=torch.device("cpu"),
        log=log,
        interrupted=lambda: False,
    )


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write TINY_SPEC, patched, as YAML; returns its path."""

    def write(patch: dict | None = None, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merge(TINY_SPEC, patch or {})))
        return path

    return write


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """`make images`, as a user runs it (Docker's layer cache makes a rebuild quick): the operator
    and CPU trainer images, under the names the chart and the spec default to."""
    import shutil

    from gsl_k8s.spec import KubernetesSpec

    def docker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)

    if shutil.which("docker") is None or docker("info").returncode != 0:
        pytest.fail("no Docker daemon answers: run `make test-deps`")
    built = subprocess.run(
        ["make", "-s", "images"], cwd=REPO, capture_output=True, text=True, timeout=3600
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    chart = yaml.safe_load((REPO / "charts/gsl/Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/gsl/values.yaml").read_text())
    names = {
        "operator": f"{values['image']['repository']}:{chart['appVersion']}",
        "trainer": KubernetesSpec().image,
    }
    for name in names.values():
        inspected = docker("image", "inspect", "--format", "{{.Config.User}}", name)
        assert inspected.returncode == 0, f"`make images` did not build {name}"
        assert inspected.stdout.strip() == IMAGE_USER
    return names


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server, shared by the session's tests."""
    from tests.servers import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def refusing_prometheus():
    """The URL of a Prometheus API that refuses every query as a syntax error."""
    from tests.servers import refusing_prometheus

    with refusing_prometheus() as url:
        yield url


@pytest.fixture
def s3_uri(s3_endpoint, monkeypatch, request):
    """`s3://<fresh bucket>/prefix` on the moto server, with this process's (and its
    children's) AWS settings pointing at it."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = "gsl-" + request.node.name.lower().replace("_", "-")[:50]
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prefix"


@pytest.fixture(scope="session")
def cluster():
    """A real control plane (tests/kube.py) with the GSLExperiment CRD installed; yields
    (admin kubeconfig, API client)."""
    import kubernetes

    from tests.kube import kube_cluster

    with kube_cluster() as kubeconfig:
        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        install_crd(client)
        yield kubeconfig, client


def install_crd(client) -> None:
    """Create the GSLExperiment CRD and wait until it is established."""
    import kubernetes

    from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, crd

    extensions = kubernetes.client.ApiextensionsV1Api(client)
    extensions.create_custom_resource_definition(crd())
    deadline = time.time() + 30
    while time.time() < deadline:
        status = extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status
        if any(c.type == "Established" and c.status == "True" for c in status.conditions or []):
            return
        time.sleep(0.2)
    pytest.fail("the GSLExperiment CRD was not established within 30 s")


@pytest.fixture(scope="session")
def real_cluster():
    """A real single-node cluster (tests/cluster.py) with the GSLExperiment CRD, which a
    test may replace with a new one (`.down()`, then `.up()`); `.kubeconfig` and `.client`
    reach it."""
    from tests.cluster import real_cluster

    with real_cluster(prepare=install_crd) as cluster:
        yield cluster


@pytest.fixture
def kube_namespace(cluster, request, tmp_path, s3_endpoint, monkeypatch):
    """A fresh namespace with an S3 bucket of its name, the credentials Secret
    `s3-credentials` and a stand-in kubelet running its Pods."""
    import boto3
    import kubernetes

    from tests.kube import CREDENTIALS, TEST_PROCESS_CREDENTIALS, FakeKubelet, Namespace

    kubeconfig, client = cluster
    core = kubernetes.client.CoreV1Api(client)
    name = request.node.name.lower().replace("_", "-")[:40].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    secret = {"metadata": {"name": "s3-credentials"}, "stringData": CREDENTIALS}
    core.create_namespaced_secret(name, secret)
    for key, value in TEST_PROCESS_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    kubelet = FakeKubelet(core, name, tmp_path, kubeconfig)
    kubelet.start()
    yield Namespace(name, client, kubelet, s3_endpoint, tmp_path)
    kubelet.stop()
