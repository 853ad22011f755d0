"""The `gsl` command: run experiments, train one task, regenerate reports, validate specs,
submit experiments to Kubernetes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gsl_k8s import layout
from gsl_k8s.errors import EXIT_SIGTERM, GSLError
from gsl_k8s.layout import TRAINER_ROLES, Task
from gsl_k8s.spec import TRAINER_METRICS_PORT, GSLExperiment, StorageSpec, load_spec
from gsl_k8s.store import ArtifactStore, join_uri, open_store, read_json

if TYPE_CHECKING:
    from rich.table import Table


class UsageError(GSLError):
    """A mistake in the command line: printed as one line, exit code 2."""

    usage = True


def experiment_store(experiment: GSLExperiment, out: str | None, storage: str | None):
    """The store at the experiment's root: --out DIR, else <storage uri>/<name>."""
    if out is not None:
        return open_store(out)
    return open_store(join_uri(storage or experiment.spec.storage.uri, experiment.name))


def use_storage_settings(storage: StorageSpec) -> None:
    """Make the spec's S3 settings this process's defaults, inherited by the tasks it starts
    (environment variables already set stay unless the spec overrides them)."""
    from gsl_k8s.store.s3 import S3Options

    os.environ.update(S3Options.from_env(**storage.s3_settings()).to_env())


def check_environment(experiment: GSLExperiment) -> None:
    """Build the env family once, so a bad env id or kwarg fails before anything starts."""
    from gsl_k8s.envs import make_family

    try:
        make_family(experiment.spec.env)
    except ValueError as err:
        raise UsageError(str(err)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from gsl_k8s.backends.local import run_local, stop_on_sigterm
    from gsl_k8s.orchestration.controller import Stage
    from gsl_k8s.orchestration.display import ProgressTable

    experiment = load_spec(args.spec)
    check_environment(experiment)
    use_storage_settings(experiment.spec.storage)
    store = experiment_store(experiment, args.out, args.storage)
    workdir = store.local_dir("")
    console = Console(stderr=True)
    console.print(f"Running GSL experiment [bold]{experiment.name}[/] in {store.uri}")
    if workdir is None:  # a remote store: logs and targets stay on this machine
        workdir = Path(tempfile.mkdtemp(prefix=f"gsl-{experiment.name}-"))
        console.print(f"Logs and Prometheus targets: {workdir}")
    table = ProgressTable(experiment.name, store, experiment.spec)
    stop_on_sigterm()
    try:
        with Live(console=console, refresh_per_second=2) as live:
            status = run_local(
                experiment,
                store,
                workdir,
                lambda status, phases: live.update(table.render(status, phases)),
                lambda resumed: console.print(resumed[0].upper() + resumed[1:], markup=False),
            )
    except KeyboardInterrupt:
        console.print("Interrupted: tasks checkpointed. Run the same command again to resume.")
        return 130
    if status.stage is Stage.FAILED:
        console.print(f"[red]Experiment failed:[/] {status.message}")
        return 1
    print_summary(store, console)
    return 0


def print_summary(store: ArtifactStore, console) -> None:
    from gsl_k8s.orchestration.report import retention_line

    report = read_json(store, layout.REPORT_JSON)
    final, generalist = report["final"], report["generalist"]
    pinned = (
        f"plateau at {generalist['plateau_step']:,}, pinned {generalist['pinned_step']:,}"
        if generalist["plateau_step"] is not None
        else f"no plateau, generalist to its cap {generalist['pinned_step']:,}"
    )
    console.print(
        f"GSL: success {final['success_rate']:.2f} after {final['env_steps_total']:,} env steps "
        f"({pinned}, "
        f"{report['specialists']['count']} specialists, {report['demos']['episodes']} demos)"
    )
    if shortfall := report["demos"].get("shortfall"):
        console.print(f"[yellow]Warning:[/] {shortfall}")
    if "retention" in report:  # reports written before retention was recorded have none
        console.print(f"GSL {retention_line(report['retention'])}")
    if "baseline" in report:
        b = report["baseline"]
        console.print(
            f"PPO baseline: success {b['success_rate']:.2f} after {b['env_steps']:,} env steps"
        )
    if "cost" in report:  # reports written before costs were recorded have none
        console.print(cost_table(report["cost"]))
    local = store.local_dir(layout.REPORT_JSON)
    where = local if local is not None else f"{store.uri}/{layout.REPORT_JSON}"
    plot = str(where).removesuffix(".json") + ".png"  # Path() would fold s3:// to s3:/
    console.print(f"Report: {where} (plot: {plot})")


def cost_table(cost: dict) -> Table:
    """The report's cost section as a table: each phase's wall seconds (summed over its
    tasks), CPU-hours and GPU-hours, and GSL's over the baseline's."""
    from rich.table import Column, Table

    from gsl_k8s.orchestration.cost import PHASES

    numbers = [Column(name, justify="right") for name in ("wall s", "CPU-h", "GPU-h")]
    table = Table("phase", *numbers, title="Cost (finished tasks)")
    for phase in PHASES:
        c = cost[phase]
        if phase == "baseline" and not c["wall_seconds"]:
            continue  # no baseline
        table.add_row(
            phase, f"{c['wall_seconds']:,.0f}", f"{c['cpu_hours']:.3f}", f"{c['gpu_hours']:.3f}"
        )
    ratio = cost["gsl_over_baseline"]
    if ratio["cpu_hours"] is not None:
        gpu = "" if ratio["gpu_hours"] is None else f"{ratio['gpu_hours']:.2f}x"
        table.add_row("GSL / baseline", "", f"{ratio['cpu_hours']:.2f}x", gpu)
    return table


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(EXIT_SIGTERM)


def cmd_train(args: argparse.Namespace) -> int:
    # Until the task loop installs its checkpointing handler, SIGTERM ends the start-up (as a
    # container's PID 1 the trainer would otherwise ignore it until the grace period ran out).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.role != "specialist" and args.index != 0:
        raise UsageError("--index applies to --role specialist only")
    if args.round < 1:
        raise UsageError("--round counts from 1")
    if args.role not in ("specialist", "finetune") and args.round != 1:
        raise UsageError("--round applies to --role specialist and finetune only")
    task = Task(args.role, args.index, args.round)
    print(f"{task.name}: starting ({args.run})", file=sys.stderr, flush=True)
    from gsl_k8s.trainer.task import Interrupted, TaskRunner

    store = open_store(args.run)
    if not store.exists(layout.SPEC):
        raise UsageError(f"{store.uri}: no {layout.SPEC}; start experiments with `gsl run`")
    runner = TaskRunner(store, task, args.namespace)
    if args.metrics_port_file:  # a port no other process can take before we bind it
        port = runner.metrics.serve(args.metrics_address, 0)
        partial = Path(f"{args.metrics_port_file}.partial")
        partial.write_text(str(port))
        partial.replace(args.metrics_port_file)
    elif args.metrics_port:
        try:
            runner.metrics.serve(args.metrics_address, args.metrics_port)
        except OSError as err:
            raise UsageError(
                f"cannot serve metrics on {args.metrics_address}:{args.metrics_port} "
                f"({err.strerror}); choose another --metrics-port, or 0 for none"
            ) from None
    try:
        result = runner.run()
    except Interrupted as err:
        print(err, file=sys.stderr)
        return EXIT_SIGTERM
    print(json.dumps({k: v for k, v in result.to_json().items() if k != "final_eval"}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gsl_k8s.orchestration.report import write_report

    store = open_store(args.run)
    if not store.exists(layout.SPEC):
        raise UsageError(f"{store.uri}: not a GSL run directory (no {layout.SPEC})")
    write_report(store)
    print_summary(store, Console())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    experiment = load_spec(args.spec)
    check_environment(experiment)
    print(f"{args.spec}: valid GSLExperiment {experiment.name!r}")
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from gsl_k8s.backends.kubernetes.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    try:
        import kopf

        import gsl_k8s.backends.kubernetes.operator  # noqa: F401  (registers the handlers)
    except ImportError as err:
        raise UsageError(
            f"gsl operator needs the kubernetes extra ({err.name} is missing): "
            "pip install 'gsl-k8s[kubernetes]'"
        ) from None

    if not args.all_namespaces and not args.namespace:
        raise UsageError("give --namespace NS (repeatable) or --all-namespaces")
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_address)
    kopf.configure(verbose=args.verbose)
    for library in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(library).setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or [],
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(clusterwide=args.all_namespaces),
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    import kubernetes
    import yaml
    from kubernetes.client import ApiException

    from gsl_k8s.backends.kubernetes import submit
    from gsl_k8s.backends.kubernetes.backend import api_error

    experiment = load_spec(args.spec)  # refuse what the operator would refuse
    manifest = yaml.safe_load(Path(args.spec).read_text())
    try:
        api = submit.experiments_api()
    except kubernetes.config.ConfigException as err:
        raise UsageError(f"no Kubernetes cluster to submit to: {err}") from None
    try:
        if args.replace:
            submit.delete_and_wait(api, args.namespace, experiment.name, args.timeout)
        submit.create(api, args.namespace, manifest)
        print(f"{args.namespace}/{experiment.name}: created")
        if not args.wait:
            return 0
        status = submit.wait_for_outcome(api, args.namespace, experiment.name, args.timeout)
    except TimeoutError as err:
        raise GSLError(str(err)) from None
    except ApiException as err:
        raise api_error(err) from None
    print(f"{args.namespace}/{experiment.name}: {status['stage']}: {status.get('message', '')}")
    return 0 if status["stage"] == "Succeeded" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a whole GSL experiment on this machine")
    run.add_argument("spec", help="experiment YAML (a GSLExperiment)")
    run.add_argument("--out", help="run directory (default: <spec.storage.uri>/<name>)")
    run.add_argument("--storage", help="base storage URI, overrides spec.storage.uri")
    run.set_defaults(handler=cmd_run)

    train = commands.add_parser("train", help="run one task of an experiment (used by backends)")
    train.add_argument("--run", required=True, help="the experiment's store URI")
    train.add_argument("--role", required=True, choices=TRAINER_ROLES)
    train.add_argument("--index", type=int, default=0, help="specialist index")
    train.add_argument(
        "--round", type=int, default=1, help="GSL round of a specialist or finetune (from 1)"
    )
    train.add_argument(
        "--namespace",
        default="",
        help="the experiment's Kubernetes namespace, a label on every metric (Jobs set it)",
    )
    train.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("GSL_METRICS_PORT", str(TRAINER_METRICS_PORT))),
        help=f"serve Prometheus /metrics on this port; 0 turns it off (default: "
        f"{TRAINER_METRICS_PORT})",
    )
    train.add_argument(
        "--metrics-port-file",
        help="instead: serve on a free port and write its number to this file (gsl run)",
    )
    train.add_argument("--metrics-address", default="0.0.0.0", help="address to serve metrics on")
    train.set_defaults(handler=cmd_train)

    report = commands.add_parser("report", help="regenerate report.json and report.png")
    report.add_argument("run", help="run directory or store URI")
    report.set_defaults(handler=cmd_report)

    crd = commands.add_parser("crd", help="print the GSLExperiment CustomResourceDefinition")
    crd.set_defaults(handler=cmd_crd)

    operator = commands.add_parser("operator", help="run the Kubernetes operator")
    operator.add_argument("--namespace", action="append", help="watch this namespace")
    operator.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument(
        "--metrics-port", type=int, default=8080, help="Prometheus /metrics; 0 for none"
    )
    operator.add_argument("--metrics-address", default="0.0.0.0")
    operator.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz"
    )
    operator.add_argument("--verbose", action="store_true", help="log every handler run")
    operator.set_defaults(handler=cmd_operator)

    submit = commands.add_parser("submit", help="create a GSLExperiment on Kubernetes")
    submit.add_argument("spec", help="experiment YAML (a GSLExperiment)")
    submit.add_argument("--namespace", required=True)
    submit.add_argument(
        "--replace", action="store_true", help="delete an experiment of the same name first"
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for it to end; exit 0 if it Succeeded"
    )
    submit.add_argument("--timeout", type=float, default=1800, help="seconds (default: 1800)")
    submit.set_defaults(handler=cmd_submit)

    validate = commands.add_parser("validate", help="check an experiment spec")
    validate.add_argument("spec")
    validate.set_defaults(handler=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gsl` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except GSLError as err:
        print(f"gsl: error: {err}", file=sys.stderr)
        return err.exit_code
