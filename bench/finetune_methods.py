"""Phase II methods compared on Fork-Maze: DAPG, BC and GAIL from the same specialists' demos.

    python bench/finetune_methods.py [--spec examples/forkmaze.yaml] [--seeds 0 1]
                                     [--methods dapg bc gail] [--out runs/bench-methods]

For each seed, the first method's run is a full `gsl run` of the spec (generalist,
specialists, demos, finetune; no baseline). Every other method copies that run's store
without its finetune and report and redoes only those: the same plateau, specialists and
demonstrations (the generalist's included), with `finetune.method` replaced and every other
setting (coef, decay, env steps) as the spec has it. Runs that already finished are reused.
Prints each method's final success per seed, the mean, and the ratio to the first method's.
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

REDONE = ("finetune", "report", layout.REPORT_JSON, layout.REPORT_PNG, layout.SPEC, layout.MANIFEST)


def run_method(spec_path: str, seed: int, method: str, out: Path, reuse: Path | None) -> dict:
    """A run of the spec with `seed` and `finetune.method`; with `reuse`, a copy of that
    run's store without the finetune. Returns its report."""
    base = load_spec(spec_path).model_dump(mode="json", by_alias=True)
    base["spec"]["seed"] = seed
    base["spec"]["finetune"]["method"] = method
    base["spec"]["baseline"]["enabled"] = False
    base["metadata"]["name"] = f"{base['metadata']['name']}-seed{seed}-{method}"
    experiment = parse_spec(base)
    directory = out / experiment.name
    if reuse is not None and not directory.exists():
        shutil.copytree(reuse, directory, ignore=lambda _, names: set(REDONE) & set(names))
    store = open_store(str(directory))
    started, last_stage = time.time(), None

    def on_status(status, phases):
        nonlocal last_stage
        if status.stage != last_stage:
            elapsed = time.time() - started
            print(f"  seed {seed} {method}: {status.stage} ({elapsed:.0f} s)", flush=True)
            last_stage = status.stage

    status = run_local(experiment, store, directory, on_status)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"{experiment.name} failed: {status.message}")
    return read_json(store, layout.REPORT_JSON) | {"directory": str(directory)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--methods", nargs="+", choices=["dapg", "bc", "gail"], default=["dapg", "bc", "gail"]
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-methods"))
    args = parser.parse_args()
    stop_on_sigterm()

    success: dict[str, dict[int, float]] = {m: {} for m in args.methods}
    try:
        for seed in args.seeds:
            first = None
            for method in args.methods:
                report = run_method(args.spec, seed, method, args.out, first)
                first = first or Path(report["directory"])
                success[method][seed] = report["final"]["success_rate"]
    except KeyboardInterrupt:
        raise SystemExit(
            "interrupted: tasks checkpointed; run the same command to resume"
        ) from None
    reference = args.methods[0]
    header = (
        f"{'method':<6}  "
        + "  ".join(f"{'seed ' + str(s):>7}" for s in args.seeds)
        + f"  {'mean':>6}  {'vs ' + reference:>8}"
    )
    print(header)
    print("-" * len(header))
    reference_mean = fmean(success[reference].values())
    for method in args.methods:
        mean = fmean(success[method].values())
        ratio = mean / reference_mean if reference_mean > 0 else float("nan")
        print(
            f"{method:<6}  "
            + "  ".join(f"{success[method][s]:>7.3f}" for s in args.seeds)
            + f"  {mean:>6.3f}  {ratio:>8.2f}"
        )


if __name__ == "__main__":
    main()
