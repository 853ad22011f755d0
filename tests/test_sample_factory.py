"""The sample-factory backend: the GSL pipeline end to end, learning, the demo-loss adapter
and a crashed learner. They fail, not skip, without sample-factory (`make install` installs
it)."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from sample_factory.algo.learning.learner import Learner
from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args

from gsl_k8s import layout
from gsl_k8s.layout import GENERALIST, PLAN, PLATEAU_CHECKPOINT, SPEC, Task
from gsl_k8s.records.demos import DemoCount, Episode, write_shards
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import TrainerSpec, parse_spec
from gsl_k8s.store import open_store, put_artifact, write_json
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from gsl_k8s.trainer.sample_factory import demo_loss
from gsl_k8s.trainer.sample_factory.model import AgentActorCritic
from tests.conftest import TINY_SPEC, gsl, merge, write_plan_of
from tests.test_learning import random_policy, train_generalist

os.environ["OMP_NUM_THREADS"] = "1"  # Sample Factory's processes inherit it
SF = {"backend": "sample-factory", "sampleFactory": {"serialMode": True}}
# Evaluation intervals of whole batches (256 env steps): one SF process per interval, one
# per task (the generalist's final weights are pinned: no plateau within one interval).
SF_SPEC = {
    "spec": {
        "trainer": SF,
        "generalist": {"envSteps": 2048, "evaluation": {"everySteps": 2048}},
        "specialists": {"count": 2, "envSteps": 512, "evaluation": {"everySteps": 512}},
        "finetune": {"envSteps": 512, "evaluation": {"everySteps": 512}},
    }
}


@pytest.mark.slow
def test_gsl_run_end_to_end_on_sample_factory(write_spec, tmp_path):
    run_dir = tmp_path / "run"
    proc = gsl("run", str(write_spec(SF_SPEC)), "--out", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run_dir / "report.json").read_text())
    plan = json.loads((run_dir / PLAN).read_text())

    assert report["specialists"]["count"] == 2
    assert sorted(v for s in plan["subsets"] for v in s) == plan["weak_variations"]
    assert report["demos"]["episodes"] == 2 * 4
    assert report["finetune"]["env_steps"] == 512
    assert set(report["final"]["per_variation"]) == {str(v) for v in range(6)}
    # SF trains whole batches (8 envs x 32 steps): the baseline gets GSL's env steps, less
    # any remainder smaller than a batch, never more
    assert 0 <= report["final"]["env_steps_total"] - report["baseline"]["env_steps"] < 256
    assert (run_dir / PLATEAU_CHECKPOINT).is_file()
    # the same layout and record names as the built-in backend; the demo term was trained
    store = open_store(str(run_dir))
    records = read_progress(store, Task("finetune").progress)
    names = {k for r in records for k in r}
    assert {"charts/sps", "charts/episodic_return", "losses/policy_loss"} <= names
    assert any(r.get("losses/demo_loss", 0) > 0 for r in records)
    assert store.list(Task("specialist", 0).demos)
    assert store.list(Task("generalist").checkpoints)
    assert not list(tmp_path.glob("gsl-sf-*"))


def test_sample_factory_learns_one_forkmaze_goal(tmp_path):
    experiment, result = train_generalist(
        tmp_path,
        {
            "spec": {
                "env": {
                    "variations": [2],
                    "kwargs": {"goals": 8, "corridorLength": 6, "armLength": 3, "horizon": 64},
                },
                "specialists": {"count": 1},
                "trainer": {**SF, "numEnvs": 16, "rolloutSteps": 64},
                "generalist": {
                    "envSteps": 81_920,
                    "evaluation": {"everySteps": 81_920, "episodesPerVariation": 32},
                },
            }
        },
    )
    _, random_success = random_policy(experiment)
    assert result.env_steps == 81_920
    assert random_success < 0.1
    assert result.final_eval["eval/success_rate"] >= 0.9


def sf_config(*args: str):
    argv = ["--env=gsl", "--use_rnn=False", *args]
    parser, _ = parse_sf_args(argv)
    return parse_full_cfg(parser, argv)


def test_demo_loss_adapter_adds_the_dapg_gradient_computed_by_hand():
    """One linear layer: d/dz of -w * mean(log softmax(z)[a]) is w * (softmax(z) - onehot) / N."""
    cfg = sf_config("--num_epochs=2", "--num_batches_per_epoch=3")
    obs_space = gym.spaces.Dict(obs=gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
    trainer = TrainerSpec(network={"hiddenSizes": []})
    model = AgentActorCritic(obs_space, gym.spaces.Discrete(4), cfg, trainer)
    obs = np.array([[0.1, -0.5, 1.0], [0.3, 0.2, -1.0]], dtype=np.float32)
    actions = np.array([2, 0])
    config = {"method": "dapg", "coef": 0.5, "decay": 0.9, "likelihood": "log"}
    learner = SimpleNamespace(
        cfg=cfg,
        train_step=2 * 6 + 1,  # the third update: iteration 2
        device=torch.device("cpu"),
        actor_critic=model,
        gsl_demos=(config, iter([(obs, actions, np.zeros(len(obs), int))])),
    )
    summaries = {"adv": torch.tensor([-1.0, 2.0, 0.5])}
    zero = torch.zeros(())

    def original(self, mb, num_invalids):
        return None, zero, zero, None, zero, zero, summaries

    out = demo_loss._with_demo_loss(original)(learner, None, 0)
    out[1].backward()

    weight = 0.5 * 0.9**2 * 2.0  # coef * decay**iteration * max advantage
    head = model.agent.actor_head
    with torch.no_grad():
        z = torch.as_tensor(obs) @ head.weight.T + head.bias
        dz = weight * (torch.softmax(z, -1) - torch.eye(4)[actions]) / len(obs)
    torch.testing.assert_close(head.bias.grad, dz.sum(0))
    torch.testing.assert_close(head.weight.grad, dz.T @ torch.as_tensor(obs))
    assert learner.gsl_demo_stats["demo_weight"] == pytest.approx(weight)
    stats = demo_loss._with_demo_summaries(lambda self, v: {"policy_loss": 0.0})(learner, None)
    assert stats["demo_loss"] == pytest.approx(out[1].item())


def finetune_run(root, trainer: dict):
    """A store ready for the finetune role (one batch, one SF process): plan, plateau
    checkpoint, generalist demos done (none); the caller adds specialist demos. Returns the
    store."""
    one_batch = {"envSteps": 256, "evaluation": {"everySteps": 256}}
    experiment = parse_spec(merge(TINY_SPEC, {"spec": {"trainer": trainer, "finetune": one_batch}}))
    store = open_store(str(root))
    store.write_bytes(SPEC, experiment.to_json().encode())
    write_plan_of(store, [[0, 1], [2, 3]], weak_variations=list(range(6)))
    agent = Agent(
        gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
        gym.spaces.Discrete(4),
        experiment.spec.trainer.network,
        experiment.spec.trainer.normalize_observations,
    )
    optimizer = torch.optim.Adam(agent.parameters(), eps=1e-5)
    save_checkpoint(
        store,
        PLATEAU_CHECKPOINT,
        {"model": agent.state_dict(), "optimizer": optimizer.state_dict(), "counters": {}},
    )
    write_json(store, layout.GENERALIST_DEMOS_DONE, DemoCount().to_json())
    return store


@pytest.mark.slow
def test_the_demo_term_runs_in_the_spawned_learner_of_an_async_run(tmp_path):
    """Asynchronous mode: SF's learner is its own (spawned) process; the demo loss must be
    computed there and reach the progress records."""
    store = finetune_run(tmp_path, {**SF, "sampleFactory": {"serialMode": False}})
    rng = np.random.default_rng(0)
    episode = Episode(
        rng.uniform(-1, 1, (20, 3)).astype(np.float32), rng.integers(0, 4, 20), np.zeros(20), 0
    )
    write_shards(store, Task("specialist", 0).demos, [episode])
    proc = gsl("train", "--run", str(tmp_path), "--role", "finetune", timeout=180)
    assert proc.returncode == 0, proc.stderr
    records = read_progress(store, Task("finetune").progress)
    assert any(r.get("losses/demo_loss", 0) > 0 for r in records), records


@pytest.mark.slow
def test_a_crashed_learner_fails_the_task_quickly(tmp_path):
    """A finetune whose demo shard is corrupt: the learner raises; `gsl train` must exit
    non-zero with a one-line error, not hang with the other SF processes running."""
    store = finetune_run(tmp_path, SF)
    put_artifact(store, f"{Task('specialist', 0).demos}/shard-0000.npz", b"not an npz file")

    started = time.time()
    proc = gsl("train", "--run", str(tmp_path), "--role", "finetune", timeout=120)
    assert time.time() - started < 60
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("gsl: error: finetune: the sample-factory learner crashed:"), error


@pytest.mark.slow
def test_sigterm_interrupts_sample_factory_and_rerun_resumes(tmp_path):
    """Mid-segment SIGTERM: SF saves, the task checkpoints that and exits 143; a rerun
    resumes from it and trains exactly to the budget."""
    budget = 32_768  # 32 batches: SF is mid-segment when it sees the signal
    patch = {
        "spec": {
            "trainer": {**SF, "numEnvs": 16, "rolloutSteps": 64},
            "generalist": {"envSteps": budget, "evaluation": {"everySteps": budget}},
        }
    }
    store = open_store(str(tmp_path / "run"))
    store.write_bytes(SPEC, parse_spec(merge(TINY_SPEC, patch)).to_json().encode())
    workdirs = tmp_path / "tmp"  # where the task's SF segments run
    workdirs.mkdir()
    command = [sys.executable, "-m", "gsl_k8s", "train", "--run", str(tmp_path / "run")]
    command += ["--role", "generalist"]
    env = {**os.environ, "TMPDIR": str(workdirs)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    # SF writes its stats file after its first training iteration
    while not list(workdirs.glob("*/run/gsl-stats.jsonl")) and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "checkpoint saved" in stderr
    stopped_at = load_checkpoint(store, latest_checkpoint(store, GENERALIST.checkpoints))
    assert 0 < stopped_at["counters"]["env_steps"] < budget
    assert stopped_at["sample_factory"]["train_step"] > 0

    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["env_steps"] == budget
    steps = [r["step"] for r in read_progress(store, GENERALIST.progress) if "charts/sps" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no step trained twice


def test_segment_checkpoints_load_as_sample_factory_loads_them(tmp_path):
    """SF loads checkpoints with torch.load's weights_only default: its own `best_performance`
    (a numpy scalar) must not travel on, and a checkpoint that fails to load is a crash, not
    the silent fresh start SF would make of it."""
    from gsl_k8s.trainer.sample_factory.backend import sf_checkpoint

    state = {"train_step": 5, "env_steps": 256, "model": {"w": torch.ones(2)}}
    state |= {"optimizer": {}, "curr_lr": 1e-3, "best_performance": np.float64(0.3)}
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint_p0").mkdir(parents=True)
    good, bad = run_dir / "checkpoint_p0" / "good.pth", run_dir / "checkpoint_p0" / "bad.pth"
    torch.save(sf_checkpoint(state), good)
    torch.save(state, bad)
    demo_loss.install()
    load = Learner.load_checkpoint
    assert load([str(good)], "cpu")["env_steps"] == 256
    with pytest.raises(RuntimeError, match="cannot load checkpoint"):
        load([str(bad)], "cpu")
    assert (run_dir / "gsl-learner-crash.txt").read_text().startswith("RuntimeError")


def test_reward_normalisation_means_the_same_on_both_backends(tmp_path):
    """normalizeRewards becomes SF's normalize_returns, whose statistics travel in the
    store's checkpoints (SF loads its model strictly: a missing key would crash a resume)."""
    from gsl_k8s.trainer.sample_factory.backend import sf_argv
    from gsl_k8s.trainer.sample_factory.model import fresh_own_state, sf_own_state

    for normalize in (True, False):
        trainer = TrainerSpec(normalize_rewards=normalize)
        context = SimpleNamespace(spec=SimpleNamespace(trainer=trainer), device=torch.device("cpu"))
        assert f"--normalize_returns={normalize}" in sf_argv(context, tmp_path, 2048, 0)
    own = fresh_own_state(True)
    assert set(own) == {f"returns_normalizer.{k}" for k in ("running_mean", "running_var", "count")}
    assert sf_own_state({"agent.w": torch.ones(1), **own}) == own
    assert fresh_own_state(False) == {}
