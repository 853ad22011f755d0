"""The record formats of `gsl_k8s.records`: a task's result and progress segments."""

import json

from gsl_k8s.layout import GENERALIST
from gsl_k8s.records.demos import DemoCount
from gsl_k8s.records.progress import ProgressReader, ProgressWriter
from gsl_k8s.records.result import TaskResult, read_result, write_result
from gsl_k8s.store import open_store


def test_a_result_round_trips_through_result_json(tmp_path):
    store = open_store(str(tmp_path))
    result = TaskResult(
        env_steps=4096,
        demo_env_steps=320,
        reason="plateau",
        final_eval={"eval/success_rate": 0.5, "eval/per_variation": {"0": 0.5}},
        demos={"demos/0": DemoCount(asked=8, attempted=11, kept=8, env_steps=320, sampled=3)},
    )
    write_result(store, GENERALIST, result)
    stored = json.loads(store.read_bytes(GENERALIST.result))
    count = {"asked": 8, "attempted": 11, "kept": 8, "env_steps": 320, "sampled": 3}
    assert stored["demos"]["demos/0"] == count
    assert read_result(store, GENERALIST) == result
    assert read_result(store, GENERALIST).env_steps_used == 4096 + 320


def test_a_result_without_demo_counts_reads_with_none():
    old = {"env_steps": 10, "demo_env_steps": 0, "reason": "budget", "final_eval": {}}
    assert TaskResult.from_json(old).demos == {}


def test_progress_segments_continue_after_the_existing_ones(tmp_path):
    store = open_store(str(tmp_path))
    first = ProgressWriter(store, GENERALIST.progress)
    first.write(0, {"eval/success_rate": 0.0}, flush=True)
    first.write(256, {"charts/sps": 100.0})  # buffered
    reader = ProgressReader(store, GENERALIST.progress)
    assert [r["step"] for r in reader.records()] == [0]
    first.flush()
    second = ProgressWriter(store, GENERALIST.progress)  # a resumed task
    second.write(512, {"eval/success_rate": 1.0}, flush=True)
    assert [r["step"] for r in reader.records()] == [0, 256, 512]
    assert store.list(GENERALIST.progress)[-1].endswith("00000002.jsonl")
