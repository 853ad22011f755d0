"""How far an experiment has come, stage by stage: env steps trained and planned, the time
elapsed, and an ETA from the recent rate (`eta_seconds`).

Planned is GSL's budget so far: the generalist's cap, each specialist's and each finetune's
budget, and the baseline's (GSL's total once known, GSL's plan so far until then). A
finished task counts the steps it trained as planned too, so the plan shrinks when the
generalist plateaus early; a specialist that failed for good counts what it trained. Demo
recording is not counted. Read from the store alone, for `gsl run` and the operator alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gsl_k8s.layout import BASELINE, GENERALIST, Task
from gsl_k8s.orchestration.controller import JobPhase, Stage
from gsl_k8s.records.baseline import read_baseline_budget
from gsl_k8s.records.plan import planned_rounds, read_plan
from gsl_k8s.records.progress import ProgressReader
from gsl_k8s.records.result import read_result
from gsl_k8s.spec import ExperimentSpec
from gsl_k8s.store import ArtifactStore

RATE_WINDOW_SECONDS = 300.0  # the rate is that of the progress recorded in this window
Sample = tuple[float, int]  # (unix time, env steps done by then)
SECONDS = {"d": 86_400, "h": 3600, "m": 60}


def eta_seconds(
    samples: Sequence[Sample], planned: int, now: float, window: float = RATE_WINDOW_SECONDS
) -> float | None:
    """Seconds from `now` until `planned` env steps are done, at the rate of the recent
    `samples` (time-ordered; those of the `window` seconds before the last, at least the
    last two). 0 once done; None while the rate is unknown: fewer than two samples, no
    progress between them, or nothing recorded in the last `window` seconds."""
    if not samples:
        return None
    last_time, done = samples[-1]
    if done >= planned:
        return 0.0
    if now - last_time > window:
        return None
    recent = [s for s in samples if s[0] >= last_time - window]
    first_time, first_done = (recent if len(recent) >= 2 else samples[-2:])[0]
    if last_time <= first_time or done <= first_done:
        return None
    rate = (done - first_done) / (last_time - first_time)
    return max(last_time + (planned - done) / rate - now, 0.0)


def summed(series: Sequence[Sequence[Sample]]) -> list[Sample]:
    """The samples of tasks that run side by side, as one: at each sample's time, the sum
    of every task's latest env steps."""
    latest = [0] * len(series)
    total, out = 0, []
    for when, i, steps in sorted((t, i, n) for i, samples in enumerate(series) for t, n in samples):
        total += steps - latest[i]
        latest[i] = steps
        out.append((when, total))
    return out


def format_duration(seconds: float) -> str:
    """A short duration: 45s, 12m, 3h05m, 2d04h."""
    s = int(seconds)
    if s < SECONDS["m"]:
        return f"{s}s"
    if s < SECONDS["h"]:
        return f"{s // SECONDS['m']}m"
    if s < SECONDS["d"]:
        return f"{s // SECONDS['h']}h{s % SECONDS['h'] // SECONDS['m']:02d}m"
    return f"{s // SECONDS['d']}d{s % SECONDS['d'] // SECONDS['h']:02d}h"


def percent(done: int, planned: int) -> int:
    """Whole percent done, 100 only once done."""
    return min(100, 100 * done // planned) if planned else 100


@dataclass(frozen=True)
class StageProgress:
    """One stage's env steps done and planned, seconds since its first progress record
    (until its last, once finished) and its ETA (None while unknown)."""

    stage: Stage
    round: int
    done: int
    planned: int
    elapsed_seconds: float
    eta_seconds: float | None

    def summary(self) -> str:
        """e.g. "37% ETA 12m"; without an ETA while the rate is unknown or once done."""
        share = f"{percent(self.done, self.planned)}%"
        if self.eta_seconds is None or self.done >= self.planned:
            return share
        return f"{share} ETA {format_duration(self.eta_seconds)}"


def current_stage(stages: Sequence[StageProgress], stage: str, round_: int):
    """The progress of the stage an experiment is in (None for Reporting and after)."""
    matching = [p for p in stages if p.stage == stage and p.round <= round_]
    return matching[-1] if matching else None


@dataclass(frozen=True)
class _TaskSteps:
    done: int
    planned: int
    samples: list[Sample]
    finished: bool


class ExperimentProgress:
    """Each stage's progress (`read`), from the tasks' progress records (read
    incrementally) and their results."""

    def __init__(self, spec: ExperimentSpec, store: ArtifactStore):
        self.spec = spec
        self.store = store
        self._readers: dict[Task, ProgressReader] = {}
        self._finished: dict[Task, _TaskSteps] = {}

    def read(
        self, phases: Mapping[Task, JobPhase], now: float | None = None
    ) -> list[StageProgress]:
        """The generalist's, each round's specialists' and finetune's (round 1's from the
        spec before its plan), and the baseline's where enabled. `phases`: the started
        tasks (the records of the others are not read until they finish)."""
        now = time.time() if now is None else now
        s = self.spec
        stages = [
            self._stage(Stage.GENERALIST, 1, {GENERALIST: s.generalist.env_steps}, phases, now)
        ]
        for round_, budgets in self._specialist_budgets():
            stages.append(self._stage(Stage.SPECIALISTS, round_, budgets, phases, now))
            finetune = {Task("finetune", round=round_): s.finetune.env_steps}
            stages.append(self._stage(Stage.FINETUNE, round_, finetune, phases, now))
        if s.baseline.enabled:
            budget = read_baseline_budget(self.store)
            if budget is None:
                budget = sum(p.planned for p in stages)
            stages.append(self._stage(Stage.BASELINE, 1, {BASELINE: budget}, phases, now))
        return stages

    def _specialist_budgets(self) -> list[tuple[int, dict[Task, int]]]:
        """Each planned round's specialists and their env-step budgets (by their subsets'
        sizes); before the plan, round 1's as many as asked, sharing the budget of the
        variations to select."""
        s = self.spec.specialists
        rounds = planned_rounds(self.store)
        if not rounds:
            selected = s.select.count or len(self.spec.env.variation_ids)
            share = s.total_budget(selected) // s.count
            return [(1, {Task("specialist", i): share for i in range(s.count)})]
        budgets = []
        for r in rounds:
            subsets = read_plan(self.store, r).subsets
            budgets.append(
                (r, {Task("specialist", i, r): s.budget(len(v)) for i, v in enumerate(subsets)})
            )
        return budgets

    def _stage(
        self,
        stage: Stage,
        round_: int,
        budgets: dict[Task, int],
        phases: Mapping[Task, JobPhase],
        now: float,
    ) -> StageProgress:
        tasks = [self._task(task, budget, phases) for task, budget in budgets.items()]
        samples = summed([t.samples for t in tasks])
        done, planned = sum(t.done for t in tasks), sum(t.planned for t in tasks)
        finished = all(t.finished for t in tasks)
        end = samples[-1][0] if finished and samples else now
        elapsed = end - samples[0][0] if samples else 0.0
        eta = 0.0 if finished else eta_seconds(samples, planned, now)
        return StageProgress(stage, round_, done, planned, elapsed, eta)

    def _task(self, task: Task, budget: int, phases: Mapping[Task, JobPhase]) -> _TaskSteps:
        """A task's steps: its result's once written, else its latest record's."""
        if task in self._finished:
            return self._finished[task]
        if self.store.exists(task.result):
            steps = read_result(self.store, task).env_steps
            self._finished[task] = _TaskSteps(steps, steps, self._samples(task), True)
            del self._readers[task]  # its records are complete
            return self._finished[task]
        if task not in phases:
            return _TaskSteps(0, budget, [], False)
        samples = self._samples(task)
        done = min(samples[-1][1] if samples else 0, budget)
        if phases[task] is JobPhase.FAILED:  # for good: it trains no more
            return _TaskSteps(done, done, samples, True)
        return _TaskSteps(done, budget, samples, False)

    def _samples(self, task: Task) -> list[Sample]:
        reader = self._readers.setdefault(task, ProgressReader(self.store, task.progress))
        return [(r["time"], r["step"]) for r in reader.records()]
