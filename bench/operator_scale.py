"""The operator at scale, against a real kube-apiserver (the tests' control plane).

    python bench/operator_scale.py [--specialists 500] [--experiments 20]

Plays the generalist (its evaluation records, checkpoints and result go straight into the
S3 test server), then measures the operator: the time from the generalist's end to every
specialist Job created, Kubernetes API requests per reconcile, and the size of the
experiment's status. Then the same for many experiments at once. Needs `make test-deps`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' servers

from gsl_k8s.backends.kubernetes.crd import GROUP, PLURAL, VERSION, crd  # noqa: E402
from gsl_k8s.layout import GENERALIST  # noqa: E402
from gsl_k8s.records.progress import ProgressWriter  # noqa: E402
from gsl_k8s.records.result import TaskResult, write_result  # noqa: E402
from gsl_k8s.store import open_store, put_artifact  # noqa: E402
from gsl_k8s.store.s3 import S3Options  # noqa: E402
from tests.kube import Operator, kube_cluster  # noqa: E402
from tests.servers import free_port, moto_server  # noqa: E402

NAMESPACE = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def experiment(name: str, specialists: int, endpoint: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GSLExperiment",
        "metadata": {"name": name},
        "spec": {
            "env": {"family": "forkmaze", "variations": specialists},
            "generalist": {"plateau": {"window": 3, "confidence": 0.0, "patience": 1}},
            "specialists": {"count": specialists, "parallelism": specialists},
            "baseline": {"enabled": False},
            "storage": {"uri": f"s3://{NAMESPACE}/runs", "endpointUrl": endpoint},
        },
    }


def play_generalist(name: str, variations: int, endpoint: str) -> None:
    """A flat learning curve (a plateau at the third evaluation), its checkpoints, its end."""
    store = open_store(f"s3://{NAMESPACE}/runs/{NAMESPACE}/{name}", S3Options(endpoint))
    progress = ProgressWriter(store, GENERALIST.progress)
    for step in (0, 1000, 2000, 3000):
        put_artifact(store, GENERALIST.checkpoint(step), b"weights")
        per_variation = {str(v): 0.5 for v in range(variations)}
        record = {"eval/success_rate": 0.5, "eval/return": 0.5, "eval/per_variation": per_variation}
        progress.write(step, record, flush=True)
    write_result(store, GENERALIST, TaskResult(3000, 0, "stopped", final_eval={}))


def count_jobs(batch, role: str) -> int:
    selector = f"gsl.dev/role={role}"
    return len(batch.list_namespaced_job(NAMESPACE, label_selector=selector).items)


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        lines = response.read().decode().splitlines()
    return {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.startswith("gsl_operator_")
    }


class Cluster:
    """The API clients, the operator's metrics port and the S3 endpoint of one bench."""

    def __init__(self, client, endpoint: str, metrics_port: int):
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.endpoint = endpoint
        self.metrics_port = metrics_port
        self.jobs = 0  # specialist Jobs created so far
        self.experiments = 0

    def measure(self, label: str, count: int, each: int) -> dict:
        """Start `count` experiments of `each` specialists, end their generalists, and time
        the operator until every specialist Job exists."""
        names = [f"scale-{self.experiments + i}" for i in range(count)]
        for name in names:
            body = experiment(name, each, self.endpoint)
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        self.experiments += count
        generalists = self.experiments
        wait(lambda: count_jobs(self.batch, "generalist") >= generalists, 120, "generalists")
        before = scrape(self.metrics_port)
        for name in names:
            play_generalist(name, each, self.endpoint)
        plateau = time.time()
        self.jobs += count * each
        expected = self.jobs
        wait(lambda: count_jobs(self.batch, "specialist") >= expected, 300, "specialist Jobs")
        seconds = time.time() - plateau
        after = scrape(self.metrics_port)
        ok = f'gsl_operator_reconciles_total{{namespace="{NAMESPACE}",result="ok"}}'
        reconciles = after[ok] - before.get(ok, 0)
        api = f'gsl_operator_api_requests_total{{namespace="{NAMESPACE}"}}'
        requests = after[api] - before.get(api, 0)
        statuses = [
            self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, n)
            for n in names
        ]
        status = max(len(json.dumps(s.get("status", {}))) for s in statuses)
        return {
            "label": label,
            "jobs": count * each,
            "seconds": seconds,
            "requests": requests / max(reconciles, 1),
            "status": status,
        }


def run(specialists: int, experiments: int) -> None:
    os.environ.update(CREDENTIALS, AWS_REGION="us-east-1")
    with (
        kube_cluster() as kubeconfig,
        moto_server() as endpoint,
        tempfile.TemporaryDirectory() as tmp,
    ):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=NAMESPACE)
        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(crd())
        kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": NAMESPACE}})
        time.sleep(2)  # the CRD becomes established
        port = free_port()
        operator = Operator(kubeconfig, NAMESPACE, Path(tmp, "operator.log"), CREDENTIALS, port)
        operator.start()
        cluster = Cluster(client, endpoint, port)
        each = specialists // experiments
        try:
            rows = [
                cluster.measure(f"1 experiment x {specialists} specialists", 1, specialists),
                cluster.measure(
                    f"{experiments} experiments x {each} specialists", experiments, each
                ),
            ]
        finally:
            operator.kill()
    header = ("run", "Jobs", "plateau->all Jobs (s)", "API req/reconcile", "status bytes")
    print(f"{header[0]:<34}{header[1]:>6}{header[2]:>23}{header[3]:>19}{header[4]:>14}")
    for r in rows:
        print(
            f"{r['label']:<34}{r['jobs']:>6}{r['seconds']:>23.1f}"
            f"{r['requests']:>19.1f}{r['status']:>14}"
        )
    first = rows[0]
    print(
        f"targets: all Jobs within 30 s: {first['seconds']:.1f} s; "
        f"status under 16 KiB: {first['status']} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specialists", type=int, default=500)
    parser.add_argument("--experiments", type=int, default=20)
    args = parser.parse_args()
    run(args.specialists, args.experiments)


if __name__ == "__main__":
    main()
