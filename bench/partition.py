"""`partition: features` vs `random` on a Fork-Maze geometry with many goals, over seeds.

    python bench/partition.py [--spec examples/forkmaze.yaml] [--goals 16] [--seeds 0 1]
                              [--strategies features random] [--out runs/bench-partition]

Each (strategy, seed) is a full `gsl run` of the spec without its baseline, with the maze
replaced by one of `--goals` goals (corridor 2, arms 2, layout seed 4, chosen once before
any run), `specialists.select` the lowest half of the goals and the given partition; runs
that already finished are reused. The generalist does not depend on the partition, so each
seed trains it once: the first strategy's run does, the second starts from a copy of that
run's generalist (its store keys `generalist/`, `plateau/` and `run.json`), and the rows of
a seed differ only from the split on. The first strategy must be `features` if either is
(only a generalist of a `features` run writes the features). Prints
per run the success at the plateau, the specialists' mean success on their subsets, the
final GSL success, and per strategy the mean final success; then the mean margin of the
first strategy over the second.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from statistics import fmean

from gsl_k8s import layout
from gsl_k8s.backends.local import run_local, stop_on_sigterm
from gsl_k8s.orchestration.controller import Stage
from gsl_k8s.spec import load_spec, parse_spec
from gsl_k8s.store import open_store, read_json


def run_one(
    spec_path: str, goals: int, strategy: str, seed: int, out: Path, generalist_of: Path | None
) -> tuple[Path, dict]:
    """One `gsl run` of the spec on the many-goal maze with `strategy` and `seed`, starting
    from a copy of the generalist of the run in `generalist_of` if given; returns the run's
    directory and its report with the plan added."""
    base = load_spec(spec_path).model_dump(mode="json", by_alias=True)
    spec = base["spec"]
    spec["seed"] = seed
    spec["env"].update(
        variations=goals, kwargs={"corridorLength": 2, "armLength": 2, "layoutSeed": 4}
    )
    spec["specialists"]["select"] = {"strategy": "lowest", "count": goals // 2}
    spec["specialists"]["partition"] = strategy
    spec["baseline"]["enabled"] = False
    base["metadata"]["name"] = f"{base['metadata']['name']}-{goals}goals-{strategy}-seed{seed}"
    experiment = parse_spec(base)
    directory = out / experiment.name
    if generalist_of is not None and not directory.exists():
        for key in ("generalist", "plateau"):
            shutil.copytree(generalist_of / key, directory / key)
        shutil.copy(generalist_of / layout.RUN, directory / layout.RUN)
    store = open_store(str(directory))
    started, last_stage = time.time(), None

    def on_status(status, phases):
        nonlocal last_stage
        if status.stage != last_stage:
            elapsed = time.time() - started
            print(f"  {strategy} seed {seed}: {status.stage} ({elapsed:.0f} s)", flush=True)
            last_stage = status.stage

    status = run_local(experiment, store, directory, on_status)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"{experiment.name} failed: {status.message}")
    report = read_json(store, layout.REPORT_JSON)
    return directory, {**report, "plan": read_json(store, layout.PLAN)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--goals", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--strategies",
        nargs=2,
        choices=["features", "random", "contiguous", "balanced"],
        default=["features", "random"],
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-partition"))
    args = parser.parse_args()
    if args.strategies[1] == "features":
        parser.error("give `features` first: its run's generalist writes the features")
    stop_on_sigterm()

    reports = {}
    try:
        for seed in args.seeds:
            first, second = args.strategies
            directory, reports[first, seed] = run_one(
                args.spec, args.goals, first, seed, args.out, None
            )
            _, reports[second, seed] = run_one(
                args.spec, args.goals, second, seed, args.out, directory
            )
    except KeyboardInterrupt:
        raise SystemExit(
            "interrupted: tasks checkpointed; run the same command to resume"
        ) from None
    header = (
        f"{'strategy':<10} {'seed':>4}  {'at plateau':>10}  {'specialists':>11}"
        f"  {'GSL success':>11}  subsets"
    )
    print(header)
    print("-" * len(header))
    finals: dict[str, dict[int, float]] = {strategy: {} for strategy in args.strategies}
    for (strategy, seed), report in reports.items():
        specialist_rates = [r for r in report["specialists"]["success_rates"] if r is not None]
        finals[strategy][seed] = report["final"]["success_rate"]
        print(
            f"{strategy:<10} {seed:>4}  {report['plan']['success_rate_at_pin']:>10.3f}"
            f"  {fmean(specialist_rates) if specialist_rates else float('nan'):>11.3f}"
            f"  {report['final']['success_rate']:>11.3f}  {report['plan']['subsets']}"
        )
    print("-" * len(header))
    for strategy, by_seed in finals.items():
        print(f"{strategy:<10} mean GSL success {fmean(by_seed.values()):.3f}")
    first, second = args.strategies
    margins = [finals[first][seed] - finals[second][seed] for seed in args.seeds]
    print(f"margin {first} - {second}: {fmean(margins):+.3f} (per seed {margins})")


if __name__ == "__main__":
    main()
