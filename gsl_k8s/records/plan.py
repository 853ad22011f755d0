"""The plans of GSL's rounds (`plan.json`, `rounds/<r>/plan.json`), written by the controller
and read by the trainers, the report and the displays: the weak variations of each round and
its specialists' subsets."""

from __future__ import annotations

from gsl_k8s.layout import GENERALIST, Task, plan_key
from gsl_k8s.store import ArtifactStore, read_json


def planned_rounds(store: ArtifactStore) -> list[int]:
    """The rounds whose plan is written: 1, 2, ... (none before the generalist's plateau)."""
    rounds: list[int] = []
    while store.exists(plan_key(len(rounds) + 1)):
        rounds.append(len(rounds) + 1)
    return rounds


def round_specialists(store: ArtifactStore, round_: int) -> list[Task]:
    """The specialists of a planned round, one per subset."""
    subsets = read_json(store, plan_key(round_))["subsets"]
    return [Task("specialist", i, round_) for i in range(len(subsets))]


def gsl_tasks(store: ArtifactStore) -> list[Task]:
    """GSL's trainer tasks so far: the generalist, and the specialists and finetune of each
    planned round."""
    tasks = [GENERALIST]
    for round_ in planned_rounds(store):
        tasks += [*round_specialists(store, round_), Task("finetune", round=round_)]
    return tasks
