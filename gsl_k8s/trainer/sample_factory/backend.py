"""A task trained by Sample Factory APPO (`trainer.backend: sample-factory`).

The task loop (`gsl_k8s.trainer.task`) evaluates, checkpoints and records demos; this backend
trains. Training runs in segments, one per evaluation interval: each segment is one process,
`python -m gsl_k8s.trainer.sample_factory.train`, started from an SF checkpoint written from
the backend's state and stopped at a cumulative env-step target, a whole number of batches
(`numEnvs x rolloutSteps`: SF trains whole batches). After a segment the backend
loads the policy into the loop's `Agent`, which the loop evaluates and checkpoints to the store
in the built-in layout (`model` and `optimizer` are the `Agent`'s and its Adam's, so plateau
checkpoints clone across backends; `sample_factory` holds SF's own counters).

Every segment has a wall-clock limit, and a learner that crashes (SF's processes would
otherwise carry on without it) fails the task within seconds: `TrainingFailed`, exit 1.
SIGTERM stops SF (it saves); the loop checkpoints that and exits with 143.
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
from typing import Any

import numpy as np
import torch

from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.backend import TaskContext, TrainingFailed
from gsl_k8s.trainer.sample_factory import CRASH_FILE, DEMO_CONFIG, STATS_FILE, STOP_FILE
from gsl_k8s.trainer.sample_factory.model import (
    agent_state,
    fresh_own_state,
    sf_model_state,
    sf_own_state,
)

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


def sf_argv(context: TaskContext, train_dir: Path, target: int, seed: int) -> list[str]:
    """Sample Factory's command line for one segment: our PPO settings as APPO settings."""
    t = context.spec.trainer
    sf = t.sample_factory
    return [
        "--env=gsl",
        "--algo=APPO",
        f"--experiment={EXPERIMENT}",
        f"--train_dir={train_dir}",
        f"--device={'gpu' if context.device.type == 'cuda' else 'cpu'}",
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
        f"--normalize_returns={t.normalize_rewards}",  # SF's way: value targets standardized
        "--reward_scale=1.0",
        f"--train_for_env_steps={target}",
        "--restart_behavior=resume",
        "--save_every_sec=1000000",  # it saves when it stops; the task checkpoints to the store
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


class SampleFactoryBackend:
    """Trains the task's agent with Sample Factory; see the module docstring."""

    def __init__(self, context: TaskContext):
        self.context = context
        self.config = context.spec.trainer
        envs = context.family.make_vec(context.variations, 1, context.seeds.training_envs(0))
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        envs.close()
        self.granularity = self.config.num_envs * self.config.rollout_steps
        self.workdir = Path(tempfile.mkdtemp(prefix="gsl-sf-"))  # kept on failure, for its log

    def prepare(self, agent: Agent, step: int, demo_shards: list[str] | None) -> None:
        """SF's state at env step `step`, from `agent` and a fresh Adam; the demo term's
        settings (see demo_loss) when there are demo shards."""
        self.agent = agent
        lr = self.config.learning_rate
        self.state = {
            "train_step": 0,
            "env_steps": step,
            "model": sf_model_state(
                agent.state_dict(), fresh_own_state(self.config.normalize_rewards)
            ),
            "optimizer": torch.optim.Adam(agent.parameters(), lr=lr, eps=1e-5).state_dict(),
            "curr_lr": lr,
        }
        self.demos = self._demo_config(demo_shards) if demo_shards is not None else None

    def load_state_dict(self, state: dict[str, Any], resumed: bool) -> None:
        """Adam's state and SF's returns statistics (where this model has them: a plateau
        from the built-in backend has none); on a resume, also SF's train step (the demo term
        decays with it)."""
        self.state["optimizer"] = state["optimizer"]
        stored = state.get("sample_factory", {})
        model = self.state["model"]
        model.update({k: v for k, v in stored.get("model", {}).items() if k in model})
        if resumed:
            self.state["train_step"] = stored.get("train_step", 0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.state["optimizer"],
            "sample_factory": {
                "train_step": self.state["train_step"],
                "model": sf_own_state(self.state["model"]),
            },
        }

    def train_until(self, target: int) -> int:
        """One segment to `target` (less on SIGTERM); loads the policy into the agent."""
        step = self.state["env_steps"]
        self.state = self._segment(self.state, target, self.demos)
        if self.state["env_steps"] <= step and not self.context.interrupted():
            raise TrainingFailed(f"{self.context.task.name}: sample-factory made no progress")
        self.agent.load_state_dict(agent_state(self.state["model"]))
        return self.state["env_steps"]

    def evaluated(self, success: dict[int, float]) -> None:
        """Nothing: the spec refuses per-variation demo weights with this backend."""

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _demo_config(self, shards: list[str]) -> dict:
        """What the learner's demo term reads (see demo_loss)."""
        f = self.context.spec.finetune
        return {
            "store": self.context.store.uri,
            "shards": shards,
            "batch_size": f.demo_batch_size,
            "seed": self.context.seed,
            "method": f.method,
            "coef": f.coef,
            "decay": f.decay,
            "likelihood": f.demo_likelihood,
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
        seed = self.context.seeds.training_envs(state["env_steps"])  # new episodes
        config = self.workdir / "config.json"
        config.write_text(
            json.dumps(
                {
                    "argv": sf_argv(self.context, self.workdir, target, seed),
                    "trainer": self.config.model_dump(mode="json", by_alias=True),
                    "env": self.context.spec.env.model_dump(mode="json", by_alias=True),
                    "variations": self.context.variations,
                    "seed": seed,
                }
            )
        )
        started = time.time()
        self._run_sample_factory(config, run_dir)
        self._log_progress(run_dir / STATS_FILE, state["env_steps"], started)
        latest = sorted(checkpoints.glob("checkpoint_*.pth"))
        if not latest:
            raise TrainingFailed(f"{self.context.task.name}: sample-factory saved no checkpoint")
        return torch.load(latest[-1], map_location="cpu", weights_only=True)

    def _run_sample_factory(self, config: Path, run_dir: Path) -> None:
        """One SF process, bounded in time; a learner crash or a failure raises TrainingFailed."""
        limit = self.config.sample_factory.segment_timeout_seconds
        env = {**os.environ, "OMP_NUM_THREADS": str(self.config.threads)}
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
                if self.context.interrupted():
                    (run_dir / STOP_FILE).touch()  # SF stops and saves; wait for that
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(STOP_GRACE_SECONDS)
                    break
                time.sleep(POLL_SECONDS)
        finally:
            _kill_group(proc)
        if problem is None and proc.returncode not in (0, 2) and not self.context.interrupted():
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            problem = f"sample-factory exited with {proc.returncode}: {tail[0]}"
        if problem:
            raise TrainingFailed(f"{self.context.task.name}: {problem} (log: {log_path})")

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
            self.context.log(step, metrics)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill what is left of SF's process group (its workers outlive a crashed runner)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
