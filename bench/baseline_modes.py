"""Wall time of one experiment with its baseline after GSL and beside it.

    python bench/baseline_modes.py [--spec examples/forkmaze.yaml] [--seed 0] [--out runs/modes]

Runs the spec twice with `gsl run`'s local backend, one run after the other: with
`baseline.mode: after` (the reference) and `concurrent`. Prints each run's wall time, GSL's
and the baseline's success and env steps, and the ratio of the wall times. Both baselines
train on the same seed for the same env steps; they differ only in when they run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gsl_k8s import layout
from gsl_k8s.backends.local import run_local, stop_on_sigterm
from gsl_k8s.orchestration.controller import Stage
from gsl_k8s.spec import load_spec, parse_spec
from gsl_k8s.store import open_store, read_json

MODES = ("after", "concurrent")


def run_mode(spec_path: str, mode: str, seed: int, out: Path) -> tuple[float, dict]:
    """One `gsl run` of the spec with `baseline.mode: mode`; its wall seconds and report."""
    body = load_spec(spec_path).model_dump(mode="json", by_alias=True)
    body["spec"]["seed"] = seed
    body["spec"]["baseline"] = {"enabled": True, "mode": mode}
    body["metadata"]["name"] = f"{body['metadata']['name']}-{mode}-seed{seed}"
    experiment = parse_spec(body)
    store = open_store(str(out / experiment.name))
    if store.exists(layout.RUN):
        raise SystemExit(f"{store.uri} holds a run already: delete it to measure the wall time")
    started = time.monotonic()
    status = run_local(experiment, store, out / experiment.name)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"{experiment.name} failed: {status.message}")
    return time.monotonic() - started, read_json(store, layout.REPORT_JSON)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/modes"))
    args = parser.parse_args()
    stop_on_sigterm()
    try:
        runs = {mode: run_mode(args.spec, mode, args.seed, args.out) for mode in MODES}
    except KeyboardInterrupt:
        raise SystemExit("interrupted: delete the unfinished run to measure again") from None

    print(f"\n{'baseline.mode':<14} {'wall s':>7}  {'GSL':>5}  {'baseline':>8}  {'env steps':>10}")
    for mode, (seconds, report) in runs.items():
        gsl, baseline = report["final"], report["baseline"]
        assert baseline["env_steps"] == gsl["env_steps_total"]  # budget-matched in both modes
        print(
            f"{mode:<14} {seconds:>7.0f}  {gsl['success_rate']:>5.2f}  "
            f"{baseline['success_rate']:>8.2f}  {gsl['env_steps_total']:>10,}"
        )
    ratio = runs["concurrent"][0] / runs["after"][0]
    print(f"wall time, concurrent / after: {ratio:.2f}")


if __name__ == "__main__":
    main()
