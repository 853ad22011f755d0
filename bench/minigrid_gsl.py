"""GSL vs the budget-matched PPO baseline on MiniGrid and BabyAI, over several seeds.

    python bench/minigrid_gsl.py [--settings doorkey8-levels ...] [--seeds 0 1 2] [--out runs/bench]
    python bench/minigrid_gsl.py --qualify [--settings ...] [--seeds 0]

Each (setting, seed) is a full `gsl run` of bench/specs/minigrid-gsl.yaml with the setting's
env and the seed; runs that already finished are reused. Prints the table of
bench/gsl_vs_ppo.py: one row per run, each setting's mean margin (GSL - baseline success at
equal env steps) and the mean over all runs.

(Not bench/minigrid.py: run as a script, that name would shadow the minigrid package, since
Python puts the script's directory first on sys.path.)

The three settings were chosen and committed before any GSL run on them, as ones where PPO
should stay below 0.9 success at this budget, and to span GSL's two kinds of variation:
- `doorkey8-levels`: 16 level seeds of MiniGrid-DoorKey-8x8 (hard exploration, sparse reward);
- `minigrid-6-tasks`: a multi-task set of six MiniGrid tasks with the task's one-hot;
- `babyai-gotolocal-levels`: 32 level seeds of BabyAI-GoToLocal (language missions, 8
  distractors).
`--qualify` trains PPO alone (`gsl train --role generalist`, no plateau stop) on each setting
for the most env steps a GSL run of it may take (`max_gsl_env_steps`), and prints its final
success: a setting qualifies when PPO stays below 0.9 there, checked before any GSL run.

One rule sizes every setting from its number of variations (`scaled`): about 64 evaluation
episodes, the weakest half selected, 4 specialists (fewer if fewer are selected) sharing
240k env steps. Nothing else differs between settings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from gsl_vs_ppo import merge_patch, patched_experiment, print_margins, run_patched

from gsl_k8s import layout
from gsl_k8s.backends.local import stop_on_sigterm
from gsl_k8s.envs import make_family
from gsl_k8s.layout import GENERALIST
from gsl_k8s.records.result import read_result
from gsl_k8s.store import open_store
from gsl_k8s.trainer.task import max_gsl_env_steps

SPEC = "bench/specs/minigrid-gsl.yaml"
SETTINGS: dict[str, dict] = {
    "doorkey8-levels": {"family": "minigrid", "id": "MiniGrid-DoorKey-8x8-v0", "variations": 16},
    "minigrid-6-tasks": {
        "family": "minigrid",
        "id": None,  # not the template's id: a task set
        "variations": 6,
        "kwargs": {
            "ids": [
                "MiniGrid-DoorKey-6x6-v0",
                "MiniGrid-KeyCorridorS3R1-v0",
                "MiniGrid-LavaCrossingS9N1-v0",
                "MiniGrid-MultiRoom-N2-S4-v0",
                "MiniGrid-Unlock-v0",
                "MiniGrid-SimpleCrossingS9N1-v0",
            ]
        },
    },
    "babyai-gotolocal-levels": {
        "family": "minigrid",
        "id": "BabyAI-GoToLocal-v0",
        "variations": 32,
    },
    # Added after the first two proved too easy (PPO 1.00 at this budget), before any GSL
    # run on these, to be qualified by --qualify first:
    "fourrooms-levels": {"family": "minigrid", "id": "MiniGrid-FourRooms-v0", "variations": 16},
    "minigrid-6-harder-tasks": {
        "family": "minigrid",
        "id": None,
        "variations": 6,
        "kwargs": {
            "ids": [
                "MiniGrid-DoorKey-8x8-v0",
                "MiniGrid-KeyCorridorS3R2-v0",
                "MiniGrid-LavaCrossingS9N2-v0",
                "MiniGrid-MultiRoom-N4-S5-v0",
                "MiniGrid-FourRooms-v0",
                "MiniGrid-SimpleCrossingS11N5-v0",
            ]
        },
    },
}
EVALUATION_EPISODES = 64
SPECIALISTS = 4
SPECIALISTS_ENV_STEPS = 240_000
QUALIFYING_SUCCESS = 0.9  # a setting PPO solves at GSL's budget leaves GSL nothing to show


def scaled(env: dict) -> dict:
    """The spec patch of a setting: its env, and what one rule derives from its variations."""
    variations = env["variations"]
    per_variation = {"episodesPerVariation": max(1, round(EVALUATION_EPISODES / variations))}
    selected = variations // 2
    return {
        "env": env,
        "generalist": {"evaluation": per_variation},
        "specialists": {
            "count": min(SPECIALISTS, selected),
            "select": {"strategy": "lowest", "count": selected},
            "envStepsPerVariation": SPECIALISTS_ENV_STEPS // selected,
            "evaluation": per_variation,
        },
        "finetune": {"evaluation": per_variation},
    }


def qualify(name: str, seed: int, out: Path) -> tuple[int, float]:
    """PPO alone on setting `name` for the most env steps GSL may take there: (those env
    steps, its final success rate)."""
    patch = {**scaled(SETTINGS[name]), "seed": seed}
    gsl = patched_experiment(SPEC, patch).spec
    budget = max_gsl_env_steps(gsl, make_family(gsl.env).max_episode_steps)
    alone = {"envSteps": budget, "plateau": {"minSteps": budget}}
    experiment = patched_experiment(SPEC, merge_patch(patch, {"generalist": alone}))
    run = out / f"qualify-{name}-seed{seed}"
    store = open_store(str(run))
    if not store.exists(GENERALIST.result):
        store.write_bytes(layout.SPEC, experiment.to_json().encode())
        command = [sys.executable, "-m", "gsl_k8s", "train", "--run", str(run)]
        subprocess.run([*command, "--role", "generalist", "--metrics-port", "0"], check=True)
    final = read_result(store, GENERALIST).final_eval
    return budget, final["eval/success_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--qualify", action="store_true", help="PPO alone at GSL's most steps")
    args = parser.parse_args()
    stop_on_sigterm()
    if args.qualify:
        for name in args.settings:
            for seed in args.seeds:
                steps, success = qualify(name, seed, args.out)
                verdict = "qualifies" if success < QUALIFYING_SUCCESS else "too easy"
                print(
                    f"{name:<24} seed {seed}  PPO {success:.3f} at {steps:,} env steps: {verdict}"
                )
        return
    try:
        reports = {
            (name, seed): run_patched(SPEC, name, scaled(SETTINGS[name]), seed, args.out)
            for name in args.settings
            for seed in args.seeds
        }
    except KeyboardInterrupt:
        message = "interrupted: tasks checkpointed; run the same command to resume"
        raise SystemExit(message) from None
    print_margins(reports, "setting")


if __name__ == "__main__":
    main()
