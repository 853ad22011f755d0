"""The live progress display of `gsl run`: stage, one row per task, and each stage's
progress and ETA."""

from __future__ import annotations

from rich.table import Table

from gsl_k8s.core.retention import best_specialist_success, retention_summary
from gsl_k8s.layout import BASELINE, FINETUNE, Task
from gsl_k8s.orchestration.controller import JobPhase, Status
from gsl_k8s.orchestration.progress import ExperimentProgress, StageProgress, format_duration
from gsl_k8s.orchestration.report import DemoCounts, retention_line
from gsl_k8s.records.demos import DemoCount
from gsl_k8s.records.plan import gsl_tasks
from gsl_k8s.records.progress import ProgressReader
from gsl_k8s.records.result import read_result
from gsl_k8s.spec import ExperimentSpec
from gsl_k8s.store import ArtifactStore


class ProgressTable:
    """A table of every task's state, env steps, latest evaluation and speed, read
    incrementally from the store, captioned with each stage's progress."""

    def __init__(self, name: str, store: ArtifactStore, spec: ExperimentSpec):
        self.name = name
        self.store = store
        self._readers: dict[Task, ProgressReader] = {}
        self._demos = DemoCounts(store)
        self._progress = ExperimentProgress(spec, store)
        self._specialist_evals: dict[Task, dict[str, float]] = {}

    def render(self, status: Status, phases: dict[Task, JobPhase]) -> Table:
        """The table for the current status."""
        stage = f"{status.stage}, round {status.round}" if status.round > 1 else status.stage
        table = Table(title=f"GSL experiment {self.name}: {stage} ({status.message})")
        for column in ("task", "state", "env steps", "eval success", "steps/s", "demos kept"):
            table.add_column(column, justify="left" if column in ("task", "state") else "right")
        tasks = [*gsl_tasks(self.store), BASELINE]
        demos = self._demos.read([t for t in tasks if t.role == "specialist"])
        demos[FINETUNE.name] = demos.pop("generalist", None)  # round 1's finetune records those
        latest_finetune_eval = None
        for task in tasks:
            done = self.store.exists(task.result)
            if task not in phases and not done:
                continue
            reader = self._readers.setdefault(task, ProgressReader(self.store, task.progress))
            records = reader.records()
            evals = [r for r in records if "eval/success_rate" in r]
            if task.role == "finetune" and evals:
                latest_finetune_eval = evals[-1]["eval/per_variation"]
            speeds = [r for r in records if "charts/sps" in r]
            state = "done" if done else str(phases.get(task, "waiting")).lower()
            table.add_row(
                task.name,
                state,
                f"{records[-1]['step']:,}" if records else "0",
                f"{evals[-1]['eval/success_rate']:.2f}" if evals else "-",
                f"{speeds[-1]['charts/sps']:,.0f}" if speeds else "-",
                _demos_cell(demos.get(task.name)),
            )
        captions = [progress_caption(self._progress.read(phases))]
        if latest_finetune_eval is not None:
            captions.append(self._retention_caption(tasks, latest_finetune_eval))
        table.caption = "\n".join(c for c in captions if c)
        return table

    def _retention_caption(self, tasks: list[Task], finetune_eval: dict[str, float]) -> str:
        """What the finetune's latest evaluation keeps of the finished specialists' mastered
        variations."""
        for task in tasks:
            finished = task.role == "specialist" and self.store.exists(task.result)
            if finished and task not in self._specialist_evals:
                result = read_result(self.store, task)
                self._specialist_evals[task] = result.final_eval["eval/per_variation"]
        specialist = best_specialist_success(self._specialist_evals.values())
        return "finetune so far: " + retention_line(retention_summary(specialist, finetune_eval))


def progress_caption(stages: list[StageProgress]) -> str:
    """Each stage's progress: e.g. "Generalist 100% (4m elapsed) · Specialists 37% ETA 12m
    (3m elapsed) · Finetune 0%"."""
    parts = []
    for p in stages:
        label = str(p.stage) if p.round == 1 else f"{p.stage} r{p.round}"
        elapsed = f" ({format_duration(p.elapsed_seconds)} elapsed)" if p.elapsed_seconds else ""
        parts.append(f"{label} {p.summary()}{elapsed}")
    return " · ".join(parts)


def _demos_cell(count: DemoCount | None) -> str:
    """kept/asked, in yellow when short."""
    if count is None or not count.asked:
        return "-"
    cell = f"{count.kept}/{count.asked}"
    return f"[yellow]{cell}[/]" if count.short else cell
