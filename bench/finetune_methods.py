"""Phase II variants compared on Fork-Maze from the same specialists' demos: methods (DAPG,
BC, GAIL) or any other finetune settings, with the final success and the retention of each.

    python bench/finetune_methods.py [--spec examples/forkmaze.yaml] [--seeds 0 1]
                                     [--geometries example ...] [--variants dapg bc gail]
                                     [--out runs/bench-methods]

A variant is a method name (`dapg`, `bc`, `gail`) or `NAME:FIELD=VALUE[,FIELD=VALUE...]`,
fields in camelCase, of `finetune` unless prefixed by `specialists.` or `demos.` (e.g.
`prob:demoLikelihood=prob`, `grown:specialists.envStepsPerVariation=75000`; values are
YAML). For each geometry (`bench/gsl_vs_ppo.py`'s, plus `10-goals`, the geometry held out
there) and seed, the first variant's run is a full `gsl run` of the spec (generalist,
specialists, demos, finetune; no baseline). Every other variant copies that run's store
and redoes only what it changes: a variant of finetune settings keeps the plateau,
specialists and demonstrations (the generalist's included) and redoes the finetune and
report; one of specialists or demos settings keeps only the generalist and the plan and
redoes the specialists too. Every other setting is the spec's. Runs that already finished
are reused. Prints each variant's final success and retention (the mean fraction of the
specialists' success the final policy keeps on the variations they mastered, `report.json`'s
`retention.retained`) per run, and their means, and each run's env steps.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from statistics import fmean

import yaml
from gsl_vs_ppo import GEOMETRIES

from gsl_k8s import layout
from gsl_k8s.backends.local import run_local, stop_on_sigterm
from gsl_k8s.orchestration.controller import Stage
from gsl_k8s.spec import load_spec, parse_spec
from gsl_k8s.store import open_store, read_json

REDONE = ("finetune", "report", layout.REPORT_JSON, layout.REPORT_PNG, layout.SPEC, layout.MANIFEST)
KEPT_FOR_SPECIALISTS = ("generalist", "plateau", layout.RUN, layout.PLAN)
HELD_OUT = {"variations": 10, "kwargs": {"corridorLength": 2, "armLength": 2, "layoutSeed": 4}}
BENCH_GEOMETRIES = GEOMETRIES | {"10-goals": HELD_OUT}


def parse_variant(text: str) -> tuple[str, dict[str, dict]]:
    """A variant's name and its settings by spec section: `dapg` -> ("dapg", {"finetune":
    {"method": "dapg"}}); `name:a=1,demos.b=x` -> ("name", {"finetune": {"a": 1}, "demos":
    {"b": "x"}})."""
    if ":" not in text:
        return text, {"finetune": {"method": text}}
    name, fields = text.split(":", 1)
    sections: dict[str, dict] = {}
    for field in fields.split(","):
        path, value = field.split("=", 1)
        section, key = path.split(".", 1) if "." in path else ("finetune", path)
        sections.setdefault(section, {})[key] = yaml.safe_load(value)
    return name, sections


def copy_run(source: Path, directory: Path, sections: dict[str, dict]) -> None:
    """Copy the parts of a finished run that a variant changing `sections` keeps."""
    if set(sections) <= {"finetune"}:
        shutil.copytree(source, directory, ignore=lambda _, names: set(REDONE) & set(names))
        return
    for key in KEPT_FOR_SPECIALISTS:
        copy = shutil.copytree if (source / key).is_dir() else shutil.copy
        directory.mkdir(parents=True, exist_ok=True)
        copy(source / key, directory / key)


def run_variant(
    spec_path: str, geometry: str, seed: int, variant: str, out: Path, reuse: Path | None
) -> dict:
    """A run of the spec on `geometry` with `seed` and the variant's finetune settings; with
    `reuse`, a copy of that run's store without the finetune. Returns its report."""
    name, sections = parse_variant(variant)
    base = load_spec(spec_path).model_dump(mode="json", by_alias=True)
    base["spec"]["seed"] = seed
    base["spec"]["env"].update(BENCH_GEOMETRIES[geometry])
    for section, fields in sections.items():
        base["spec"][section].update(fields)
    base["spec"]["baseline"]["enabled"] = False
    base["metadata"]["name"] = f"{base['metadata']['name']}-{geometry}-seed{seed}-{name}"
    experiment = parse_spec(base)
    directory = out / experiment.name
    if reuse is not None and not directory.exists():
        copy_run(reuse, directory, sections)
    store = open_store(str(directory))
    started, last_stage = time.time(), None

    def on_status(status, phases):
        nonlocal last_stage
        if status.stage != last_stage:
            elapsed = time.time() - started
            print(f"  {geometry} seed {seed} {name}: {status.stage} ({elapsed:.0f} s)", flush=True)
            last_stage = status.stage

    status = run_local(experiment, store, directory, on_status)
    if status.stage is not Stage.SUCCEEDED:
        raise SystemExit(f"{experiment.name} failed: {status.message}")
    return read_json(store, layout.REPORT_JSON) | {"directory": str(directory)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/forkmaze.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--geometries", nargs="+", choices=BENCH_GEOMETRIES, default=["example"])
    parser.add_argument("--variants", nargs="+", default=["dapg", "bc", "gail"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-methods"))
    args = parser.parse_args()
    stop_on_sigterm()

    runs = [(geometry, seed) for geometry in args.geometries for seed in args.seeds]
    reports: dict[str, dict[tuple[str, int], dict]] = {v: {} for v in args.variants}
    try:
        for run in runs:
            first = None
            for variant in args.variants:
                report = run_variant(args.spec, *run, variant, args.out, first)
                first = first or Path(report["directory"])
                reports[variant][run] = report
    except KeyboardInterrupt:
        raise SystemExit(
            "interrupted: tasks checkpointed; run the same command to resume"
        ) from None
    print_table(reports, runs)


def print_table(reports: dict[str, dict[tuple[str, int], dict]], runs: list) -> None:
    """Per variant and run, final success / retention; then their means."""
    header = f"{'variant':<12}  " + "  ".join(f"{g[:9] + ' ' + str(s):>13}" for g, s in runs)
    header += f"  {'mean':>13}"
    print(f"final success / retention on the variations specialists mastered\n{header}")
    print("-" * len(header))
    for variant, by_run in reports.items():
        success = [by_run[run]["final"]["success_rate"] for run in runs]
        kept = [by_run[run]["retention"]["retained"] for run in runs]
        measured = [k for k in kept if k is not None]
        cells = [f"{s:.3f} / {_fraction(k)}" for s, k in zip(success, kept, strict=True)]
        mean = f"{fmean(success):.3f} / {_fraction(fmean(measured) if measured else None)}"
        print(f"{parse_variant(variant)[0]:<12}  " + "  ".join(f"{c:>13}" for c in cells), end="")
        print(f"  {mean:>13}")
    print(
        "env steps: "
        + "  ".join(
            f"{parse_variant(v)[0]} {by_run[run]['final']['env_steps_total']:,}"
            for v, by_run in reports.items()
            for run in runs
        )
    )


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
