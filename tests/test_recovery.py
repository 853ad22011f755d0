"""`gsl run` on S3: an experiment whose machine is lost mid-specialists resumes on a fresh one
from its bucket, redoing no finished task, and leaves the documented layout, a manifest that
matches the objects, and checkpoints that refuse to load once damaged."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import boto3
import pytest

from gsl_k8s.errors import EXIT_FAILURE
from gsl_k8s.layout import (
    BASELINE,
    FINETUNE,
    GENERALIST,
    PLAN,
    PLATEAU_CHECKPOINT,
    REPORT,
    Task,
    checkpoint_step,
)
from gsl_k8s.records.progress import read_progress
from gsl_k8s.records.result import read_result
from gsl_k8s.store import ArtifactStore, list_artifacts, open_store

SPECIALISTS = [Task("specialist", i) for i in range(3)]
# One specialist at a time, each long enough to checkpoint several times before it ends.
LONGER_SPECIALISTS = {
    "spec": {
        "specialists": {
            "parallelism": 1,
            "envSteps": 4096,
            "evaluation": {"everySteps": 512, "episodesPerVariation": 2},
        }
    }
}


def lose_the_machine(run: subprocess.Popen) -> None:
    """SIGKILL `gsl run` and every trainer it started (each in a session of its own): no
    process gets to checkpoint or clean up, as when a machine or cluster vanishes."""
    children = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True)
    os.killpg(run.pid, signal.SIGKILL)
    for pid in children.stdout.split():
        with suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGKILL)
    run.wait()


def checkpointed_past_start(store, task: Task) -> bool:
    """Whether `task` has a checkpoint after its first (at step 0)."""
    return any(checkpoint_step(k) > 0 for k in list_artifacts(store, task.checkpoints, ".pt"))


def assert_the_documented_layout(store: ArtifactStore, interrupted: set[Task]) -> None:
    """The bucket of a finished run holds the documented layout and a manifest whose sha256
    entries match the objects; every .pt and .npz object is in it but checkpoints that an
    `interrupted` task was uploading or pruning when its machine was lost."""
    keys = set(store.list(""))
    expected = {
        "spec.json",
        "run.json",
        "plan.json",
        "manifest.json",
        "report.json",
        "report.png",
        "plateau/checkpoint.pt",
        "plateau/checkpoint.pt.sha256",
        "plateau/pinned.json",
        "baseline/budget.json",
        "demos/generalist/done.json",  # every variation was weak: no generalist demos
        "report/log.txt",  # the report task's, a subprocess as the trainers
    }
    for task in ("generalist", "specialists/0", "specialists/2", "finetune", "baseline"):
        expected |= {f"{task}/result.json", f"{task}/log.txt", f"{task}/progress/00000000.jsonl"}
    for i in range(3):
        expected |= {f"demos/{i}/shard-0000.npz", f"demos/{i}/shard-0000.npz.sha256"}
    assert expected <= keys, expected - keys
    assert any(k.startswith("specialists/1/checkpoints/step-") for k in keys)

    manifest = json.loads(store.read_bytes("manifest.json"))["sha256"]
    unlisted = {k for k in keys if k.endswith((".pt", ".npz"))} - set(manifest)
    assert all(k.startswith(tuple(t.checkpoints for t in interrupted)) for k in unlisted), unlisted
    for key, digest in manifest.items():
        assert hashlib.sha256(store.read_bytes(key)).hexdigest() == digest, key


def assert_a_damaged_checkpoint_is_refused(store: ArtifactStore) -> None:
    """A flipped byte in the plateau checkpoint makes the next specialist fail to load it,
    clearly."""
    data = bytearray(store.read_bytes(PLATEAU_CHECKPOINT))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(PLATEAU_CHECKPOINT, bytes(data))
    for key in store.list(SPECIALISTS[0].prefix):
        store.delete(key)
    rerun = subprocess.run(
        [sys.executable, "-m", "gsl_k8s", "train", "--run", store.uri, "--role", "specialist"]
        + ["--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == EXIT_FAILURE
    assert f"{PLATEAU_CHECKPOINT}: corrupted or truncated" in rerun.stderr
    assert "Traceback" not in rerun.stderr


def versions(s3, bucket: str, key: str) -> int:
    """How many times an object was written (the bucket keeps every version)."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return sum(v["Key"] == key for v in listed.get("Versions", []))


@pytest.mark.slow
def test_a_run_lost_mid_specialists_resumes_from_s3_on_a_fresh_machine(
    write_spec, s3_uri, tmp_path
):
    """`gsl run --storage s3://...` is killed (with all its trainers) once one specialist
    has finished and the next has checkpointed. The same command from a fresh working
    directory and temporary directory says what it resumes, reruns neither the generalist
    nor the finished specialist (every result is written once; only the unfinished tasks
    log on the new machine), resumes the interrupted specialist from its checkpoint, and
    finishes, leaving the documented layout in the bucket."""
    bucket = s3_uri.removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    spec = write_spec(LONGER_SPECIALISTS)
    store = open_store(f"{s3_uri}/tiny")

    def machine(name: str) -> tuple[dict, str]:
        """A fresh working and temporary directory: nothing of the other machine's."""
        home = tmp_path / name
        (home / "tmp").mkdir(parents=True)
        env = {**os.environ, "TMPDIR": str(home / "tmp"), "COLUMNS": "300"}  # lines unwrapped
        return env, str(home)

    env, cwd = machine("first")
    command = [sys.executable, "-m", "gsl_k8s", "run", str(spec), "--storage", s3_uri]
    output = tmp_path / "first.log"  # a file, not a pipe nobody reads until the end
    with output.open("w") as log:
        run = subprocess.Popen(command, env=env, cwd=cwd, stderr=log, start_new_session=True)
    first, second = SPECIALISTS[0], SPECIALISTS[1]
    deadline = time.time() + 600
    try:
        while not (store.exists(first.result) and checkpointed_past_start(store, second)):
            assert run.poll() is None, output.read_text()
            assert time.time() < deadline, "the first specialist never finished"
            time.sleep(0.2)
        checkpointed = max(
            checkpoint_step(k) for k in list_artifacts(store, second.checkpoints, ".pt")
        )
    finally:
        lose_the_machine(run)
    assert not any(store.exists(t.result) for t in [second, SPECIALISTS[2], FINETUNE])

    env, cwd = machine("second")
    started = time.time()
    resumed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    print(f"resumed run to the report: {time.time() - started:.0f} s")
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from {s3_uri}/tiny: generalist done, 1/3 specialists done" in resumed.stderr
    assert "GSL: success" in resumed.stderr and "PPO baseline: success" in resumed.stderr
    assert f"(plot: {s3_uri}/tiny/report.png)" in resumed.stderr

    # Nothing finished was done again: each result, the plan and the pin were written once.
    root = s3_uri.removeprefix(f"s3://{bucket}/") + "/tiny"
    for key in [PLAN, PLATEAU_CHECKPOINT, *(t.result for t in [GENERALIST, *SPECIALISTS])]:
        assert versions(s3, bucket, f"{root}/{key}") == 1, key
    assert store.exists(FINETUNE.result) and store.exists(BASELINE.result)
    [workdir] = (tmp_path / "second/tmp").glob("gsl-tiny-*")
    logged = {
        t
        for t in [GENERALIST, *SPECIALISTS, FINETUNE, BASELINE, REPORT]
        if (workdir / t.log).exists()
    }
    assert logged == {second, SPECIALISTS[2], FINETUNE, BASELINE, REPORT}

    # The interrupted specialist went on from its checkpoint instead of starting over.
    new_steps = [r["step"] for r in read_progress(store, second.progress) if r["time"] > started]
    assert new_steps and min(new_steps) >= checkpointed > 0, (checkpointed, new_steps)
    assert read_result(store, second).env_steps == 4096

    # What the run left in the bucket; the baseline trained beside the lost specialist.
    assert_the_documented_layout(store, interrupted={second, BASELINE})
    assert_a_damaged_checkpoint_is_refused(store)
