"""GSL vs the budget-matched PPO baseline on Fork-Maze, over several seeds.

    python bench/gsl_vs_ppo.py [--spec examples/forkmaze.yaml] [--seeds 0 1 2] [--out runs/bench]

Each seed is a full `gsl run` (generalist, specialists, finetune, baseline); runs that
already finished are reused. Prints one row per seed and the means.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from statistics import fmean

from gsl_k8s import layout
from gsl_k8s.backends.local import run_local
from gsl_k8s.orchestration.controller import Stage
from gsl_k8s.spec import load_spec, parse_spec
from gsl_k8s.store import open_store, read_json


def run_seed(spec_path: str, seed: int, out: Path) -> dict:
    base = load_spec(spec_path).model_dump(mode="json", by_alias=True)
    base["spec"]["seed"] = seed
    base["metadata"]["name"] = f"{base['metadata']['name']}-seed{seed}"
    experiment = parse_spec(base)
    store = open_store(str(out / experiment.name))
    started, last_stage = time.time(), None

    def on_status(status, phases):
        nonlocal last_stage
        if status.stage != last_stage:
            print(f"  seed {seed}: {status.stage} ({time.time() - started:.0f} s)", flush=True)
            last_stage = status.stage

    status = run_local(experiment, store, out / experiment.name, on_status)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"seed {seed} failed: {status.message}")
    return read_json(store, layout.REPORT_JSON)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()

    reports = {seed: run_seed(args.spec, seed, args.out) for seed in args.seeds}
    header = f"{'seed':>4}  {'GSL success':>11}  {'baseline success':>16}  {'env steps (both)':>16}"
    print(header)
    print("-" * len(header))
    for seed, report in reports.items():
        gsl, baseline = report["final"], report["baseline"]
        assert gsl["env_steps_total"] == baseline["env_steps"]
        print(
            f"{seed:>4}  {gsl['success_rate']:>11.3f}  {baseline['success_rate']:>16.3f}"
            f"  {gsl['env_steps_total']:>16,}"
        )
    gsl_mean = fmean([r["final"]["success_rate"] for r in reports.values()])
    baseline_mean = fmean([r["baseline"]["success_rate"] for r in reports.values()])
    steps_mean = fmean([r["final"]["env_steps_total"] for r in reports.values()])
    print(f"mean  GSL {gsl_mean:.3f}  baseline {baseline_mean:.3f}  env steps {steps_mean:,.0f}")


if __name__ == "__main__":
    main()
