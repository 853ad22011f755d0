"""The Helm chart with a real `helm`: lint, render and validate, and install, upgrade and
uninstall on the real API server, where the chart's operator runs an example to Succeeded."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from gsl_k8s.backends.kubernetes.crd import crd_yaml
from gsl_k8s.spec import IMAGE_UID, parse_spec
from tests.conftest import TINY_SPEC, merge
from tests.kube import BIN
from tests.pod_security import violations

CHART = "charts/gsl"
VALIDATE = str(Path(sys.executable).with_name("kubernetes-validate"))
TINY_BUDGETS = {
    k: TINY_SPEC["spec"][k] for k in ("trainer", "generalist", "specialists", "finetune")
}


def tool(name: str, *args: str, kubeconfig: Path | None = None, check: bool = True):
    """Run helm or kubectl; helm keeps its state in a temporary home."""
    home = Path(tempfile.gettempdir(), "gsl-helm-home")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run([str(BIN / name), *args], env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{name} {' '.join(args)}:\n{result.stderr}"
    return result


def test_the_chart_ships_the_generated_crd_and_the_plain_install_is_rendered_from_it():
    assert Path(CHART, "crds/gslexperiments.gsl.dev.yaml").read_text() == crd_yaml()
    rendered = tool("helm", "template", "gsl", CHART, "--namespace", "gsl-system", "--include-crds")
    assert Path("manifests/install.yaml").read_text() == rendered.stdout, "run: make manifests"


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "operator.watchAllNamespaces=true"],
        ["--set", "operator.watchNamespaces={team-a,team-b}", "--set", "tests.storageUri=s3://b/p"],
    ],
    ids=["default", "all-namespaces", "two-namespaces-with-test"],
)
def test_the_chart_lints_and_renders_valid_manifests(values, tmp_path):
    assert "0 chart(s) failed" in tool("helm", "lint", "--strict", CHART, *values).stdout
    rendered = tool("helm", "template", "gsl", CHART, "-n", "gsl-system", "--include-crds", *values)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered.stdout)
    validated = subprocess.run(
        [VALIDATE, "--strict", "-k", "1.37.0", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    objects = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = [d["kind"] for d in objects]
    assert kinds.count("Deployment") == 1 and "CustomResourceDefinition" in kinds
    [operator] = [d["spec"]["template"] for d in objects if d["kind"] == "Deployment"]
    assert violations(operator["spec"], operator["metadata"].get("annotations")) == []
    assert ("ClusterRole" in kinds) == ("--set" in values and "watchAll" in values[1])


def render(tmp_path: Path, *values: str) -> list[dict]:
    """The chart's objects (its test hooks included) for `values`, valid by Kubernetes
    1.37's strict schemas."""
    rendered = tool("helm", "template", "gsl", CHART, "-n", "gsl-system", *values)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered.stdout)
    validated = subprocess.run(
        [VALIDATE, "--strict", "-k", "1.37.0", str(manifest)], capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def test_the_chart_defaults_run_its_pods_as_the_images_user(tmp_path):
    objects = render(tmp_path, "--set", "tests.storageUri=s3://b/p")
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    pods += [o["spec"] for o in objects if o["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID and "imagePullSecrets" not in pod


def test_a_private_registry_a_platform_assigned_user_and_other_names(tmp_path):
    """imagePullSecrets and a podSecurityContext without runAsUser (OpenShift) reach the
    operator's pod, the `helm test` pod and the test experiment's trainers; every object
    is named after fullnameOverride and labelled with nameOverride."""
    objects = render(
        tmp_path,
        *("--set", "imagePullSecrets[0].name=registry-credentials"),
        *("--set", "podSecurityContext.runAsUser=null"),
        *("--set", "nameOverride=rl", "--set", "fullnameOverride=ml-gsl"),
        *("--set", "tests.storageUri=s3://b/p"),
    )
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    [test_pod] = [o for o in objects if o["kind"] == "Pod"]
    for pod in (deployment["spec"]["template"]["spec"], test_pod["spec"]):
        assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert "runAsUser" not in pod["securityContext"]
        assert violations(pod) == []  # runAsNonRoot, the restricted profile's
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and "experiment.yaml" in o["data"]]
    experiment = parse_spec(yaml.safe_load(config["data"]["experiment.yaml"]))
    assert experiment.spec.kubernetes.image_pull_secrets == ["registry-credentials"]
    trainers = experiment.spec.kubernetes.pod_security_context
    assert trainers.run_as_user is None and trainers.run_as_group is None
    named = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    trainer_account = "gsl-trainer"  # the experiments' serviceAccountName, not the release's
    assert all(
        o["metadata"]["name"].startswith("ml-gsl-") or o["metadata"]["name"] == trainer_account
        for o in named
    )
    labelled = [o["metadata"]["labels"] for o in named if "labels" in o["metadata"]]
    assert {labels["app.kubernetes.io/name"] for labels in labelled} == {"rl"}


def test_values_outside_the_schema_are_refused():
    refused = tool("helm", "lint", CHART, "--set", "metrics.port=0", check=False)
    assert refused.returncode != 0 and "metrics.port" in refused.stdout


def test_helm_install_upgrade_uninstall(kube_namespace, cluster):
    """`helm install`, then the CPU example (at test budgets) runs to Succeeded under the
    chart's operator, running as the chart's ServiceAccount, whose Role grants what it
    needs and nothing more (trainers get nothing); then upgrade and uninstall."""
    ns = kube_namespace
    kubeconfig, _ = cluster
    install = tool(
        "helm",
        *("install", "gsl", CHART, "-n", ns.name),
        *("--set", "s3.existingSecret=s3-credentials", "--set", "operator.reconcileSeconds=1"),
        kubeconfig=kubeconfig,
    )
    assert "kubectl get gsl -n <namespace> -w" in install.stdout  # NOTES.txt

    example = yaml.safe_load(Path("manifests/examples/forkmaze.yaml").read_text())
    storage = {"uri": f"s3://{ns.name}/runs", "endpointUrl": ns.s3_endpoint}
    patch = {"spec": {**TINY_BUDGETS, "baseline": {"enabled": False}, "storage": storage}}
    experiment = ns.workdir / "forkmaze.yaml"
    experiment.write_text(yaml.safe_dump(merge(example, patch)))
    tool("kubectl", "apply", "-n", ns.name, "-f", str(experiment), kubeconfig=kubeconfig)
    status = ns.wait_for_stage("forkmaze", {"Succeeded", "Failed"})
    assert status["stage"] == "Succeeded", status
    operator_pods = [p for p in ns.kubelet.started if p.startswith("gsl-operator-")]
    assert len(operator_pods) == 1

    def can(account: str, *request: str) -> bool:
        user = f"--as=system:serviceaccount:{ns.name}:{account}"
        answer = tool(
            "kubectl",
            "auth",
            "can-i",
            *("-n", ns.name),
            *request,  # may name another namespace
            user,
            kubeconfig=kubeconfig,
            check=False,
        )
        return answer.stdout.strip() == "yes"

    granted = [
        ("create", "jobs.batch"),
        ("list", "jobs.batch"),
        ("delete", "jobs.batch"),  # a failed or deleted experiment's
        ("watch", "gslexperiments.gsl.dev"),
        ("patch", "gslexperiments.gsl.dev", "--subresource=status"),
        ("create", "events"),
        ("list", "pods"),  # how a failed Job's pods ended
    ]
    denied = [
        ("list", "secrets", "--all-namespaces"),
        ("get", "secrets"),
        ("create", "pods", "--subresource=exec"),
        ("create", "pods"),
        ("delete", "jobs.batch", "-n", "default"),  # only in the watched namespaces
        ("create", "gslexperiments.gsl.dev"),
        ("delete", "gslexperiments.gsl.dev"),
        ("list", "jobs.batch", "--all-namespaces"),
    ]
    assert all(can("gsl-operator", *request) for request in granted)
    assert not [r for r in denied if can("gsl-operator", *r)]
    assert not [r for r in granted + denied if can("gsl-trainer", *r)]
    assert "Forbidden" not in "".join(p.read_text() for p in ns.workdir.glob("gsl-operator-*.log"))

    # Upgrade: a new operator pod replaces the old one (`helm test`, which runs containers
    # of the operator image, is tested on a real node: tests/test_real_cluster.py).
    tool(
        "helm",
        *("upgrade", "gsl", CHART, "-n", ns.name, "--reuse-values"),
        *("--set", "operator.reconcileSeconds=2"),
        kubeconfig=kubeconfig,
    )
    deadline = time.time() + 60
    while len([p for p in ns.kubelet.started if p.startswith("gsl-operator-")]) < 2:
        assert time.time() < deadline, "the upgrade started no new operator pod"
        time.sleep(0.5)
    history = tool("helm", "history", "gsl", "-n", ns.name, kubeconfig=kubeconfig).stdout
    assert "Upgrade complete" in history

    tool("helm", "uninstall", "gsl", "-n", ns.name, kubeconfig=kubeconfig)
    deployments = tool(
        "kubectl",
        "get",
        "deploy,role,rolebinding,sa",
        "-n",
        ns.name,
        "-o",
        "name",
        kubeconfig=kubeconfig,
    ).stdout
    assert "gsl-operator" not in deployments and "gsl-trainer" not in deployments
    crds = tool("kubectl", "get", "crd", "-o", "name", kubeconfig=kubeconfig).stdout
    assert "gslexperiments.gsl.dev" in crds  # Helm never deletes CRDs


@pytest.mark.parametrize(
    "example", sorted(Path("manifests/examples").glob("*.yaml")), ids=lambda p: p.stem
)
def test_examples_are_valid_experiments(example, cluster):
    """Locally valid (`gsl validate`), and accepted by the API server's schema."""
    validated = subprocess.run(
        [sys.executable, "-m", "gsl_k8s", "validate", str(example)], capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stderr
    kubeconfig, _ = cluster
    tool(
        "kubectl",
        "apply",
        "--dry-run=server",
        "-n",
        "default",
        "-f",
        str(example),
        kubeconfig=kubeconfig,
    )
