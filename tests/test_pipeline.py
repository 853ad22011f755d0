"""The whole GSL pipeline, end to end at tiny budgets, through the `gsl` command."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from gsl_k8s.layout import (
    BASELINE,
    FINETUNE,
    GENERALIST,
    PLAN,
    PLATEAU_CHECKPOINT,
    Task,
    start_checkpoint,
)
from gsl_k8s.records.progress import read_progress
from gsl_k8s.records.result import read_result
from gsl_k8s.store import open_store
from gsl_k8s.trainer.checkpoint import load_checkpoint
from tests.conftest import gsl


def test_gsl_run_end_to_end(write_spec, tmp_path):
    run_dir = tmp_path / "run"
    specialists = {"policyTemperature": 2.0, "evaluation": {"actions": "greedy"}}
    spec = write_spec({"spec": {"specialists": specialists, "finetune": {"bcSteps": 20}}})
    proc = gsl("run", str(spec), "--out", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run_dir / "report.json").read_text())
    plan = json.loads((run_dir / PLAN).read_text())

    assert report["generalist"]["plateau_step"] is not None
    assert report["generalist"]["plateau_step"] < 6000  # the plateau stopped it before its cap
    assert report["specialists"]["count"] == 3
    subsets = plan["subsets"]
    assert sorted(v for s in subsets for v in s) == plan["weak_variations"] == list(range(6))
    assert report["demos"]["episodes"] == 3 * 4  # successOnly is off: every episode is kept
    by_source = report["demos"]["by_source"]
    assert sorted(by_source) == ["generalist", "specialist-0", "specialist-1", "specialist-2"]
    assert by_source["specialist-2"]["asked"] == by_source["specialist-2"]["kept"] == 4
    assert report["demos"]["shortfall"] is None
    assert report["finetune"]["env_steps"] > 0
    assert set(report["final"]["per_variation"]) == {str(v) for v in range(6)}
    # retention: each specialist's final success on its subset beside the final policy's
    store = open_store(str(run_dir))
    retention = report["retention"]
    assert sorted(retention["per_variation"], key=int) == [str(v) for v in range(6)]
    for i, subset in enumerate(subsets):
        own = read_result(store, Task("specialist", i)).final_eval
        for v in subset:
            row = retention["per_variation"][str(v)]
            assert row["specialist"] == own["eval/per_variation"][str(v)]
            assert row["final"] == report["final"]["per_variation"][str(v)]
    assert "GSL retention" in proc.stderr
    # the finetune cloned the demos first (finetune.bcSteps), before its first evaluation
    first, second = read_progress(store, FINETUNE.progress)[:2]
    assert first["step"] == 0 and first["losses/bc_first"] > 0 and first["losses/bc_last"] > 0
    assert second["step"] == 0 and "eval/success_rate" in second
    # the baseline gets exactly GSL's env steps, counted; it trained beside GSL
    # (baseline.mode: concurrent), so it had begun before the finetune
    assert report["baseline"]["env_steps"] == report["final"]["env_steps_total"]
    assert report["baseline"]["mode"] == "concurrent"
    assert report["evaluation_actions"] == {
        "generalist": "sample",
        "specialists": "greedy",
        "finetune": "sample",
        "baseline": "sample",
    }
    first_record = {t: read_progress(store, t.progress)[0]["time"] for t in (BASELINE, FINETUNE)}
    assert first_record[BASELINE] < first_record[FINETUNE]
    assert (run_dir / "report.png").read_bytes().startswith(b"\x89PNG")
    assert (run_dir / PLATEAU_CHECKPOINT).is_file()
    assert "GSL: success" in proc.stderr and "Report:" in proc.stderr
    # each result counts its demos: every specialist kept what it was asked for; every
    # variation was weak, so the generalist had none to record
    for i in range(3):
        result = read_result(store, Task("specialist", i))
        count = result.demos[f"demos/{i}"]
        assert count.asked == count.kept == 4 and count.attempted >= 4
        assert result.demo_env_steps == count.env_steps > 0
    generalist_demos = read_result(store, FINETUNE).demos["demos/generalist"]
    assert (generalist_demos.attempted, generalist_demos.kept) == (0, 0)
    # each task held its one torch thread and no GPU; the phases' costs add up to GSL's
    specialists = [Task("specialist", i) for i in range(3)]
    results = {t: read_result(store, t) for t in [GENERALIST, *specialists, FINETUNE, BASELINE]}
    assert all(r.wall_seconds > 0 and (r.cpus, r.gpus) == (1, 0) for r in results.values())
    cost = report["cost"]
    gsl_seconds = sum(r.wall_seconds for t, r in results.items() if t != BASELINE)
    assert cost["gsl"]["wall_seconds"] == pytest.approx(gsl_seconds, abs=0.01)
    assert cost["gsl"]["cpu_hours"] == pytest.approx(gsl_seconds / 3600, abs=1e-5)
    phases = sum(cost[p]["cpu_hours"] for p in ("generalist", "specialists", "finetune"))
    assert cost["gsl"]["cpu_hours"] == pytest.approx(phases, abs=1e-5)
    assert cost["baseline"]["wall_seconds"] == pytest.approx(results[BASELINE].wall_seconds)
    assert cost["gsl"]["gpu_hours"] == cost["baseline"]["gpu_hours"] == 0
    ratio = cost["gsl"]["cpu_hours"] / cost["baseline"]["cpu_hours"]
    assert cost["gsl_over_baseline"]["cpu_hours"] == pytest.approx(ratio, rel=1e-3)
    assert cost["gsl_over_baseline"]["gpu_hours"] is None
    assert "GSL / baseline" in proc.stderr
    # each specialist started from the plateau's policy, tempered (logits / 2)
    plateau = load_checkpoint(store, PLATEAU_CHECKPOINT)["model"]
    for i in range(3):
        start = load_checkpoint(store, Task("specialist", i).checkpoint(0))["model"]
        for key in ("actor_head.weight", "actor_head.bias"):
            torch.testing.assert_close(start[key], plateau[key] / 2)
        torch.testing.assert_close(start["actor_body.1.0.weight"], plateau["actor_body.1.0.weight"])

    # Level-based: running again finds the report and does nothing; `gsl report` rebuilds it.
    (run_dir / "report.png").unlink()
    assert gsl("run", str(spec), "--out", str(run_dir)).returncode == 0
    assert not (run_dir / "report.png").exists()
    (run_dir / "report.json").unlink()
    again = gsl("report", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "report.json").read_text()) == report
    assert (run_dir / "report.png").is_file()


@pytest.mark.slow
def test_a_second_round_clones_the_first_finetune_and_learns_from_every_demo(write_spec, tmp_path):
    run_dir = tmp_path / "run"
    spec = write_spec({"spec": {"rounds": 2, "specialists": {"count": 2}}})  # one pair a round
    proc = gsl("run", str(spec), "--out", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run_dir / "report.json").read_text())
    store = open_store(str(run_dir))

    assert [r["round"] for r in report["rounds"]] == [1, 2]  # 1024 finetune steps solve nothing
    first, second = FINETUNE, Task("finetune", round=2)
    finetuned = load_checkpoint(store, first.checkpoint(read_result(store, first).env_steps))
    start = load_checkpoint(store, start_checkpoint(2))["model"]
    for key, value in finetuned["model"].items():
        torch.testing.assert_close(start[key], value)
    # round 2's finetune starts there, and its specialists there, tempered (default T = 1)
    for task in (second, Task("specialist", 0, round=2)):
        torch.testing.assert_close(load_checkpoint(store, task.checkpoint(0))["model"], start)
    log = (run_dir / second.log).read_text()
    assert "demos/generalist (0), demos/0 (" in log and "rounds/2/demos/1 (" in log
    final = read_result(store, second).final_eval
    assert report["final"]["success_rate"] == final["eval/success_rate"]
    assert {"specialist-0", "r2-specialist-0"} <= set(report["demos"]["by_source"])
    # the baseline gets every env step of both rounds
    specialists = [Task("specialist", i, round_) for round_ in (1, 2) for i in range(2)]
    total = sum(
        read_result(store, task).env_steps_used
        for task in [GENERALIST, *specialists, first, second]
    )
    assert report["baseline"]["env_steps"] == report["final"]["env_steps_total"] == total
    # the finetune's cost is both rounds' finetunes'
    finetunes = sum(read_result(store, t).wall_seconds for t in (first, second))
    assert report["cost"]["finetune"]["wall_seconds"] == pytest.approx(finetunes, abs=0.01)


def test_a_killed_gsl_run_stops_and_checkpoints_its_tasks(write_spec, tmp_path):
    """SIGTERM to `gsl run` (a plain `kill`) stops and checkpoints its tasks, as Ctrl-C does."""
    run_dir = tmp_path / "run"
    spec = write_spec({"spec": {"generalist": {"envSteps": 1_000_000, "plateau": {"window": 50}}}})
    command = [sys.executable, "-m", "gsl_k8s", "run", str(spec), "--out", str(run_dir)]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    progress = run_dir / "generalist/progress"
    deadline = time.time() + 120
    while not (progress.is_dir() and any(progress.iterdir())):
        assert time.time() < deadline and run.poll() is None, "the generalist never started"
        time.sleep(0.2)
    store = open_store(str(run_dir))
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Interrupted: tasks checkpointed" in stderr
    trainers = subprocess.run(
        ["pgrep", "-f", "--", f"train --run {store.uri} "], capture_output=True
    )
    assert trainers.stdout == b"", "a trainer outlived gsl run"
    assert any((run_dir / "generalist/checkpoints").glob("step-*.pt"))
