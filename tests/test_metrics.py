"""Trainer metrics, scraped by a real Prometheus (Debian's), and the plateau found from them."""

import json
import signal
import subprocess
import sys
import time

import pytest

from gsl_k8s.core.plateau import PlateauCriterion, find_plateau
from gsl_k8s.layout import GENERALIST, PLAN, SPEC, Task
from gsl_k8s.orchestration.metrics_source import (
    MetricsSourceError,
    PrometheusSource,
    default_queries,
)
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.metrics import TrainerMetrics
from tests.conftest import TINY_SPEC, gsl, merge
from tests.servers import free_port, prometheus_query, prometheus_server

EVERY = 4096
# A 3-evaluation trend of success rates rises by at most 1: every window is flat.
NEVER_IMPROVES = {"window": 3, "minImprovement": 2.0, "confidence": 0.0, "patience": 1}


def test_progress_records_map_to_prometheus_metrics():
    metrics = TrainerMetrics("exp", Task("specialist", 3), namespace="team-a")
    metrics.resumed_at(1000)
    metrics.observe(1500, {"charts/sps": 250.0, "losses/policy_loss": -0.5})
    metrics.observe(1500, {"eval/success_rate": 0.75, "eval/return": 2.5})
    metrics.phase.state("recording_demos")

    def value(name, **extra):
        labels = {"namespace": "team-a", "experiment": "exp", "role": "specialist", "index": "3"}
        labels |= extra
        return metrics.registry.get_sample_value(name, labels)

    assert value("gsl_env_steps_total") == 1500
    assert value("gsl_env_steps_per_second") == 250.0
    assert value("gsl_train_loss", loss="policy_loss") == -0.5
    assert value("gsl_eval_success_ratio") == 0.75
    assert value("gsl_eval_return") == 2.5
    assert value("gsl_eval_env_steps") == 1500
    assert value("gsl_task_phase", gsl_task_phase="recording_demos") == 1
    assert value("gsl_task_phase", gsl_task_phase="training") == 0
    assert 0 <= value("gsl_checkpoint_age_seconds") < 60


def wait_until(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def running_trainer(tmp_path):
    """A generalist `gsl train` serving metrics on 127.0.0.1, scraped by Prometheus."""
    patch = {"spec": {"generalist": {"envSteps": 400_000, "evaluation": {"everySteps": EVERY}}}}
    experiment = parse_spec(merge(TINY_SPEC, patch))
    store = open_store(str(tmp_path / "run"))
    store.write_bytes(SPEC, experiment.to_json().encode())
    port = free_port()
    scrape = {"job_name": "trainer", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
    started = time.time()
    with prometheus_server(tmp_path, scrape) as url:
        trainer = subprocess.Popen(
            [sys.executable, "-m", "gsl_k8s", "train", "--run", store.uri]
            + ["--role", "generalist", "--namespace", "team-a", "--metrics-address", "127.0.0.1"]
            + ["--metrics-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield experiment, store, url, started
        finally:
            trainer.send_signal(signal.SIGTERM)
            trainer.wait(60)


@pytest.mark.slow  # Debian's Prometheus (make test-deps)
def test_prometheus_scrapes_the_trainer_and_the_plateau_fires_from_it(running_trainer):
    experiment, store, url, started = running_trainer
    selector = '{experiment="tiny",role="generalist",index="0"}'
    wait_until(
        lambda: any(
            float(r["value"][1]) >= 4 * EVERY
            for r in prometheus_query(url, "gsl_eval_env_steps" + selector)
        ),
        timeout=120,
        what="four evaluations scraped",
    )
    for name in (
        "gsl_env_steps_total",
        "gsl_env_steps_per_second",
        "gsl_eval_success_ratio",
        "gsl_eval_return",
        "gsl_checkpoint_age_seconds",
    ):
        [series] = prometheus_query(url, name + selector)
        assert series["metric"]["job"] == "trainer"
        assert series["metric"]["namespace"] == "team-a"
    [steps] = prometheus_query(url, "gsl_env_steps_total" + selector)
    assert float(steps["value"][1]) >= 4 * EVERY
    losses = prometheus_query(url, "gsl_train_loss" + selector)
    assert {"policy_loss", "value_loss", "entropy"} <= {s["metric"]["loss"] for s in losses}
    [phase] = prometheus_query(url, f"gsl_task_phase{selector} == 1")
    assert phase["metric"]["gsl_task_phase"] in ("training", "evaluating")

    # The operator's default queries match only the experiment's own namespace.
    other = PrometheusSource(url, *default_queries(experiment, "team-b"), since=started)
    assert other.evaluations() == []
    # Called repeatedly, as the controller does: each call reads only the new time range.
    queries = default_queries(experiment, "team-a")
    source = PrometheusSource(url, *queries, since=started, resolution=0.25)
    series = wait_until(
        lambda: points if len(points := source.evaluations()) >= 4 else None,
        timeout=120,
        what="four evaluations from the Prometheus source",
    )
    recorded = {
        r["step"]: r["eval/success_rate"]
        for r in read_progress(store, GENERALIST.progress)
        if "eval/success_rate" in r
    }
    assert all(recorded[step] == value for step, value in series)  # the same evaluations
    criterion = PlateauCriterion(window=3, min_improvement=2.0, confidence=0.0, patience=1)
    assert find_plateau(series, criterion) is not None


@pytest.mark.slow  # Debian's Prometheus (make test-deps)
def test_prometheus_source_errors(running_trainer):
    _, _, url, started = running_trainer
    with pytest.raises(MetricsSourceError, match="rejected") as error:
        PrometheusSource(url, "gsl_eval_success_ratio{", "up", since=started).evaluations()
    assert not error.value.transient
    with pytest.raises(MetricsSourceError, match="cannot reach Prometheus") as error:
        dead = f"http://127.0.0.1:{free_port()}"
        PrometheusSource(dead, "up", "up", since=started).evaluations()
    assert error.value.transient


@pytest.mark.slow  # Debian's Prometheus (make test-deps)
def test_gsl_run_finds_the_plateau_through_prometheus(write_spec, tmp_path):
    """The local backend's trainers are discovered by Prometheus (file_sd); the controller
    reads the generalist's evaluations from Prometheus and stops it at the plateau."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    targets = {"files": [str(run_dir / "prometheus_targets.json")], "refresh_interval": "1s"}
    scrape = {"job_name": "gsl", "file_sd_configs": [targets]}
    with prometheus_server(tmp_path, scrape) as url:
        spec = write_spec(
            {
                "spec": {
                    "generalist": {
                        "envSteps": 400_000,
                        "evaluation": {"everySteps": EVERY},
                        "plateau": NEVER_IMPROVES,
                        "metricsSource": {"prometheus": {"url": url, "resolutionSeconds": 0.25}},
                    },
                    "specialists": {"count": 1},  # the rest of the run, as quick as it goes
                    "baseline": {"enabled": False},
                }
            }
        )
        proc = gsl("run", str(spec), "--out", str(run_dir))
        assert proc.returncode == 0, proc.stderr
        # The trainers have exited (their series are stale): look back over the run.
        scraped = prometheus_query(
            url, 'count by (role) (count_over_time(gsl_env_steps_total{experiment="tiny"}[10m]))'
        )
    # The generalist is scraped for sure; the tiny later tasks may end before discovery.
    assert "generalist" in {s["metric"]["role"] for s in scraped}
    plan = json.loads((run_dir / PLAN).read_text())
    assert plan["plateau_step"] is not None and plan["plateau_step"] < 100_000
    targets_listed = json.loads((run_dir / "prometheus_targets.json").read_text())
    assert {t["labels"]["task"] for t in targets_listed} >= {"generalist", "finetune"}
