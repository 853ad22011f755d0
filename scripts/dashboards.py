"""Generate the Grafana dashboards in charts/gsl/dashboards/ (run by `make chart`).

    python scripts/dashboards.py [--check]

Two dashboards, one panel per question a user asks: the experiment dashboard (stage and
round; progress and ETA by stage; env steps, evaluation success and return, throughput and
checkpoint age per role; CPU-hours and GPU-hours per phase) and the operator dashboard
(reconciles, errors, API requests, Jobs, stage durations).
`--check` fails if the checked-in JSON differs from what this script generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "charts/gsl/dashboards"
EXPERIMENT = 'namespace=~"$namespace",experiment=~"$experiment"'
RECONCILES = "gsl_operator_reconciles_total"


def panel(title: str, exprs: dict[str, str], unit: str, kind: str = "timeseries") -> dict:
    """A panel of `kind` plotting each PromQL expression with its legend."""
    return {
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(exprs.items())
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    """A dashboard with panels laid out two per row."""
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    datasource = {"name": "datasource", "type": "datasource", "query": "prometheus"}
    return {
        "uid": uid,
        "title": title,
        "tags": ["gsl"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [datasource, *variables]},
        "panels": panels,
    }


def of_experiment(metric: str) -> str:
    """`metric` restricted to the selected namespaces and experiments."""
    return f"{metric}{{{EXPERIMENT}}}"


def variable(name: str, query: str) -> dict:
    """A multi-value dashboard variable filled by a Prometheus label query."""
    return {
        "name": name,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": query,
        "multi": True,
        "includeAll": True,
    }


def experiment_dashboard() -> dict:
    variables = [
        variable("namespace", "label_values(gsl_env_steps_total, namespace)"),
        variable(
            "experiment",
            'label_values(gsl_env_steps_total{namespace=~"$namespace"}, experiment)',
        ),
    ]
    task = "{{role}} {{index}}"
    stage = of_experiment("gsl_operator_experiment_stage")
    steps = of_experiment("gsl_env_steps_total")
    return dashboard(
        "gsl-experiment",
        "GSL experiment",
        [
            panel(
                "Stage",
                {
                    "{{namespace}}/{{experiment}} {{stage}}": (
                        f"max by (namespace, experiment, stage) ({stage}) == 1"
                    )
                },
                "none",
                "state-timeline",
            ),
            panel(
                "GSL round",
                {
                    "{{namespace}}/{{experiment}}": (
                        "max by (namespace, experiment) "
                        f"({of_experiment('gsl_operator_experiment_round')})"
                    )
                },
                "none",
                "stat",
            ),
            panel(
                "Progress by stage (env steps trained over planned)",
                {
                    "{{namespace}}/{{experiment}} {{stage}}": (
                        "max by (namespace, experiment, stage) "
                        f"({of_experiment('gsl_operator_experiment_progress_ratio')})"
                    )
                },
                "percentunit",
                "bargauge",
            ),
            panel(
                "Stage ETA (at the recent rate)",
                {
                    "{{namespace}}/{{experiment}} {{stage}}": (
                        "max by (namespace, experiment, stage) "
                        f"({of_experiment('gsl_operator_experiment_eta_seconds')})"
                    )
                },
                "s",
            ),
            panel(
                "Env steps by role",
                {"{{role}}": f"sum by (role) (max by (role, index) ({steps}))"},
                "short",
            ),
            panel(
                "Evaluation success",
                {task: f"max by (role, index) ({of_experiment('gsl_eval_success_ratio')})"},
                "percentunit",
            ),
            panel(
                "Evaluation return",
                {task: f"max by (role, index) ({of_experiment('gsl_eval_return')})"},
                "none",
            ),
            panel(
                "Env steps per second",
                {task: f"sum by (role, index) (rate({steps}[$__rate_interval]))"},
                "short",
            ),
            panel(
                "Checkpoint age",
                {task: f"max by (role, index) ({of_experiment('gsl_checkpoint_age_seconds')})"},
                "s",
            ),
            panel(
                "Cost by phase (finished tasks; gsl = generalist + specialists + finetune)",
                {
                    f"{{{{phase}}}} {kind}-hours": (
                        f"sum by (phase) ({of_experiment(metric)}) / 3600"
                    )
                    for kind, metric in (
                        ("CPU", "gsl_operator_experiment_cpu_seconds"),
                        ("GPU", "gsl_operator_experiment_gpu_seconds"),
                    )
                },
                "h",
                "barchart",
            ),
        ],
        variables,
    )


def operator_dashboard() -> dict:
    return dashboard(
        "gsl-operator",
        "GSL operator",
        [
            panel(
                "Reconciles per second",
                {"{{result}}": f"sum by (result) (rate({RECONCILES}[$__rate_interval]))"},
                "ops",
            ),
            panel(
                "Reconcile errors",
                {"errors": f'sum(increase({RECONCILES}{{result="error"}}[$__rate_interval]))'},
                "short",
            ),
            panel(
                "Jobs by role and state",
                {"{{role}} {{state}}": "sum by (role, state) (gsl_operator_jobs)"},
                "short",
            ),
            panel(
                "Kubernetes API requests per second",
                {"requests": "sum(rate(gsl_operator_api_requests_total[$__rate_interval]))"},
                "reqps",
            ),
            panel(
                "Mean time in stage",
                {
                    "{{stage}}": "sum by (stage) (gsl_operator_stage_duration_seconds_sum)"
                    " / sum by (stage) (gsl_operator_stage_duration_seconds_count)"
                },
                "s",
                "barchart",
            ),
            panel(
                "Experiments by stage",
                {"{{stage}}": "sum by (stage) (gsl_operator_experiment_stage)"},
                "short",
            ),
        ],
        [],
    )


DASHBOARDS = {"experiment.json": experiment_dashboard, "operator.json": operator_dashboard}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    stale = []
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2) + "\n"
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python scripts/dashboards.py): {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
