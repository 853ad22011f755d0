"""Every example spec validates, with the same checks as `gsl run`, and every Kubernetes
example is its local experiment with storage and Jobs added, nothing else."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import gsl

EXAMPLES = sorted(Path("examples").glob("*.yaml")) + sorted(
    Path("manifests/examples").glob("*.yaml")
)
KUBERNETES_ONLY = {"storage", "kubernetes"}  # the keys of spec a Kubernetes example may change


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_validates(example):
    proc = gsl("validate", str(example))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "example", sorted(Path("manifests/examples").glob("*.yaml")), ids=lambda p: p.stem
)
def test_a_kubernetes_example_runs_the_local_experiment(example):
    kubernetes = yaml.safe_load(example.read_text())
    local = yaml.safe_load(Path("examples", example.name).read_text())

    def experiment(obj: dict) -> dict:
        spec = {k: v for k, v in obj["spec"].items() if k not in KUBERNETES_ONLY}
        return {**obj, "metadata": {**obj["metadata"], "namespace": None}, "spec": spec}

    assert experiment(kubernetes) == experiment(local)
    assert kubernetes["spec"]["storage"]["uri"].startswith("s3://")


def test_the_kubernetes_examples_are_generated():
    check = subprocess.run(
        [sys.executable, "scripts/kube_examples.py", "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
