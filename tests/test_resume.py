"""SIGTERM checkpoints and exits with 143; the same command resumes from that checkpoint."""

import json
import signal
import subprocess
import sys
import time

import pytest

from gsl_k8s.layout import GENERALIST, SPEC
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import TINY_SPEC, merge

BUDGET = 40_960  # a multiple of numEnvs x rolloutSteps, so the hard cap is reached exactly


def train_command(run_dir):
    return [
        *(sys.executable, "-m", "gsl_k8s", "train", "--run", str(run_dir), "--role", "generalist"),
        *("--metrics-port", "0"),
    ]


def trained_past(store, steps):
    return any(r["step"] > steps for r in read_progress(store, GENERALIST.progress))


@pytest.mark.slow
def test_sigterm_checkpoints_and_rerun_resumes(tmp_path):
    patch = {
        "spec": {
            "trainer": {"numEnvs": 32, "rolloutSteps": 64},
            "generalist": {"envSteps": BUDGET, "evaluation": {"everySteps": 16_384}},
        }
    }
    store = open_store(str(tmp_path))
    store.write_bytes(SPEC, parse_spec(merge(TINY_SPEC, patch)).to_json().encode())

    process = subprocess.Popen(train_command(tmp_path), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not trained_past(store, 10_000) and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "checkpoint saved" in stderr
    assert not store.exists(GENERALIST.result)

    interrupted = load_checkpoint(store, latest_checkpoint(store, GENERALIST.checkpoints))
    stopped_at = interrupted["counters"]["env_steps"]
    assert 0 < stopped_at < BUDGET
    records_before = len(read_progress(store, GENERALIST.progress))

    resumed = subprocess.run(train_command(tmp_path), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["env_steps"] == BUDGET
    records = read_progress(store, GENERALIST.progress)
    after = records[records_before:]
    assert after[0]["step"] > stopped_at  # continued, did not start over
    steps = [r["step"] for r in records if "charts/sps" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no step trained twice
