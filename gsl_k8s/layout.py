"""The experiment layout: trainer tasks and the store keys they read and write.

Under `<storage uri>/<experiment name>/`:

    spec.json                       the validated spec (camelCase)
    run.json                        when the run was created
    plan.json                       plateau step, per-variation scores, specialist subsets
    manifest.json                   sha256 of every published artifact (an index)
    plateau/checkpoint.pt           the pinned plateau checkpoint (written once)
    plateau/pinned.json             the plateau's env step and that of the pinned checkpoint
    generalist/features.json        a feature vector per variation, for `partition: features`
                                    (written by the generalist before its result)
    <task>/progress/NNNNNNNN.jsonl  progress records, one JSON object per line, in segments
    <task>/checkpoints/step-N.pt    checkpoints (the newest few are kept)
    <task>/result.json              written when the task completes: env steps used, reason
    <task>/STOP                     a request to stop, written by the controller
    <task>/log.txt                  the process's output (local backend)
    <task>/tensorboard/             TensorBoard events (file:// stores only)
    specialists/outcome.json        which specialists succeeded and which failed for good
    demos/<i>/shard-NNNN.npz        specialist i's demonstrations
    demos/generalist/shard-NNNN.npz the generalist's demonstrations
    demos/generalist/done.json      written once they are recorded: their count and cost
    baseline/allowance.json         GSL's env steps so far: how far a concurrent baseline
                                    may train before its budget is known
    baseline/budget.json            the env steps the baseline may use: GSL's total
    report.json, report.png         the summary, written by the report task
    report/log.txt                  the report task's output (local backend)

where <task> is generalist, specialists/<i>, finetune or baseline. With `rounds` > 1, each
later round r has its own plan, start checkpoint, specialists, demos and finetune:

    rounds/<r>/plan.json            the still-weak variations after round r-1, and subsets
    rounds/<r>/start.pt             round r-1's finetuned weights, which round r clones
    rounds/<r>/specialists/<i>/...  as above; rounds/<r>/specialists/outcome.json
    rounds/<r>/demos/<i>/...        round r's specialist demonstrations
    rounds/<r>/finetune/...         round r's finetune, on every demonstration so far

Checkpoints and demo shards are artifacts: each has a `<key>.sha256` record, written after
the object, and is verified on every load (`gsl_k8s.store.integrity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["generalist", "specialist", "finetune", "baseline", "report"]
TRAINER_ROLES: tuple[Role, ...] = ("generalist", "specialist", "finetune", "baseline")
ROLES: tuple[Role, ...] = (*TRAINER_ROLES, "report")

SPEC = "spec.json"
RUN = "run.json"
PLAN = "plan.json"
MANIFEST = "manifest.json"
PLATEAU_CHECKPOINT = "plateau/checkpoint.pt"
PLATEAU_PINNED = "plateau/pinned.json"
SPECIALISTS_DONE = "specialists/outcome.json"
BASELINE_ALLOWANCE = "baseline/allowance.json"
BASELINE_BUDGET = "baseline/budget.json"
REPORT_JSON = "report.json"
REPORT_PNG = "report.png"
GENERALIST_FEATURES = "generalist/features.json"
GENERALIST_DEMOS = "demos/generalist"
GENERALIST_DEMOS_DONE = "demos/generalist/done.json"


def round_prefix(round_: int) -> str:
    """Where a round's keys live: the top level for round 1, `rounds/<r>/` after it."""
    return "" if round_ == 1 else f"rounds/{round_}/"


def plan_key(round_: int) -> str:
    """The plan of a round: its weak variations and the specialists' subsets."""
    return PLAN if round_ == 1 else f"{round_prefix(round_)}plan.json"


def specialists_done_key(round_: int) -> str:
    """Which of a round's specialists succeeded and which failed for good."""
    return f"{round_prefix(round_)}{SPECIALISTS_DONE}"


def start_checkpoint(round_: int) -> str:
    """The weights a round's specialists and finetune clone: the generalist's plateau for
    round 1, the previous round's finetuned weights after it."""
    return PLATEAU_CHECKPOINT if round_ == 1 else f"{round_prefix(round_)}start.pt"


@dataclass(frozen=True, order=True)
class Task:
    """One process (a Job on Kubernetes): a trainer role, an index for specialists and the
    GSL round for specialists and finetunes; or the report, which summarises the finished
    experiment."""

    role: Role
    index: int = 0
    round: int = 1

    @property
    def name(self) -> str:
        """Deterministic, DNS-safe name: generalist, specialist-3, finetune, baseline; in a
        later round r, r2-specialist-3 and r2-finetune."""
        name = f"specialist-{self.index}" if self.role == "specialist" else self.role
        return name if self.round == 1 else f"r{self.round}-{name}"

    @property
    def prefix(self) -> str:
        """The task's directory in the store."""
        name = f"specialists/{self.index}" if self.role == "specialist" else self.role
        return f"{round_prefix(self.round)}{name}"

    @property
    def progress(self) -> str:
        return f"{self.prefix}/progress"

    @property
    def log(self) -> str:
        return f"{self.prefix}/log.txt"

    @property
    def result(self) -> str:
        """Written when the task completes; the report task's is the report itself."""
        return REPORT_JSON if self.role == "report" else f"{self.prefix}/result.json"

    @property
    def trains(self) -> bool:
        """Whether the task is a trainer (`gsl train`, which serves metrics)."""
        return self.role in TRAINER_ROLES

    @property
    def stop(self) -> str:
        return f"{self.prefix}/STOP"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}/checkpoints"

    @property
    def demos(self) -> str:
        """Where a specialist writes its demonstrations."""
        return f"{round_prefix(self.round)}demos/{self.index}"

    def checkpoint(self, step: int) -> str:
        """The key of the checkpoint taken at env step `step`."""
        return f"{self.checkpoints}/step-{step:012d}.pt"


def checkpoint_step(key: str) -> int:
    """The env step in a checkpoint key (the inverse of `Task.checkpoint`)."""
    return int(key.rsplit("/step-", 1)[1].removesuffix(".pt"))


def task_command(run_uri: str, task: Task) -> list[str]:
    """The command line that runs `task`, locally or in a Kubernetes Job."""
    if not task.trains:
        return ["gsl", "report", run_uri]
    command = ["gsl", "train", "--run", run_uri, "--role", task.role, "--index", str(task.index)]
    return command if task.round == 1 else [*command, "--round", str(task.round)]


GENERALIST = Task("generalist")
FINETUNE = Task("finetune")
BASELINE = Task("baseline")
REPORT = Task("report")
