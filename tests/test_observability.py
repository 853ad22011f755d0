"""Alerts (promtool unit tests) and dashboards (every panel's PromQL against a real
Prometheus that scraped the operator and the trainers of a whole experiment)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.kube import CREDENTIALS, Operator
from tests.servers import free_port, prometheus_binary, prometheus_server

ALERTS = Path("charts/gsl/files/alerts.yaml")
DASHBOARDS = sorted(Path("charts/gsl/dashboards").glob("*.json"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    prometheus_binary()  # fails the test, with the install hint, where Prometheus is missing
    return subprocess.run([shutil.which("promtool"), *args], capture_output=True, text=True)


@pytest.mark.slow  # Debian's Prometheus (make test-deps)
def test_every_alert_has_a_passing_unit_test():
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "tests/alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load(Path("tests/alerts_test.yaml").read_text())["tests"]
    covered = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert covered == alerts


def test_the_dashboards_are_generated():
    check = subprocess.run([sys.executable, "scripts/dashboards.py", "--check"])
    assert check.returncode == 0


def panel_queries() -> list[tuple[str, str]]:
    return [
        (f"{path.stem}: {panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def query_range(url: str, expr: str, start: float) -> list:
    params = {"query": expr, "start": start, "end": time.time(), "step": 1}
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{urllib.parse.urlencode(params)}") as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_dashboard_query_returns_data_after_a_run(kube_namespace, cluster, tmp_path):
    """The operator and the trainers of a whole experiment, scraped by Prometheus; then each
    panel's PromQL (with $namespace, $experiment and $__rate_interval filled in) must parse
    and return series."""
    ns = kube_namespace
    kubeconfig, _ = cluster
    ns.core.create_namespaced_service_account(ns.name, {"metadata": {"name": "gsl-trainer"}})
    ns.kubelet.metrics_targets = ns.workdir / "trainers.json"
    ns.kubelet.metrics_targets.write_text("[]")
    port = free_port()
    scrape = {
        "job_name": "gsl",
        "honor_labels": True,  # as the chart's ServiceMonitor and PodMonitor
        "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": ns.name}}],
        "file_sd_configs": [{"files": [str(ns.kubelet.metrics_targets)], "refresh_interval": "1s"}],
    }
    started = time.time()
    with prometheus_server(tmp_path, scrape) as url:
        operator = Operator(kubeconfig, ns.name, ns.workdir / "operator.log", CREDENTIALS, port)
        operator.start()
        try:
            # Slow enough evaluations that every trainer is discovered and scraped.
            slow = {"episodesPerVariation": 16}
            patch = {
                "spec": {
                    "generalist": {"evaluation": slow},
                    "specialists": {"evaluation": slow},
                    "finetune": {"evaluation": slow},
                }
            }
            ns.create(ns.experiment("dash", patch))
            assert ns.wait_for_stage("dash", {"Succeeded", "Failed"})["stage"] == "Succeeded"
            time.sleep(1)  # one more scrape of the operator
        finally:
            operator.kill()
        empty = []
        for name, expr in panel_queries():
            expr = expr.replace("$namespace", ns.name).replace("$experiment", "dash")
            expr = expr.replace("$__rate_interval", "1m")
            if not query_range(url, expr, started):
                empty.append(name)
    assert not empty, f"panels without data: {empty}"
    assert len(panel_queries()) >= 12


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_are_well_formed(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("gsl-") and dashboard["panels"]
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(set(positions)) == len(positions)  # no panel hides another
