"""The experiment's summary: `report.json` and `report.png`, built from the store alone:
the plan, the tasks' results (env steps, demo episodes, cost) and progress records. `gsl report`
writes it, as the experiment's last task."""

from __future__ import annotations

import io
import textwrap
from typing import Any

from gsl_k8s import layout
from gsl_k8s.core.retention import best_specialist_success, retention_summary
from gsl_k8s.layout import BASELINE, FINETUNE, GENERALIST, Task
from gsl_k8s.orchestration.cost import PhaseCostReader, cost_summary
from gsl_k8s.records.demos import DemoCount, describe_shortfall, read_generalist_demos
from gsl_k8s.records.plan import gsl_tasks, planned_rounds, read_plan, round_specialists
from gsl_k8s.records.progress import read_progress
from gsl_k8s.records.result import read_result
from gsl_k8s.spec import ExperimentSpec, parse_spec
from gsl_k8s.store import ArtifactStore, StoreError, read_json, write_json

TITLE_WIDTH = 60  # characters per line of the per-variation plot's title


def _curve(store: ArtifactStore, task: Task, offset: int = 0) -> list[tuple[int, float]]:
    records = read_progress(store, task.progress)
    return [
        (offset + r["step"], r["eval/success_rate"]) for r in records if "eval/success_rate" in r
    ]


def env_steps_used(store: ArtifactStore, task: Task) -> int:
    """The env steps `task` consumed (training and demo collection); for a task that failed
    before writing its result, the last step it recorded."""
    if store.exists(task.result):
        return read_result(store, task).env_steps_used
    records = read_progress(store, task.progress)
    return records[-1]["step"] if records else 0


def specialist_success(store: ArtifactStore, specialists: list[Task]) -> dict[str, float]:
    """Per variation, the best final success of the finished `specialists` that trained on it."""
    evaluations = [
        read_result(store, t).final_eval["eval/per_variation"]
        for t in specialists
        if store.exists(t.result)
    ]
    return best_specialist_success(evaluations)


class DemoCounts:
    """The demo collections recorded so far, by source: each finished specialist's, and the
    generalist's once the finetune recorded them. A recorded collection never changes, so
    each is read once."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._counts: dict[str, DemoCount] = {}

    def read(self, specialists: list[Task]) -> dict[str, DemoCount]:
        """The counts of `specialists` and the generalist, as far as they are recorded."""
        for task in specialists:
            if task.name not in self._counts and self.store.exists(task.result):
                result = read_result(self.store, task)
                self._counts[task.name] = result.demos.get(task.demos, DemoCount())
        if "generalist" not in self._counts:
            recorded = read_generalist_demos(self.store)
            if recorded is not None:
                self._counts["generalist"] = recorded
        return dict(self._counts)


def evaluation_actions(spec: ExperimentSpec) -> dict[str, str]:
    """Which actions each role's evaluations took, `sample` or `greedy` (the baseline is
    evaluated as the generalist is)."""
    return {
        "generalist": spec.generalist.evaluation.actions,
        "specialists": spec.specialists.evaluation.actions,
        "finetune": spec.finetune.evaluation.actions,
        "baseline": spec.generalist.evaluation.actions,
    }


def build_report(store: ArtifactStore) -> dict[str, Any]:
    """The summary of a finished (or finetuned) experiment, as a JSON-ready dict."""
    rounds = planned_rounds(store)
    last_finetune = Task("finetune", round=rounds[-1]) if rounds else FINETUNE
    if not store.exists(last_finetune.result):
        raise StoreError(f"{store.uri}: the experiment has not finished its finetune stage")
    plan = read_plan(store)
    specialists = round_specialists(store, 1)
    generalist = read_result(store, GENERALIST)
    results = [read_result(store, t) if store.exists(t.result) else None for t in specialists]
    every_specialist = [t for r in rounds for t in round_specialists(store, r)]
    demos = DemoCounts(store).read(every_specialist)
    total = sum(env_steps_used(store, t) for t in gsl_tasks(store))
    final = read_result(store, last_finetune).final_eval
    spec = parse_spec(read_json(store, layout.SPEC)).spec
    report: dict[str, Any] = {
        "generalist": {
            "plateau_step": plan.plateau_step,
            "pinned_step": plan.pinned_step,
            "env_steps": generalist.env_steps,
            "success_rate": plan.success_rate_at_pin,
            "per_variation": {str(v): score for v, score in plan.scores.items()},
        },
        "specialists": {
            "count": len(specialists),
            "weak_variations": plan.weak_variations,
            "subsets": plan.subsets,
            "env_steps": [env_steps_used(store, t) for t in specialists],
            "success_rates": [r and r.final_eval["eval/success_rate"] for r in results],
            "failed": [t.index for t, r in zip(specialists, results, strict=True) if r is None],
        },
        "demos": {
            "episodes": sum(c.kept for c in demos.values()),
            "by_source": {source: c.to_json() for source, c in demos.items()},
            "shortfall": describe_shortfall(demos),
        },
        "finetune": {"env_steps": env_steps_used(store, FINETUNE)},
        "rounds": [_round_summary(store, r) for r in rounds],
        "final": {
            "success_rate": final["eval/success_rate"],
            "return": final["eval/return"],
            "env_steps_total": total,
            "per_variation": final["eval/per_variation"],
        },
        "retention": retention_summary(
            specialist_success(store, every_specialist), final["eval/per_variation"]
        ),
        "cost": cost_summary(PhaseCostReader(store).read()),
        "evaluation_actions": evaluation_actions(spec),
    }
    if store.exists(BASELINE.result):
        baseline = read_result(store, BASELINE)
        report["baseline"] = {
            "mode": spec.baseline.mode,
            "success_rate": baseline.final_eval["eval/success_rate"],
            "return": baseline.final_eval["eval/return"],
            "env_steps": baseline.env_steps,
            "per_variation": baseline.final_eval["eval/per_variation"],
        }
    return report


def _round_summary(store: ArtifactStore, round_: int) -> dict[str, Any]:
    """One GSL round: its weak variations, and its specialists' and finetune's outcome."""
    plan = read_plan(store, round_)
    specialists = round_specialists(store, round_)
    finetune = read_result(store, Task("finetune", round=round_))
    results = [read_result(store, t) if store.exists(t.result) else None for t in specialists]
    return {
        "round": round_,
        "success_rate_at_start": plan.success_rate_at_pin,
        "weak_variations": plan.weak_variations,
        "subsets": plan.subsets,
        "specialist_env_steps": [env_steps_used(store, t) for t in specialists],
        "specialist_success_rates": [r and r.final_eval["eval/success_rate"] for r in results],
        "finetune_env_steps": finetune.env_steps_used,
        "finetune_success_rate": finetune.final_eval["eval/success_rate"],
    }


def plot_report(store: ArtifactStore, report: dict[str, Any]) -> bytes:
    """Learning curves on GSL's env-step axis, and per-variation success before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    offset = report["generalist"]["env_steps"]
    _plot(curves, _curve(store, GENERALIST), "generalist (phase I)", "tab:blue")
    for summary in report["rounds"]:  # each round's tasks, where GSL's budget spent them
        round_ = summary["round"]
        for i, specialist in enumerate(round_specialists(store, round_)):
            label = "specialists (own subset)" if i == 0 and round_ == 1 else None
            _plot(curves, _curve(store, specialist, offset), label, "tab:orange", 0.6)
        offset += sum(summary["specialist_env_steps"])
        label = "GSL finetune (phase II)" if round_ == 1 else f"round {round_} finetune"
        _plot(curves, _curve(store, Task("finetune", round=round_), offset), label, "tab:green")
        offset += summary["finetune_env_steps"]
    if "baseline" in report:
        _plot(curves, _curve(store, BASELINE), "PPO baseline (same env steps)", "tab:red")
    curves.axvline(report["generalist"]["pinned_step"], color="grey", ls=":", label="plateau")
    curves.set(xlabel="env steps (GSL's cumulative budget)", ylabel="evaluation success rate")
    curves.set_ylim(-0.02, 1.02)
    curves.legend(loc="upper left", fontsize="small")
    curves.set_title("Learning curves")

    _plot_per_variation(bars, report)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _plot_per_variation(ax, report: dict[str, Any]) -> None:
    """Bars per variation: the generalist at its plateau, the specialists on their own
    subsets, GSL's final policy and the baseline; the title gives the retention."""
    variations = sorted(report["final"]["per_variation"], key=int)
    trained = {v: r["specialist"] for v, r in report["retention"]["per_variation"].items()}
    series = [
        ("generalist at plateau", report["generalist"]["per_variation"], "tab:blue"),
        ("specialists (own subset)", trained, "tab:orange"),
        ("GSL final", report["final"]["per_variation"], "tab:green"),
    ]
    if "baseline" in report:
        series.append(("PPO baseline", report["baseline"]["per_variation"], "tab:red"))
    width = 0.8 / len(series)
    for j, (label, values, color) in enumerate(series):
        shown = [(i, v) for i, v in enumerate(variations) if v in values]
        xs = [i + (j - (len(series) - 1) / 2) * width for i, _ in shown]
        ax.bar(xs, [values[v] for _, v in shown], width, label=label, color=color)
    ax.set_xticks(range(len(variations)), variations)
    ax.set(xlabel="variation", ylabel="success rate", ylim=(0, 1.05))
    ax.legend(loc="upper left", fontsize="small")
    retention = textwrap.fill(retention_line(report["retention"]), TITLE_WIDTH)
    ax.set_title(f"Per-variation success: before and after\n{retention}", fontsize="medium")


def retention_line(retention: dict[str, Any]) -> str:
    """The report's `retention` section in one line: what the final policy keeps of the
    variations specialists mastered."""
    r = retention
    if r["retained"] is None:
        return f"retention: no specialist reached {r['mastered_success']:.2f} on a variation"
    count = len(r["mastered"])
    return (
        f"retention {r['retained']:.2f} on the {count} variation{'s' * (count != 1)} "
        f"specialists mastered (>= {r['mastered_success']:.2f}): "
        f"specialists {r['specialist_success']:.2f}, final {r['final_success']:.2f}"
    )


def _plot(ax, points, label, color, alpha=1.0) -> None:
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, label=label, color=color, alpha=alpha)


def write_report(store: ArtifactStore) -> dict[str, Any]:
    """Build and store `report.png` and `report.json` (JSON last: it marks completion)."""
    report = build_report(store)
    store.write_bytes(layout.REPORT_PNG, plot_report(store, report))
    write_json(store, layout.REPORT_JSON, report)
    return report
