"""GSL vs the budget-matched PPO baseline on MiniGrid and BabyAI, over several seeds.

    python bench/minigrid_gsl.py [--settings doorkey8-levels ...] [--seeds 0 1 2] [--out runs/bench]

Each (setting, seed) is a full `gsl run` of bench/specs/minigrid-gsl.yaml with the setting's
env and the seed; runs that already finished are reused. Prints the table of
bench/gsl_vs_ppo.py: one row per run, each setting's mean margin (GSL - baseline success at
equal env steps) and the mean over all runs.

The three settings were chosen and committed before any GSL run on them, as ones where PPO
should stay below 0.9 success at this budget, and to span GSL's two kinds of variation:
- `doorkey8-levels`: 16 level seeds of MiniGrid-DoorKey-8x8 (hard exploration, sparse reward);
- `minigrid-6-tasks`: a multi-task set of six MiniGrid tasks with the task's one-hot;
- `babyai-gotolocal-levels`: 32 level seeds of BabyAI-GoToLocal (language missions, 8
  distractors).
One rule sizes every setting from its number of variations (`scaled`): about 64 evaluation
episodes, the weakest half selected, 4 specialists (fewer if fewer are selected) sharing
240k env steps. Nothing else differs between settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gsl_vs_ppo import print_margins, run_patched

from gsl_k8s.backends.local import stop_on_sigterm

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
}
EVALUATION_EPISODES = 64
SPECIALISTS = 4
SPECIALISTS_ENV_STEPS = 240_000


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    stop_on_sigterm()
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
