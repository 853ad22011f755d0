"""A spec's generalist, trained for a fixed wall-clock time: env steps/s and evaluation curve.

    python bench/learning_curves.py SPEC [SPEC ...] [--minutes 8] [--out curves]

Each generalist runs as `gsl train`, the command both backends run, side by side with the
others, and is stopped with SIGTERM when its time is up (it checkpoints and exits). Prints one
table per spec (env steps, success, return and training env steps/s at each evaluation) and
writes OUT/curves.json and OUT/curves.png. `bench/specs/` holds the paper-scale GPU runs
recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gsl_k8s.layout import GENERALIST, SPEC  # noqa: E402
from gsl_k8s.records.progress import read_progress  # noqa: E402
from gsl_k8s.spec import load_spec  # noqa: E402
from gsl_k8s.store import open_store  # noqa: E402


def start(spec_path: str, out: Path) -> tuple[str, subprocess.Popen]:
    """Write the spec into a fresh run directory and start its generalist."""
    experiment = load_spec(spec_path)
    run = out / experiment.metadata.name
    store = open_store(str(run))
    store.write_bytes(SPEC, experiment.to_json().encode())
    log = (run / "train.log").open("w")
    command = [sys.executable, "-m", "gsl_k8s", "train", "--run", str(run), "--role"]
    command += ["generalist", "--metrics-port", "0"]
    return experiment.metadata.name, subprocess.Popen(command, stdout=log, stderr=log)


def curve(run: Path) -> list[dict]:
    """The evaluations, each with the mean training env steps/s since the previous one."""
    records = read_progress(open_store(str(run)), GENERALIST.progress)
    points, rates = [], []
    for record in records:
        if "charts/sps" in record:
            rates.append(record["charts/sps"])
        if "eval/return" in record:
            points.append(
                {
                    "env_steps": record["step"],
                    "success_rate": record["eval/success_rate"],
                    "return": record["eval/return"],
                    "train_steps_per_second": sum(rates) / len(rates) if rates else None,
                }
            )
            rates = []
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("curves"))
    args = parser.parse_args()
    runs = [start(spec, args.out) for spec in args.specs]
    time.sleep(args.minutes * 60)
    for _, proc in runs:
        proc.send_signal(signal.SIGTERM)
    for name, proc in runs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"{name}: did not stop within 120 s of SIGTERM", file=sys.stderr)

    curves = {name: curve(args.out / name) for name, _ in runs}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        print(f"\n{name}")
        print(f"{'env steps':>12} {'success':>8} {'return':>8} {'train steps/s':>14}")
        for p in points:
            rate = f"{p['train_steps_per_second']:,.0f}" if p["train_steps_per_second"] else "-"
            print(f"{p['env_steps']:>12,} {p['success_rate']:>8.3f} {p['return']:>8.2f} {rate:>14}")
        steps = [p["env_steps"] for p in points]
        axes[0].plot(steps, [p["return"] for p in points], marker="o", label=name)
        axes[1].plot(steps, [p["success_rate"] for p in points], marker="o", label=name)
    for axis, label in zip(axes, ("evaluation return", "evaluation success rate"), strict=True):
        axis.set_xlabel("env steps")
        axis.set_ylabel(label)
        axis.legend()
    figure.tight_layout()
    figure.savefig(args.out / "curves.png", dpi=120)
    (args.out / "curves.json").write_text(json.dumps(curves, indent=1))


if __name__ == "__main__":
    main()
