"""Trainer backends: the built-in PPO vs Sample Factory APPO, same env, env count and machine.

    python bench/backends.py [--env-steps 102400] [--num-envs 32] [--seed 0]

Each backend trains a generalist on Fork-Maze (8 goals) for exactly `--env-steps` env
steps (Sample Factory trains whole batches of `--num-envs` x 64 steps: keep it a multiple),
as `gsl train` runs it, with one evaluation (16 episodes per goal) at the end. The
table shows training env steps/s (the backend's own `charts/sps`, evaluation and Sample
Factory's start-up excluded), wall-clock env steps/s of the whole task (everything
included), the success rate at equal env steps, and the ratio of training steps/s to the
built-in PPO's. Sample Factory runs serial (one process, as CPU CI does) and asynchronous
(separate sampler, inference and learner processes). One torch thread per process.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from gsl_k8s.layout import GENERALIST, SPEC
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import open_store
from gsl_k8s.trainer.task import TaskRunner

BACKENDS = {
    "builtin PPO": {"backend": "builtin"},
    "sample-factory serial": {"backend": "sample-factory", "sampleFactory": {"serialMode": True}},
    "sample-factory async": {"backend": "sample-factory", "sampleFactory": {"serialMode": False}},
}


def experiment(trainer: dict, env_steps: int, num_envs: int, seed: int):
    return parse_spec(
        {
            "apiVersion": "gsl.dev/v1alpha1",
            "kind": "GSLExperiment",
            "metadata": {"name": "bench-backends"},
            "spec": {
                "seed": seed,
                "env": {"family": "forkmaze", "variations": 8},
                "trainer": {"numEnvs": num_envs, "rolloutSteps": 64, "entCoef": 0.05, **trainer},
                "generalist": {
                    "envSteps": env_steps,
                    "evaluation": {"everySteps": env_steps, "episodesPerVariation": 16},
                },
            },
        }
    )


def run(trainer: dict, env_steps: int, num_envs: int, seed: int) -> dict:
    """Train one generalist; returns its result plus its training and wall steps/s."""
    with tempfile.TemporaryDirectory() as root:
        store = open_store(root)
        store.write_bytes(SPEC, experiment(trainer, env_steps, num_envs, seed).to_json().encode())
        started = time.perf_counter()
        result = TaskRunner(store, GENERALIST).run().to_json()
        wall = time.perf_counter() - started
        records = read_progress(store, GENERALIST.progress)
    sps = [r["charts/sps"] for r in records if "charts/sps" in r]
    return {**result, "train_sps": sps[-1], "wall_sps": result["env_steps"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=102_400)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    results = {
        name: run(trainer, args.env_steps, args.num_envs, args.seed)
        for name, trainer in BACKENDS.items()
    }
    base = results["builtin PPO"]["train_sps"]
    print(
        f"Fork-Maze (8 goals), {args.num_envs} envs, {args.env_steps:,} env steps, "
        f"{os.cpu_count()} CPUs, no GPU"
    )
    header = ["backend", "env steps", "train steps/s", "wall steps/s", "success", "ratio"]
    print(f"{header[0]:<24}" + "".join(f"{h:>14}" for h in header[1:]))
    for name, r in results.items():
        print(
            f"{name:<24}{r['env_steps']:>14,}{r['train_sps']:>14,.0f}{r['wall_sps']:>14,.0f}"
            f"{r['final_eval']['eval/success_rate']:>14.2f}{r['train_sps'] / base:>13.2f}x"
        )


if __name__ == "__main__":
    main()
