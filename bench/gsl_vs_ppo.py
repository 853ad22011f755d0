"""GSL vs the budget-matched PPO baseline on Fork-Maze geometries, over several seeds.

    python bench/gsl_vs_ppo.py [--spec examples/forkmaze.yaml] [--geometries example ...]
                               [--seeds 0 1 2] [--rounds N] [--out runs/bench]

Each (geometry, seed) is a full `gsl run` of the spec (generalist, specialists, finetune,
baseline) with only the maze geometry (`env.variations` and `env.kwargs`) and the seed
replaced; runs that already finished are reused. Prints one row per run, each geometry's
mean margin (GSL - baseline success at equal env steps) and the mean margin over all runs.
`--rounds N` sets the spec's `rounds` (runs named `...-rN`); each row then also shows the
success after each round's finetune.

The geometries other than the example were chosen once, before any run, to vary what makes
the maze hard: more goals, longer corridor and arms, other arm permutations. The example's
settings apply to all of them unchanged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from statistics import fmean

from gsl_k8s import layout
from gsl_k8s.backends.local import run_local, stop_on_sigterm
from gsl_k8s.orchestration.controller import Stage
from gsl_k8s.spec import GSLExperiment, load_spec, parse_spec
from gsl_k8s.store import open_store, read_json

GEOMETRIES: dict[str, dict] = {
    "example": {},  # the spec's own
    "permuted": {"variations": 8, "kwargs": {"layoutSeed": 1}},
    "long-arms": {
        "variations": 8,
        "kwargs": {"corridorLength": 4, "armLength": 3, "layoutSeed": 2},
    },
    "12-goals": {
        "variations": 12,
        "kwargs": {"corridorLength": 3, "armLength": 2, "layoutSeed": 3},
    },
}


def merge_patch(target: dict, patch: dict) -> dict:
    """`target` with `patch` applied as a JSON Merge Patch (RFC 7396): dicts merge
    recursively, a None removes its key, any other value replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def patched_experiment(spec_path: str, patch: dict, label: str | None = None) -> GSLExperiment:
    """The spec at `spec_path` with `patch` merged into its `spec` (and `-<label>` added to
    its name)."""
    base = load_spec(spec_path).model_dump(mode="json", by_alias=True, exclude_none=True)
    base["spec"] = merge_patch(base["spec"], patch)
    if label is not None:
        base["metadata"]["name"] = f"{base['metadata']['name']}-{label}"
    return parse_spec(base)


def run_patched(
    spec_path: str, label: str, patch: dict, seed: int, out: Path, rounds: int | None = None
) -> dict:
    """One `gsl run` of the spec with `patch` merged into its `spec`, `seed` (and `rounds`,
    if given), named after `label` and the seed; returns its report."""
    suffix = f"{label}-seed{seed}"
    if rounds is not None:
        patch, suffix = {**patch, "rounds": rounds}, f"{suffix}-r{rounds}"
    experiment = patched_experiment(spec_path, {**patch, "seed": seed}, suffix)
    store = open_store(str(out / experiment.name))
    started, last_stage = time.time(), None

    def on_status(status, phases):
        nonlocal last_stage
        if status.stage != last_stage:
            elapsed = time.time() - started
            print(f"  {label} seed {seed}: {status.stage} ({elapsed:.0f} s)", flush=True)
            last_stage = status.stage

    status = run_local(experiment, store, out / experiment.name, on_status)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"{experiment.name} failed: {status.message}")
    return read_json(store, layout.REPORT_JSON)


def print_margins(reports: dict[tuple[str, int], dict], label: str) -> None:
    """One row per (label, seed) run, each label's mean margin and the mean over all runs."""
    header = (
        f"{label:<24} {'seed':>4}  {'GSL success':>11}  {'baseline':>8}  {'margin':>6}"
        f"  {'env steps (both)':>16}  {'demos kept':>10}  success by round"
    )
    print(header)
    print("-" * len(header))
    margins: dict[str, list[float]] = {}
    for (name, seed), report in reports.items():
        gsl, baseline, demos = report["final"], report["baseline"], report["demos"]
        assert gsl["env_steps_total"] == baseline["env_steps"]  # budget-matched, exactly
        margin = gsl["success_rate"] - baseline["success_rate"]
        margins.setdefault(name, []).append(margin)
        asked = sum(c["asked"] for c in demos["by_source"].values())
        print(
            f"{name:<24} {seed:>4}  {gsl['success_rate']:>11.3f}  "
            f"{baseline['success_rate']:>8.3f}  {margin:>+6.3f}  {gsl['env_steps_total']:>16,}"
            f"  {demos['episodes']:>5}/{asked:<4}  "
            + " -> ".join(f"{r['finetune_success_rate']:.3f}" for r in report.get("rounds", []))
        )
    print("-" * len(header))
    for name, values in margins.items():
        print(f"{name:<24} mean margin {fmean(values):+.3f} over {len(values)} seeds")
    every = [m for values in margins.values() for m in values]
    print(f"mean margin over all {len(every)} runs: {fmean(every):+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--geometries", nargs="+", choices=GEOMETRIES, default=list(GEOMETRIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, help="GSL rounds (default: the spec's)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    stop_on_sigterm()

    try:
        reports = {
            (geometry, seed): run_patched(
                args.spec, geometry, {"env": GEOMETRIES[geometry]}, seed, args.out, args.rounds
            )
            for geometry in args.geometries
            for seed in args.seeds
        }
    except KeyboardInterrupt:
        raise SystemExit(
            "interrupted: tasks checkpointed; run the same command to resume"
        ) from None
    print_margins(reports, "geometry")


if __name__ == "__main__":
    main()
