"""The GSL pipeline (Algorithm 1 of Jia et al. 2022) as a level-based state machine.

`Controller.reconcile` looks at what exists (store objects, the backend's jobs), does the
next idempotent step and reports the stage. Backends (local subprocesses, Kubernetes Jobs)
only start tasks and report their phase; running `reconcile` again after a crash or a
restart picks up where the experiment stands.

    Generalist  -> start it; watch its evaluations for the plateau; ask it to stop;
                   pin the plateau checkpoint; choose the weak variations; partition them
                   (`partition: features` by the vectors the generalist wrote at its end)
    Specialists -> run one task per subset, `parallelism` at a time (each records demos)
    Finetune    -> resume the generalist with the demo term
    Baseline    -> PPO alone, for exactly the env steps GSL used; `baseline.mode:
                   concurrent` starts it with the generalist, and it trains up to GSL's
                   env steps so far until GSL's total is known
    Reporting   -> a last, short task writes report.json and report.png
    Succeeded   -> report written
    Failed      -> a task failed for good: whatever still runs is stopped
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gsl_k8s import layout
from gsl_k8s.core.partition import partition, select_weak_variations
from gsl_k8s.core.plateau import PlateauCriterion, replay
from gsl_k8s.errors import GSLError
from gsl_k8s.layout import BASELINE, GENERALIST, REPORT, Task, checkpoint_step
from gsl_k8s.orchestration.metrics_source import MetricsSourceError, metrics_source
from gsl_k8s.orchestration.report import DemoCounts, env_steps_used
from gsl_k8s.records.baseline import write_baseline_allowance, write_baseline_budget
from gsl_k8s.records.demos import describe_shortfall
from gsl_k8s.records.features import read_features
from gsl_k8s.records.plan import (
    PinnedPlateau,
    RoundPlan,
    SpecialistsOutcome,
    gsl_tasks,
    planned_rounds,
    read_pinned,
    read_specialists_outcome,
    round_specialists,
    write_pinned,
    write_plan,
    write_specialists_outcome,
)
from gsl_k8s.records.progress import ProgressReader
from gsl_k8s.records.result import read_result
from gsl_k8s.records.run import RunRecord, read_run, write_run
from gsl_k8s.spec import ExperimentSpec, GSLExperiment, parse_spec
from gsl_k8s.store import (
    ArtifactStore,
    copy_artifact,
    is_published,
    list_artifacts,
    read_json,
    write_manifest,
)


class Stage(StrEnum):
    GENERALIST = "Generalist"
    SPECIALISTS = "Specialists"
    FINETUNE = "Finetune"
    BASELINE = "Baseline"
    REPORTING = "Reporting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class JobPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Backend(Protocol):
    """Runs trainer tasks: the only part that differs between local and Kubernetes."""

    def phases(self) -> dict[Task, JobPhase]:
        """The phase of every task this backend has started."""
        ...

    def start(self, task: Task) -> None:
        """Start `task` (idempotent for a task that is already running)."""
        ...

    def stop(self) -> None:
        """Stop every task that still runs; each gets SIGTERM and time to checkpoint
        (idempotent: finished tasks are left alone)."""
        ...

    def log_hint(self, task: Task) -> str:
        """Where to read `task`'s output, for the message of its failure."""
        ...


@dataclass(frozen=True)
class SpecialistCounts:
    total: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Status:
    """Where the experiment stands after a reconcile."""

    stage: Stage
    message: str
    specialists: SpecialistCounts = SpecialistCounts()  # the round's
    demo_shortfall: str | None = None  # sources that kept fewer demos than asked
    round: int = 1  # the GSL round of the specialists and finetune


@dataclass(frozen=True)
class RoundOutcome:
    """Where a GSL round stands: `status` is None once its finetune has finished."""

    round: int
    status: Status | None
    counts: SpecialistCounts
    shortfall: str | None = None


class SpecChangedError(GSLError):
    """The store holds a run of another spec."""

    reason = "SpecChanged"
    usage = True


def record_spec(store: ArtifactStore, experiment: GSLExperiment) -> bool:
    """Store the spec of a new run; refuse to continue a run of a different spec. Returns
    whether the store already held this run (a resume). Only the name and the spec count:
    the same spec with other metadata (labels, a new object's uid), from another cluster
    or another machine, continues the run."""
    existing = store.exists(layout.SPEC)
    if existing:
        stored = parse_spec(read_json(store, layout.SPEC))
        changed = spec_differences(stored, experiment)
        if changed:
            raise SpecChangedError(
                f"{store.uri} holds a run of a different spec ({'; '.join(changed)}); "
                "apply the stored spec to resume it, or give this one another name or "
                "storage location (or delete that run)"
            )
    else:
        store.write_bytes(layout.SPEC, experiment.to_json().encode())
    if not store.exists(layout.RUN):
        write_run(store, RunRecord(created=time.time()))
    return existing


def spec_differences(stored: GSLExperiment, wanted: GSLExperiment, limit: int = 3) -> list[str]:
    """The fields whose values differ between a stored spec and a wanted one, as
    `spec.x.y: <stored> stored, <wanted> now` (the first `limit`, then a count)."""
    if stored.name != wanted.name:
        return [f"metadata.name: {stored.name!r} stored, {wanted.name!r} now"]
    before = _leaves(stored.spec.model_dump(mode="json", by_alias=True), "spec")
    after = _leaves(wanted.spec.model_dump(mode="json", by_alias=True), "spec")
    changed = [
        f"{path}: {json.dumps(before.get(path))} stored, {json.dumps(after.get(path))} now"
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]
    if len(changed) > limit:
        changed = [*changed[:limit], f"{len(changed) - limit} more"]
    return changed


def _leaves(value: Any, path: str) -> dict[str, Any]:
    """The leaf values of a JSON document by dotted path (lists are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{path}.{key}"))
        return out
    return {path: value}


def describe_stored_run(store: ArtifactStore, spec: ExperimentSpec) -> str:
    """What the store holds of a run, for the message when a run resumes: e.g.
    "generalist done, 2/3 specialists done"."""
    if store.exists(GENERALIST.result):
        parts = ["generalist done"]
    else:
        records = ProgressReader(store, GENERALIST.progress).records()
        parts = [f"generalist at step {records[-1]['step']:,}" if records else "nothing trained"]
    for round_ in planned_rounds(store):
        label = f"round {round_}: " if spec.rounds > 1 else ""
        specialists = round_specialists(store, round_)
        done = sum(store.exists(t.result) for t in specialists)
        parts.append(f"{label}{done}/{len(specialists)} specialists done")
        if store.exists(Task("finetune", round=round_).result):
            parts.append(f"{label}finetune done")
    if spec.baseline.enabled and store.exists(BASELINE.result):
        parts.append("baseline done")
    if store.exists(layout.REPORT_JSON):
        parts.append("report written")
    return ", ".join(parts)


def gsl_env_steps(store: ArtifactStore) -> int:
    """Every env step GSL consumed: training and demo collection of all its tasks (failed
    specialists included)."""
    return sum(env_steps_used(store, task) for task in gsl_tasks(store))


class GslStepsSoFar:
    """A lower bound of GSL's env steps while it runs: the steps of finished tasks, and the
    latest recorded step of the others, read incrementally."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._readers: dict[Task, ProgressReader] = {}
        self._finished: dict[Task, int] = {}

    def read(self) -> int:
        """GSL's env steps as far as the store shows them."""
        total = 0
        for task in gsl_tasks(self.store):
            if task not in self._finished and self.store.exists(task.result):
                self._finished[task] = read_result(self.store, task).env_steps_used
            if task in self._finished:
                total += self._finished[task]
                continue
            reader = self._readers.setdefault(task, ProgressReader(self.store, task.progress))
            records = reader.records()
            total += records[-1]["step"] if records else 0
        return total


class Controller:
    """Drives one experiment through its stages; see the module docstring. `namespace` is
    the experiment's Kubernetes namespace (None for `gsl run`)."""

    def __init__(
        self,
        experiment: GSLExperiment,
        store: ArtifactStore,
        backend: Backend,
        namespace: str | None = None,
    ):
        resumed = record_spec(store, experiment)
        # What the store held when this controller took the run over; None for a new run.
        self.resumed = (
            f"resuming from {store.uri}: {describe_stored_run(store, experiment.spec)}"
            if resumed
            else None
        )
        self.experiment = experiment
        self.spec = experiment.spec
        self.store = store
        self.backend = backend
        since = read_run(store).created
        self.metrics = metrics_source(experiment, store, since, namespace)
        self.evaluations: list[tuple[int, float]] = []  # the generalist's, as last read
        self._generalist_records = ProgressReader(store, GENERALIST.progress)
        self._stage: Stage | None = None
        self._succeeded: set[Task] = set()  # results, once written, stay
        self._demos = DemoCounts(store)
        self._gsl_steps = GslStepsSoFar(store)
        self._allowance = 0  # what a concurrent baseline was last allowed

    def reconcile(self) -> Status:
        """Take the next step(s) the observed state allows; return the resulting status."""
        status = self._reconcile()
        if status.stage is Stage.FAILED:
            self.backend.stop()  # what still runs has no use any more
        if status.stage != self._stage:  # refresh the artifact index at every stage change
            write_manifest(self.store, layout.MANIFEST)
            self._stage = status.stage
        return status

    def _reconcile(self) -> Status:
        phases = self.backend.phases()
        for task, phase in sorted(phases.items()):
            lost = phase is JobPhase.FAILED and not self.store.exists(task.result)
            if lost and task.role != "specialist":  # specialists may fail (minSucceeded)
                message = f"{task.name} failed (see {self.backend.log_hint(task)})"
                return Status(Stage.FAILED, message)
        baseline = self.spec.baseline
        if baseline.enabled and baseline.mode == "concurrent":
            self._run_baseline_alongside(phases)
        if not self.store.exists(layout.PLAN):
            return self._generalist(phases)
        for round_ in range(1, self.spec.rounds + 1):
            if round_ > 1 and not self._plan_round(round_):
                break  # the last finetune succeeded on every variation
            outcome = self._round(round_, phases)
            if outcome.status is not None:
                return outcome.status
        counts, shortfall = outcome.counts, outcome.shortfall
        if baseline.enabled:
            if not self.store.exists(layout.BASELINE_BUDGET):
                write_baseline_budget(self.store, gsl_env_steps(self.store))
            if not self._complete(BASELINE, phases):
                message = "PPO alone on GSL's env steps"
                return Status(Stage.BASELINE, message, counts, shortfall, outcome.round)
        # Succeeded once the report task has exited, too: nothing of the experiment runs.
        if not self._complete(REPORT, phases) or phases.get(REPORT) is JobPhase.RUNNING:
            message = "writing report.json and report.png"
            return Status(Stage.REPORTING, message, counts, shortfall, outcome.round)
        return Status(Stage.SUCCEEDED, "report written", counts, shortfall, outcome.round)

    def _round(self, round_: int, phases: dict[Task, JobPhase]) -> RoundOutcome:
        """Run a planned round's specialists, then its finetune; the outcome's status is
        None once the finetune has finished."""
        specialists = round_specialists(self.store, round_)
        outcome = read_specialists_outcome(self.store, round_)
        if outcome is None:
            status = self._specialists(specialists, phases)
            if status is not None:
                return RoundOutcome(round_, status, status.specialists)
            outcome = read_specialists_outcome(self.store, round_)
        counts = SpecialistCounts(len(specialists), len(outcome.succeeded), len(outcome.failed))
        demos = self._demos.read(specialists)
        shortfall = describe_shortfall(demos)
        from_specialists = [demos[t.name] for t in specialists if t.name in demos]
        if not any(c.kept for c in from_specialists) and any(c.asked for c in from_specialists):
            message = (
                f"no specialist recorded a demonstration ({shortfall}): the finetune would "
                "learn without them; give specialists more env steps or set "
                "demos.successOnly: false"
            )
            status = Status(Stage.FAILED, message, counts, shortfall, round_)
            return RoundOutcome(round_, status, counts, shortfall)
        if not self._complete(Task("finetune", round=round_), phases):
            message = "generalist resumes with demonstrations"
            if outcome.failed:
                message += f" ({counts.failed} specialists failed)"
            status = Status(Stage.FINETUNE, message, counts, shortfall, round_)
            return RoundOutcome(round_, status, counts, shortfall)
        return RoundOutcome(round_, None, counts, shortfall)

    def _plan_round(self, round_: int) -> bool:
        """Plan a later round from the previous round's finetune, once: its weights become
        the round's start checkpoint, its final evaluation picks the weak variations.
        Returns False (and plans nothing) where that finetune succeeded on every variation."""
        if self.store.exists(layout.plan_key(round_)):
            return True
        previous = Task("finetune", round=round_ - 1)
        result = read_result(self.store, previous)
        if min(result.final_eval["eval/per_variation"].values()) >= 1.0:
            return False
        if not is_published(self.store, layout.start_checkpoint(round_)):
            source = previous.checkpoint(result.env_steps)
            copy_artifact(self.store, source, layout.start_checkpoint(round_))
        # As round 1's plan, with the previous finetune's final step pinned.
        write_plan(self.store, round_, self._plan(None, result.env_steps, result.final_eval))
        return True

    def _run_baseline_alongside(self, phases: dict[Task, JobPhase]) -> None:
        """Start the concurrent baseline, and allow it GSL's env steps so far (it never
        trains past them); the budget, written once the finetune ends, supersedes this."""
        if self.store.exists(layout.BASELINE_BUDGET) or self._complete(BASELINE, phases):
            return
        steps = self._gsl_steps.read()
        if steps > self._allowance:
            write_baseline_allowance(self.store, steps)
            self._allowance = steps

    def _complete(self, task: Task, phases: dict[Task, JobPhase]) -> bool:
        """Whether `task` has finished; starts it if it is neither finished nor running."""
        if self.store.exists(task.result):
            return True
        if task not in phases:
            self.backend.start(task)
        return False

    def _generalist(self, phases: dict[Task, JobPhase]) -> Status:
        try:
            series = self.evaluations = self.metrics.evaluations()
        except MetricsSourceError as err:
            if not err.transient:
                raise
            self._complete(GENERALIST, phases)
            return Status(Stage.GENERALIST, f"waiting for metrics: {err}")
        detector = replay(series, self._plateau_criterion())
        plateau_step = detector.plateau_step
        pinned = plateau_step is not None and self._pin(plateau_step)
        if pinned and not self.store.exists(GENERALIST.stop):
            self.store.write_bytes(GENERALIST.stop, b"plateau\n")
        if not self._complete(GENERALIST, phases):
            if plateau_step is None:
                latest = f", {series[-1][1]:.2f} at step {series[-1][0]}" if series else ""
                if trend := detector.trend:  # why it goes on: the rise is not yet shown flat
                    latest += f", rise {trend.rise:+.2f} (se {trend.stderr:.2f}) over the window"
                return Status(Stage.GENERALIST, f"training until plateau{latest}")
            return Status(Stage.GENERALIST, f"plateau at step {plateau_step}; stopping")
        # Without a plateau before the budget ran out, the final weights are pinned.
        final_step = read_result(self.store, GENERALIST).env_steps
        if not self._pin(final_step if plateau_step is None else plateau_step):
            return Status(Stage.GENERALIST, "waiting for the final evaluation record")
        self._write_plan(plateau_step)
        return Status(Stage.SPECIALISTS, "plan written")

    def _plateau_criterion(self) -> PlateauCriterion:
        """The generalist's plateau criterion; a success rate's evaluation noise is floored
        at the binomial one of the episodes behind each evaluation."""
        plateau, evaluation = self.spec.generalist.plateau, self.spec.generalist.evaluation
        episodes = evaluation.episodes_per_variation * len(self.spec.env.variation_ids)
        return PlateauCriterion(
            **plateau.model_dump(exclude={"metric"}),
            episodes=episodes if plateau.metric == "success_rate" else None,
        )

    def _pin(self, step: int) -> bool:
        """Copy the generalist's checkpoint of `step` to the plateau key, once; returns
        whether the pin is in place.

        If the generalist already pruned that checkpoint, the oldest later evaluation's
        stands in. The choice is recorded first, so a crash in between repeats the copy of
        the same checkpoint, and the plateau artifact, once published, never changes.
        """
        pinned = read_pinned(self.store)
        if pinned is None:
            records = self._generalist_records.records()
            evaluated = {r["step"] for r in records if "eval/per_variation" in r}
            kept = [
                checkpoint_step(key)
                for key in list_artifacts(self.store, GENERALIST.checkpoints, ".pt")
            ]
            candidates = [s for s in kept if s >= step and s in evaluated]
            if not candidates:  # the evaluation record is not written yet
                return False
            pinned = PinnedPlateau(step=min(candidates), plateau_step=step)
            write_pinned(self.store, pinned)
        if not is_published(self.store, layout.PLATEAU_CHECKPOINT):
            source = GENERALIST.checkpoint(pinned.step)
            copy_artifact(self.store, source, layout.PLATEAU_CHECKPOINT)
        return True

    def _write_plan(self, plateau_step: int | None) -> None:
        pinned_step = read_pinned(self.store).step
        record = next(
            r
            for r in self._generalist_records.records()
            if r["step"] == pinned_step and "eval/per_variation" in r
        )
        write_plan(self.store, 1, self._plan(plateau_step, pinned_step, record))

    def _plan(self, plateau_step: int | None, pinned_step: int, evaluation: dict) -> RoundPlan:
        """A round's plan from the evaluation at its pinned step: the weak variations and
        the specialists' subsets of them."""
        scores = self._scores(evaluation)
        weak, subsets = self._split(scores)
        return RoundPlan(
            plateau_step=plateau_step,
            pinned_step=pinned_step,
            success_rate_at_pin=evaluation["eval/success_rate"],
            return_at_pin=evaluation["eval/return"],
            scores=scores,
            weak_variations=sorted(weak),
            subsets=subsets,
        )

    def _scores(self, evaluation: dict) -> dict[int, float]:
        """Per-variation scores of an evaluation record, in the plateau's metric."""
        metric = self.spec.generalist.plateau.metric
        key = "eval/per_variation" if metric == "success_rate" else "eval/per_variation_return"
        return {int(v): score for v, score in evaluation[key].items()}

    def _split(self, scores: dict[int, float]) -> tuple[list[int], list[list[int]]]:
        """The weak variations and the specialists' subsets of them."""
        s = self.spec.specialists
        count = s.select.count if s.select.strategy == "lowest" else None
        ceiling = 1.0 if self.spec.generalist.plateau.metric == "success_rate" else None
        weak = select_weak_variations(scores, count, ceiling)
        features = None
        if s.partition == "features":
            features = read_features(self.store).features
        subsets = partition(
            weak, s.count, s.partition, scores=scores, features=features, seed=self.spec.seed
        )
        return weak, subsets

    def _specialists(self, specialists: list[Task], phases: dict[Task, JobPhase]) -> Status | None:
        """Run the specialists; once each succeeded or failed for good, record the outcome
        and return None, or a FAILED status if fewer than `minSucceeded` succeeded."""
        self._succeeded |= {
            t for t in specialists if t not in self._succeeded and self.store.exists(t.result)
        }
        succeeded = [t for t in specialists if t in self._succeeded]
        failed = [
            t for t in specialists if phases.get(t) is JobPhase.FAILED and t not in self._succeeded
        ]
        counts = SpecialistCounts(len(specialists), len(succeeded), len(failed))
        round_ = specialists[0].round
        needed = self.spec.specialists.min_succeeded or len(specialists)
        if counts.total - counts.failed < needed:
            names = ", ".join(t.name for t in failed)
            message = f"{names} failed: fewer than {needed} specialists can succeed"
            return Status(Stage.FAILED, message, counts, round=round_)
        if counts.succeeded + counts.failed < counts.total:
            self._start_specialists(specialists, phases)
            message = f"{counts.succeeded}/{counts.total} done"
            return Status(Stage.SPECIALISTS, message, counts, round=round_)
        outcome = SpecialistsOutcome([t.index for t in succeeded], [t.index for t in failed])
        write_specialists_outcome(self.store, round_, outcome)
        return None

    def _start_specialists(self, specialists: list[Task], phases: dict[Task, JobPhase]) -> None:
        running = sum(phases.get(t) is JobPhase.RUNNING for t in specialists)
        for task in specialists:
            if running >= self.spec.specialists.parallelism:
                break
            if task not in phases and not self.store.exists(task.result):
                self.backend.start(task)
                running += 1
