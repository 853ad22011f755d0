"""`gsl train`: one trainer process for one task of a GSL experiment.

The same entry point runs every role, locally as a subprocess or in a Kubernetes Job:

- generalist: PPO on all variations, until its budget runs out or the controller asks it
  to stop (it found the plateau);
- specialist i: clones its round's start checkpoint, the pinned plateau in round 1 (its
  policy tempered by `specialists.policyTemperature`), trains on its subset of variations,
  then records demonstrations on that subset;
- finetune: clones its round's start checkpoint; in round 1 records the generalist's own
  demonstrations on the variations it already handles; then resumes PPO on all variations
  plus the demo term on every demonstration so far;
- baseline: PPO on all variations from scratch, for exactly the env steps GSL used; a
  concurrent one trains while GSL does, never past the env steps GSL has used so far.

`TaskRunner` is the one training loop of every role and backend: it evaluates the task per
variation every `evaluation.everySteps` env steps and checkpoints at the same time, detects
a specialist's plateau, honours the controller's stop file, records demonstrations and writes
the result. SIGTERM checkpoints and exits with 143; rerunning resumes. Progress goes to the
store, TensorBoard and, with `metrics_port`, Prometheus. The training itself is the
`trainer.backend`'s (`gsl_k8s.trainer.backend` describes the contract): `builtin` or
`sample-factory`, which is imported only when a spec names it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gsl_k8s import layout
from gsl_k8s.core.cost import held_resources
from gsl_k8s.core.plateau import PlateauCriterion, PlateauDetector
from gsl_k8s.envs import EnvFamily, evaluate, make_family
from gsl_k8s.layout import Task
from gsl_k8s.records.baseline import read_baseline_allowance, read_baseline_budget
from gsl_k8s.records.counters import LoopCounters, checkpoint_counters, with_counters
from gsl_k8s.records.demos import (
    DemoCount,
    demo_batches,
    demo_shards,
    read_generalist_demos,
    write_generalist_demos,
    write_shards,
)
from gsl_k8s.records.features import VariationFeatures, write_features
from gsl_k8s.records.plan import read_pinned, read_plan, round_specialists
from gsl_k8s.records.result import Reason, TaskResult, read_result, write_result
from gsl_k8s.seeds import SeedStreams
from gsl_k8s.spec import EvaluationSpec, ExperimentSpec, GSLExperiment, PlateauSpec, parse_spec
from gsl_k8s.store import ArtifactStore, read_json
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.backend import TaskContext, TrainerBackend, TrainingFailed
from gsl_k8s.trainer.builtin import BuiltinBackend
from gsl_k8s.trainer.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from gsl_k8s.trainer.demos import (
    behaviour_cloning,
    max_demo_env_steps,
    record_demos,
    record_demos_per_variation,
)
from gsl_k8s.trainer.features import variation_features
from gsl_k8s.trainer.metrics import TrainerMetrics
from gsl_k8s.trainer.progress import ProgressLog

ALLOWANCE_POLL_SECONDS = 2.0  # how often a concurrent baseline that caught up with GSL looks again
KEEP_CHECKPOINTS = 5


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was saved."""


@dataclass(frozen=True)
class TaskSetup:
    """What a task trains on, for how long, and where it starts."""

    variations: list[int]
    env_steps: int
    evaluation: EvaluationSpec
    plateau: PlateauSpec | None
    clone_plateau: bool


def load_experiment(store: ArtifactStore) -> GSLExperiment:
    """The experiment, as the controller stored it."""
    return parse_spec(read_json(store, layout.SPEC))


def task_setup(
    spec: ExperimentSpec, store: ArtifactStore, task: Task, max_episode_steps: int | None = None
) -> TaskSetup:
    """Variations, budget and initialisation of `task`, from the spec and the plan (and for
    a concurrent baseline, the env family's episode cap)."""
    everything = spec.env.variation_ids
    if task.role == "generalist":
        return TaskSetup(
            everything, spec.generalist.env_steps, spec.generalist.evaluation, None, False
        )
    if task.role == "specialist":
        s = spec.specialists
        subset = read_plan(store, task.round).subsets[task.index]
        return TaskSetup(subset, s.budget(len(subset)), s.evaluation, s.plateau, True)
    if task.role == "finetune":
        f = spec.finetune
        return TaskSetup(everything, f.env_steps, f.evaluation, f.plateau, True)
    budget = read_baseline_budget(store)
    if budget is None:  # concurrent, while GSL runs: at most what GSL may use, until known
        budget = max_gsl_env_steps(spec, max_episode_steps)
    return TaskSetup(everything, budget, spec.generalist.evaluation, None, False)


def max_gsl_env_steps(spec: ExperimentSpec, max_episode_steps: int | None) -> int:
    """The most env steps GSL may use: the generalist's cap, every round's specialists and
    finetune, and (where episodes have a length cap) the demonstrations they record. A
    concurrent baseline anneals its learning rate over it until GSL's total is known."""
    s, d = spec.specialists, spec.demos
    selected = s.select.count or len(spec.env.variation_ids)  # ties aside
    training = spec.generalist.env_steps + spec.rounds * (
        s.total_budget(selected) + spec.finetune.env_steps
    )
    if max_episode_steps is None:  # demo steps unbounded: the step size stops at 0 instead
        return training
    attempts = d.max_attempts_per_episode
    per_specialist = max_demo_env_steps(d.episodes_per_specialist, attempts, max_episode_steps)
    generalist = max_demo_env_steps(d.generalist_episodes, attempts, max_episode_steps)
    return training + spec.rounds * s.count * per_specialist + generalist


class StepBudget:
    """How far a task may train now, and whether that is final: the setup's budget, except
    for a concurrent baseline before GSL's total is known, which may reach GSL's env steps
    so far (re-read once it has caught up with them)."""

    def __init__(
        self, store: ArtifactStore, task: Task, setup: TaskSetup, batch: int, granularity: int
    ):
        self.store = store
        self.task = task
        self.setup = setup
        self.batch = batch  # env steps of one batch of rollouts
        self.granularity = granularity  # the trainer backend's, once the budget is final
        self.allowed, self.final = self._read()

    def _read(self) -> tuple[int, bool]:
        if self.task.role != "baseline":
            return self.setup.env_steps, True
        budget = read_baseline_budget(self.store)
        if budget is not None:
            return budget, True
        return read_baseline_allowance(self.store), False

    def room(self, step: int) -> int:
        """The env steps the task may train from `step` on.

        The budget is never exceeded: the built-in PPO shortens its last rollout, Sample
        Factory trains whole batches (its granularity), so the last one may be cut. Until
        its budget is final, a concurrent baseline trains whole batches."""
        if not self.final and self.allowed - step < self.batch:  # caught up with GSL
            self.allowed, self.final = self._read()
        unit = self.granularity if self.final else self.batch
        return (self.allowed - step) // unit * unit


def pick_device(name: str) -> torch.device:
    """`auto` means CUDA where available."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def backend_class(name: str) -> type[TrainerBackend]:
    """The trainer backend that `trainer.backend` names; Sample Factory is imported here,
    only when named, and its absence is a one-line error."""
    if name == "sample-factory":
        try:
            from gsl_k8s.trainer.sample_factory.backend import SampleFactoryBackend
        except ModuleNotFoundError as err:
            raise TrainingFailed(
                f"trainer.backend sample-factory needs Sample Factory ({err}): pip install "
                "'gsl-k8s[sample-factory]' && pip install --no-deps sample-factory==2.1.1, "
                "or use the -sample-factory trainer image"
            ) from None
        return SampleFactoryBackend
    return BuiltinBackend


class TaskRunner:
    """Trains one task to completion; see the module docstring."""

    def __init__(self, store: ArtifactStore, task: Task, namespace: str = ""):
        self.store = store
        self.task = task
        experiment = load_experiment(store)
        self.spec = experiment.spec
        self.backend_class = backend_class(self.spec.trainer.backend)
        self.family: EnvFamily = make_family(self.spec.env)
        self.setup = task_setup(self.spec, store, task, self.family.max_episode_steps)
        self.seeds = SeedStreams.for_task(self.spec.seed, task.role, task.index, task.round)
        self.seed = self.seeds.task  # torch's and numpy's global RNGs; the backend's streams
        self.device = pick_device(self.spec.trainer.device)
        self.metrics = TrainerMetrics(experiment.name, task, namespace)
        self.progress = ProgressLog(
            store, task.progress, f"{task.prefix}/tensorboard", self.metrics
        )
        self._sigterm = False
        self._started = time.monotonic()
        self._wall_before = 0.0  # wall seconds of the task's earlier runs, if it resumed

    def act_fn(self, agent: Agent, deterministic: bool):
        """The agent as a numpy policy for evaluation and demo collection."""

        def act(obs: np.ndarray) -> np.ndarray:
            action = agent.act(torch.as_tensor(obs, device=self.device), deterministic)
            return action.cpu().numpy()

        return act

    def evaluate(self, agent: Agent, step: int) -> dict:
        """Per-variation evaluation with `evaluation.actions`, logged as `eval/*`; returns the
        record's metrics."""
        self.metrics.phase.state("evaluating")
        actions = self.setup.evaluation.actions
        results = evaluate(
            self.act_fn(agent, deterministic=actions == "greedy"),
            self.family,
            self.setup.variations,
            self.setup.evaluation.episodes_per_variation,
            seed=self.seeds.evaluation(step),
        )
        metrics = {
            "eval/success_rate": float(np.mean([r.success_rate for r in results.values()])),
            "eval/return": float(np.mean([r.mean_return for r in results.values()])),
            "eval/per_variation": {str(v): r.success_rate for v, r in results.items()},
            "eval/per_variation_return": {str(v): r.mean_return for v, r in results.items()},
            "eval/actions": actions,
        }
        self.progress.log(step, metrics, flush=True)
        self.metrics.phase.state("training")
        return metrics

    def run(self) -> TaskResult:
        """Train, evaluate, checkpoint; write the task's result and return it."""
        if self.store.exists(self.task.result):
            return read_result(self.store, self.task)
        try:
            return self._run()
        finally:
            self.progress.close()

    def _run(self) -> TaskResult:
        torch.set_num_threads(self.spec.trainer.threads)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        backend = self.backend_class(self._context())
        cfg = self.spec.trainer
        agent = Agent(
            backend.observation_space,
            backend.action_space,
            cfg.network,
            cfg.normalize_observations,
        ).to(self.device)
        counters = self._start(agent, backend)
        step, reason, evaluation = self._train(agent, backend, counters)
        backend.close()
        return self._finish(agent, counters, step, reason, evaluation)

    def _context(self) -> TaskContext:
        """What the trainer backend needs of the task."""
        return TaskContext(
            spec=self.spec,
            store=self.store,
            task=self.task,
            variations=self.setup.variations,
            budget=self.setup.env_steps,
            seed=self.seed,
            family=self.family,
            device=self.device,
            log=self.progress.log,
            interrupted=lambda: self._sigterm,
        )

    def _start(self, agent: Agent, backend: TrainerBackend) -> LoopCounters:
        """Load the starting checkpoint into the agent and the backend (a cloned specialist
        policy tempered); a finetune first records and, with `bcSteps`, clones the demos.
        Returns the loop's counters, those of the checkpoint where the task resumes."""
        state, resumed = self._initial_state()
        counters = LoopCounters()
        if state is not None:
            agent.load_state_dict(state["model"])
            if resumed:
                counters = checkpoint_counters(state)
                self._wall_before = counters.wall_seconds
            elif self.task.role == "specialist":
                agent.temper(self.spec.specialists.policy_temperature)
        self.metrics.resumed_at(counters.env_steps)
        shards = self._demo_shards(agent, counters) if self.task.role == "finetune" else None
        if shards and not resumed and self.spec.finetune.bc_steps:
            self._clone_demos(agent, shards)
        backend.prepare(agent, counters.env_steps, shards)
        if state is not None:
            backend.load_state_dict(state, resumed)
        return counters

    def _train(
        self, agent: Agent, backend: TrainerBackend, counters: LoopCounters
    ) -> tuple[int, Reason, dict]:
        """Train until the budget runs out, the controller asks to stop or the task
        plateaus, evaluating (and checkpointing) every `evaluation.everySteps` and at the
        end; returns the last env step, why training ended and the last evaluation."""
        cfg = self.spec.trainer
        batch = cfg.num_envs * cfg.rollout_steps
        budget = StepBudget(self.store, self.task, self.setup, batch, backend.granularity)
        plateaued = self._plateau_test()
        step, reason = counters.env_steps, "budget"
        self.metrics.phase.state("training")
        while True:
            if reason == "budget" and self.store.exists(self.task.stop):
                reason = "stopped"
            room = budget.room(step)
            finishing = reason != "budget" or (budget.final and room <= 0)
            if room <= 0 and not finishing and not self._sigterm:
                self._wait_for_gsl()
                continue
            if step >= counters.next_eval or finishing:
                evaluation = self._evaluate_and_checkpoint(agent, backend, counters, step)
                if plateaued(step, evaluation) and not finishing:
                    reason, finishing = "plateau", True
            if finishing:
                return step, reason, evaluation
            if self._sigterm:
                self._checkpoint(agent, backend, counters, step)
                raise Interrupted(f"{self.task.name}: SIGTERM at env step {step}, checkpoint saved")
            # Towards the next evaluation, which falls where whole batches reach it.
            to_eval = -(-(counters.next_eval - step) // batch) * batch
            step = backend.train_until(step + min(room, to_eval))

    def _plateau_test(self) -> Callable[[int, dict], bool]:
        """Whether the evaluation at a step shows the task's plateau (never, without one)."""
        if self.setup.plateau is None:
            return lambda step, evaluation: False
        plateau = self.setup.plateau
        detector = PlateauDetector(PlateauCriterion(**plateau.model_dump(exclude={"metric"})))
        metric = f"eval/{plateau.metric}"
        return lambda step, evaluation: detector.update(step, evaluation[metric])

    def _evaluate_and_checkpoint(
        self, agent: Agent, backend: TrainerBackend, counters: LoopCounters, step: int
    ) -> dict:
        """Checkpoint (before the evaluation record names it), evaluate, and tell the backend
        each variation's success; the next evaluation is `evaluation.everySteps` later."""
        counters.next_eval = step + self.setup.evaluation.every_steps
        self._checkpoint(agent, backend, counters, step)
        evaluation = self.evaluate(agent, step)
        success = evaluation["eval/per_variation"]
        backend.evaluated({int(v): rate for v, rate in success.items()})
        return evaluation

    def _finish(
        self, agent: Agent, counters: LoopCounters, step: int, reason: Reason, evaluation: dict
    ) -> TaskResult:
        """Record a specialist's demos, or the generalist's variation features for
        `partition: features`; write and return the task's result."""
        demos = {}
        if self.task.role == "generalist" and self.spec.specialists.partition == "features":
            source, features = variation_features(
                self.family, agent, self.setup.variations, self.seeds.features
            )
            write_features(self.store, VariationFeatures(source, features))
        if self.task.role == "specialist":
            self.metrics.phase.state("recording_demos")
            d = self.spec.demos
            demos[self.task.demos] = self._record_demos(
                agent,
                self.setup.variations,
                d.episodes_per_specialist,
                d.specialist_actions,
                self.task.demos,
            )
            counters.demo_env_steps += demos[self.task.demos].env_steps
        elif self.task.role == "finetune" and self.task.round == 1:  # which recorded them
            demos[layout.GENERALIST_DEMOS] = read_generalist_demos(self.store)
        cpus, gpus = held_resources(
            os.environ, self.spec.trainer.threads, self.device.type == "cuda"
        )
        result = TaskResult(
            env_steps=step,
            demo_env_steps=counters.demo_env_steps,
            reason=reason,
            final_eval=evaluation,
            demos=demos,
            wall_seconds=round(self.wall_seconds(), 3),
            cpus=cpus,
            gpus=gpus,
        )
        write_result(self.store, self.task, result)
        self.metrics.phase.state("done")
        return result

    def wall_seconds(self) -> float:
        """Seconds this task has run, over this process and the ones it resumed from."""
        return self._wall_before + time.monotonic() - self._started

    def _wait_for_gsl(self) -> None:
        """A concurrent baseline that reached GSL's env steps so far waits for GSL to use
        more (or for its budget); what it recorded so far is published meanwhile."""
        self.progress.flush()
        self.metrics.phase.state("waiting")
        time.sleep(ALLOWANCE_POLL_SECONDS)
        self.metrics.phase.state("training")

    def _on_sigterm(self, signum, frame) -> None:
        self._sigterm = True

    def _initial_state(self) -> tuple[dict | None, bool]:
        """The checkpoint to start from and whether it is the task's own (a resume): the
        task's own checkpoint (its RNG states restored), else the plateau's for the roles
        that clone it, else none."""
        own = latest_checkpoint(self.store, self.task.checkpoints)
        if own is not None:
            return load_checkpoint(self.store, own, restore_rng=True), True
        if self.setup.clone_plateau:
            return load_checkpoint(self.store, layout.start_checkpoint(self.task.round)), False
        return None, False

    def _checkpoint(
        self, agent: Agent, backend: TrainerBackend, counters: LoopCounters, step: int
    ) -> None:
        """The agent, the backend's learner state and the loop's counters, at env step `step`."""
        counters.env_steps, counters.wall_seconds = step, self.wall_seconds()
        state = with_counters({"model": agent.state_dict(), **backend.state_dict()}, counters)
        save_checkpoint(self.store, self.task.checkpoint(step), state)
        self.metrics.checkpointed()
        prune_checkpoints(self.store, self.task.checkpoints, KEEP_CHECKPOINTS, self._pinned())

    def _pinned(self) -> str | None:
        """The generalist checkpoint the controller chose to pin, which must stay."""
        pinned = read_pinned(self.store) if self.task.role == "generalist" else None
        return None if pinned is None else self.task.checkpoint(pinned.step)

    def _record_demos(
        self, agent: Agent, variations: list[int], episodes: int, actions: str, prefix: str
    ) -> DemoCount:
        """Record demonstrations under `prefix`; returns what was asked, tried and kept."""
        d = self.spec.demos
        record = record_demos_per_variation if d.per_variation else record_demos
        kept, count = record(
            lambda greedy: self.act_fn(agent, deterministic=greedy),
            self.family,
            variations,
            episodes,
            greedy=actions == "greedy",
            seed=self.seeds.demo_recording,
            success_only=d.success_only,
            attempts_per_episode=d.max_attempts_per_episode,
            log=lambda line: print(f"{self.task.name}: {line}", file=sys.stderr, flush=True),
        )
        if kept:
            write_shards(self.store, prefix, kept)
        return count

    def _clone_demos(self, agent: Agent, shards: list[str]) -> None:
        """Behaviour cloning on every demo shard (`finetune.bcSteps`), logged at step 0."""
        f = self.spec.finetune
        batches = demo_batches(self.store, shards, f.demo_batch_size, self.seeds.behaviour_cloning)
        first, last = behaviour_cloning(
            agent,
            batches,
            f.bc_steps,
            f.bc_learning_rate,
            self.spec.trainer.max_grad_norm,
            self.device,
        )
        self.progress.log(0, {"losses/bc_first": first, "losses/bc_last": last})

    def _demo_shards(self, agent: Agent, counters: LoopCounters) -> list[str]:
        """Record the generalist's demos on the variations it handles (once, in round 1);
        returns the keys of every demo shard so far, the specialists' of every round up to
        this one included."""
        if not self.store.exists(layout.GENERALIST_DEMOS_DONE):
            self.metrics.phase.state("recording_demos")
            weak = set(read_plan(self.store).weak_variations)
            solved = [v for v in self.setup.variations if v not in weak]
            d = self.spec.demos
            count = self._record_demos(
                agent, solved, d.generalist_episodes, d.generalist_actions, layout.GENERALIST_DEMOS
            )
            counters.demo_env_steps += count.env_steps
            write_generalist_demos(self.store, count)
        prefixes = [layout.GENERALIST_DEMOS] + [
            specialist.demos
            for round_ in range(1, self.task.round + 1)
            for specialist in round_specialists(self.store, round_)
        ]
        shards = {prefix: demo_shards(self.store, [prefix]) for prefix in prefixes}
        listed = ", ".join(f"{prefix} ({len(keys)})" for prefix, keys in shards.items())
        print(f"{self.task.name}: demonstration shards: {listed}", file=sys.stderr, flush=True)
        return [key for keys in shards.values() for key in keys]
