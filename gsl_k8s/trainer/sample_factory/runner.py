"""A task trained by Sample Factory APPO (`trainer.backend: sample-factory`).

Same contract as the built-in `TaskRunner`, whose evaluation, demos, progress and result it
reuses. Training runs in segments, one per evaluation interval: each segment is one process,
`python -m gsl_k8s.trainer.sample_factory.train`, started from an SF checkpoint written from
the task's state and stopped at a cumulative env-step target. Between segments the runner
loads the policy into an `Agent`, evaluates it per variation, and checkpoints to the store
in the built-in layout (`model` and `optimizer` are the `Agent`'s and its Adam's, so plateau
checkpoints clone across backends; `sample_factory` holds SF's own counters).

Every segment has a wall-clock limit, and a learner that crashes (SF's processes would
otherwise carry on without it) fails the task within seconds: `TrainingFailed`, exit 1.
SIGTERM stops SF (it saves), checkpoints that and exits with 143.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gsl_k8s import layout
from gsl_k8s.core.plateau import PlateauCriterion, PlateauDetector
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints
from gsl_k8s.trainer.checkpoint import save_checkpoint as save_store_checkpoint
from gsl_k8s.trainer.job import KEEP_CHECKPOINTS, Interrupted, TaskRunner, TrainingFailed
from gsl_k8s.trainer.sample_factory import CRASH_FILE, DEMO_CONFIG, STATS_FILE, STOP_FILE
from gsl_k8s.trainer.sample_factory.model import agent_state, sf_model_state

EXPERIMENT = "run"
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 30
LOSS_NAMES = {
    "policy_loss": "policy_loss",
    "value_loss": "value_loss",
    "entropy": "entropy",
    "kl_divergence": "approx_kl",
    "demo_loss": "demo_loss",
    "demo_weight": "demo_weight",
}


def sf_argv(runner: SampleFactoryTaskRunner, train_dir: Path, target: int, seed: int) -> list[str]:
    """Sample Factory's command line for one segment: our PPO settings as APPO settings."""
    t = runner.spec.trainer
    sf = t.sample_factory
    return [
        "--env=gsl",
        "--algo=APPO",
        f"--experiment={EXPERIMENT}",
        f"--train_dir={train_dir}",
        f"--device={'gpu' if runner.device.type == 'cuda' else 'cpu'}",
        f"--seed={seed}",
        f"--serial_mode={sf.serial_mode}",
        f"--async_rl={not sf.serial_mode}",
        f"--num_workers={sf.workers}",
        f"--num_envs_per_worker={sf.envs_per_worker}",
        "--worker_num_splits=1",
        "--batched_sampling=True",
        "--use_rnn=False",
        "--recurrence=1",
        "--with_vtrace=False",
        f"--rollout={t.rollout_steps}",
        f"--batch_size={t.num_envs * t.rollout_steps // t.num_minibatches}",
        f"--num_batches_per_epoch={t.num_minibatches}",
        f"--num_epochs={t.update_epochs}",
        f"--learning_rate={t.learning_rate}",
        "--adam_eps=1e-5",
        f"--gamma={t.gamma}",
        f"--gae_lambda={t.gae_lambda}",
        f"--ppo_clip_ratio={t.clip_coef}",
        f"--ppo_clip_value={t.clip_coef if t.clip_value_loss else 1e9}",
        f"--exploration_loss_coeff={t.ent_coef}",
        f"--value_loss_coeff={t.vf_coef}",
        f"--max_grad_norm={t.max_grad_norm}",
        "--normalize_input=False",  # the Agent normalizes (trainer.normalizeObservations)
        "--normalize_returns=False",
        "--reward_scale=1.0",
        f"--train_for_env_steps={target}",
        "--restart_behavior=resume",
        "--save_every_sec=1000000",  # it saves when it stops; the runner checkpoints to the store
        "--save_best_after=1000000000000",  # no `best_*` checkpoints
        "--keep_checkpoints=1",
    ]


def sf_checkpoint(state: dict) -> dict:
    """An SF checkpoint of tensors and Python numbers only: SF loads it with torch.load's
    weights_only default, and numpy scalars (SF's own `best_performance`) fail that load."""
    return {
        "train_step": int(state["train_step"]),
        "env_steps": int(state["env_steps"]),
        "best_performance": -1e9,
        "model": state["model"],
        "optimizer": state["optimizer"],
        "curr_lr": float(state["curr_lr"]),
    }


class SampleFactoryTaskRunner(TaskRunner):
    """Trains one task with Sample Factory; see the module docstring."""

    def _run(self) -> dict:
        torch.set_num_threads(self.spec.trainer.threads)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.workdir = Path(tempfile.mkdtemp(prefix="gsl-sf-"))
        result = self._train()  # on failure, the work directory stays for its log
        shutil.rmtree(self.workdir, ignore_errors=True)
        return result

    def _train(self) -> dict:
        cfg = self.spec.trainer
        envs = self.family.make_vec(self.setup.variations, 1, self.seed)
        agent = Agent(
            envs.single_observation_space,
            envs.single_action_space,
            cfg.network,
            cfg.normalize_observations,
        ).to(self.device)
        envs.close()
        state, counters = self._initial_state(agent)
        self.metrics.resumed_at(counters["env_steps"])
        demos = self._demo_config(agent, counters) if self.task.role == "finetune" else None
        detector = (
            PlateauDetector(PlateauCriterion(**self.setup.plateau.model_dump(exclude={"metric"})))
            if self.setup.plateau
            else None
        )
        metric = f"eval/{self.setup.plateau.metric}" if self.setup.plateau else None
        batch = cfg.num_envs * cfg.rollout_steps
        step, next_eval = counters["env_steps"], counters["next_eval"]
        reason = "budget"
        self.metrics.phase.state("training")
        while True:
            if reason == "budget" and self.store.exists(self.task.stop):
                reason = "stopped"
            # SF trains whole batches: the budget is never exceeded, so the last one may be cut.
            room = (self.setup.env_steps - step) // batch * batch
            finishing = reason != "budget" or room <= 0
            if step >= next_eval or finishing:
                next_eval = step + self.setup.evaluation.every_steps
                counters.update(env_steps=step, next_eval=next_eval)
                self._checkpoint_state(agent, state, counters)
                evaluation = self.evaluate(agent, step)
                if detector and detector.update(step, evaluation[metric]) and not finishing:
                    reason, finishing = "plateau", True
            if finishing:
                break
            if self._sigterm:
                raise Interrupted(f"{self.task.name}: SIGTERM at env step {step}, checkpoint saved")
            to_eval = -(-(next_eval - step) // batch) * batch
            state = self._segment(state, step + min(room, to_eval), demos)
            if state["env_steps"] <= step and not self._sigterm:
                raise TrainingFailed(f"{self.task.name}: sample-factory made no progress")
            step = state["env_steps"]
            agent.load_state_dict(agent_state(state["model"]))
            if self._sigterm:
                counters.update(env_steps=step, next_eval=next_eval)
                self._checkpoint_state(agent, state, counters)
                raise Interrupted(f"{self.task.name}: SIGTERM at env step {step}, checkpoint saved")
        return self._finish(agent, counters, step, reason, evaluation)

    def _initial_state(self, agent: Agent) -> tuple[dict, dict]:
        """SF's checkpoint to start from, and the task's counters: resume from the task's
        own checkpoint, else clone the plateau, else start from `agent` as it is."""
        counters = {"env_steps": 0, "next_eval": 0, "demo_env_steps": 0}
        own = latest_checkpoint(self.store, self.task.checkpoints)
        stored, train_step = None, 0
        if own is not None:
            stored = load_checkpoint(self.store, own, restore_rng=True)
            counters.update(stored["counters"])
            train_step = stored.get("sample_factory", {}).get("train_step", 0)
        elif self.setup.clone_plateau:
            stored = load_checkpoint(self.store, layout.PLATEAU_CHECKPOINT)
        lr = self.spec.trainer.learning_rate
        if stored is not None:
            agent.load_state_dict(stored["model"])
            optimizer = stored["optimizer"]
        else:
            optimizer = torch.optim.Adam(agent.parameters(), lr=lr, eps=1e-5).state_dict()
        state = {
            "train_step": train_step,
            "env_steps": counters["env_steps"],
            "model": sf_model_state(agent.state_dict()),
            "optimizer": optimizer,
            "curr_lr": lr,
        }
        return state, counters

    def _checkpoint_state(self, agent: Agent, state: dict, counters: dict) -> None:
        """The task's checkpoint in the built-in layout, plus SF's counters."""
        stored = {
            "model": agent.state_dict(),
            "optimizer": state["optimizer"],
            "counters": dict(counters),
            "sample_factory": {"train_step": state["train_step"]},
        }
        save_store_checkpoint(self.store, self.task.checkpoint(counters["env_steps"]), stored)
        self.metrics.checkpointed()
        prune_checkpoints(self.store, self.task.checkpoints, KEEP_CHECKPOINTS, self._pinned())

    def _demo_config(self, agent: Agent, counters: dict) -> dict:
        """What the learner's demo term reads (see demo_loss); records generalist demos once."""
        f = self.spec.finetune
        return {
            "store": self.store.uri,
            "shards": self._demo_shards(agent, counters),
            "batch_size": f.demo_batch_size,
            "seed": self.seed,
            "method": f.method,
            "coef": f.coef,
            "decay": f.decay,
        }

    def _segment(self, state: dict, target: int, demos: dict | None) -> dict:
        """Run SF from `state` to `target` env steps; log its progress; return its checkpoint."""
        run_dir = self.workdir / EXPERIMENT
        shutil.rmtree(run_dir, ignore_errors=True)
        checkpoints = run_dir / "checkpoint_p0"
        checkpoints.mkdir(parents=True)
        name = f"checkpoint_{state['train_step']:09d}_{state['env_steps']}.pth"
        torch.save(sf_checkpoint(state), checkpoints / name)
        if demos is not None:
            (run_dir / DEMO_CONFIG).write_text(json.dumps(demos))
        seed = self.seed + state["env_steps"]  # every segment draws new episodes
        config = self.workdir / "config.json"
        config.write_text(
            json.dumps(
                {
                    "argv": sf_argv(self, self.workdir, target, seed),
                    "trainer": self.spec.trainer.model_dump(mode="json", by_alias=True),
                    "env": self.spec.env.model_dump(mode="json", by_alias=True),
                    "variations": self.setup.variations,
                    "seed": seed,
                }
            )
        )
        started = time.time()
        self._run_sample_factory(config, run_dir)
        self._log_progress(run_dir / STATS_FILE, state["env_steps"], started)
        latest = sorted(checkpoints.glob("checkpoint_*.pth"))
        if not latest:
            raise TrainingFailed(f"{self.task.name}: sample-factory saved no checkpoint")
        return torch.load(latest[-1], map_location="cpu", weights_only=False)

    def _run_sample_factory(self, config: Path, run_dir: Path) -> None:
        """One SF process, bounded in time; a learner crash or a failure raises TrainingFailed."""
        limit = self.spec.trainer.sample_factory.segment_timeout_seconds
        env = {**os.environ, "OMP_NUM_THREADS": str(self.spec.trainer.threads)}
        log_path = self.workdir / "sample-factory.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gsl_k8s.trainer.sample_factory.train", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + limit
        problem = None
        try:
            while proc.poll() is None:
                crash = run_dir / CRASH_FILE
                if crash.exists():
                    time.sleep(POLL_SECONDS)  # the file is written in one go; let it land
                    first = crash.read_text().splitlines()[:1] or ["(no message)"]
                    problem = f"the sample-factory learner crashed: {first[0]}"
                    break
                if time.monotonic() > deadline:
                    problem = f"a sample-factory segment ran past its {limit} s limit"
                    break
                if self._sigterm:
                    (run_dir / STOP_FILE).touch()  # SF stops and saves; wait for that
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(STOP_GRACE_SECONDS)
                    break
                time.sleep(POLL_SECONDS)
        finally:
            _kill_group(proc)
        if problem is None and proc.returncode not in (0, 2) and not self._sigterm:
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            problem = f"sample-factory exited with {proc.returncode}: {tail[0]}"
        if problem:
            raise TrainingFailed(f"{self.task.name}: {problem} (log: {log_path})")

    def _log_progress(self, path: Path, start_step: int, started: float) -> None:
        """SF's per-iteration stats as progress records `charts/*` and `losses/*`. Steps/s
        count from SF's first report (its start-up is excluded), else from `started`."""
        if not path.exists():
            return
        last = start_step
        for line in path.read_text().splitlines():
            record = json.loads(line)
            step = record["env_steps"]
            if step == start_step:
                started = record["time"]
            if step <= last:
                continue
            last = step
            metrics = {"charts/sps": (step - start_step) / max(record["time"] - started, 1e-9)}
            for name, ours in LOSS_NAMES.items():
                if name in record["train"]:
                    metrics[f"losses/{ours}"] = record["train"][name]
            if record["returns"]:
                metrics["charts/episodic_return"] = float(np.mean(record["returns"]))
                metrics["charts/success_rate"] = float(np.mean(record["successes"]))
            self.progress.log(step, metrics)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill what is left of SF's process group (its workers outlive a crashed runner)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
