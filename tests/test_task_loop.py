"""The task loop (`gsl_k8s.trainer.task`) and the backend contract it drives: evaluation
cadence, the budget, the stop file, SIGTERM, and the learner state in checkpoints."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gsl_k8s.envs import VariationResult, make_family
from gsl_k8s.layout import GENERALIST, GENERALIST_FEATURES, SPEC, Task
from gsl_k8s.records.demos import Episode, write_shards
from gsl_k8s.records.progress import read_progress
from gsl_k8s.spec import EnvSpec, NetworkSpec, parse_spec
from gsl_k8s.store import list_artifacts, open_store, read_json
from gsl_k8s.trainer import builtin
from gsl_k8s.trainer.agent import Agent
from gsl_k8s.trainer.backend import TaskContext
from gsl_k8s.trainer.builtin import BuiltinBackend
from gsl_k8s.trainer.checkpoint import latest_checkpoint, load_checkpoint
from gsl_k8s.trainer.features import variation_features
from gsl_k8s.trainer.task import Interrupted, TaskRunner, max_gsl_env_steps, task_setup
from tests.conftest import TINY_SPEC, finetune_context, merge, write_plan_of

BUDGET = 6000  # TINY_SPEC: batches of 8 envs x 32 steps = 256, an evaluation every 1024


def generalist_runner(tmp_path, backend=None, patch=None) -> TaskRunner:
    patch = merge({"spec": {"generalist": {"envSteps": BUDGET}}}, patch or {})
    experiment = parse_spec(merge(TINY_SPEC, patch))
    store = open_store(str(tmp_path))
    store.write_bytes(SPEC, experiment.to_json().encode())
    runner = TaskRunner(store, GENERALIST)
    if backend is not None:
        runner.backend_class = backend
    return runner


def evaluation_steps(runner: TaskRunner) -> list[int]:
    records = read_progress(runner.store, GENERALIST.progress)
    return [r["step"] for r in records if "eval/success_rate" in r]


def test_builtin_evaluates_on_whole_rollouts_and_shortens_the_last_one_to_the_budget(tmp_path):
    runner = generalist_runner(tmp_path)
    result = runner.run()
    assert result.env_steps == BUDGET and result.reason == "budget"
    assert evaluation_steps(runner) == [0, 1024, 2048, 3072, 4096, 5120, BUDGET]
    records = read_progress(runner.store, GENERALIST.progress)
    trained = [r["step"] for r in records if "charts/sps" in r]
    assert trained == list(range(256, 5889, 256)) + [BUDGET]
    state = load_checkpoint(runner.store, latest_checkpoint(runner.store, GENERALIST.checkpoints))
    counters = state["counters"]
    assert counters.pop("wall_seconds") > 0
    assert counters == {"env_steps": BUDGET, "next_eval": BUDGET + 1024, "demo_env_steps": 0}
    assert {"model", "optimizer", "demo_iteration"} <= set(state)
    assert len(list_artifacts(runner.store, GENERALIST.checkpoints, ".pt")) == 5  # the newest


def test_a_specialists_budget_grows_with_its_subset_with_env_steps_per_variation(tmp_path):
    store = open_store(str(tmp_path))
    write_plan_of(store, [[0], [1, 2, 3], [4, 5]])
    fixed = parse_spec(TINY_SPEC).spec  # envSteps 1024 each, whatever the subset
    assert [task_setup(fixed, store, Task("specialist", i)).env_steps for i in range(3)] == [
        1024
    ] * 3
    patch = {"spec": {"specialists": {"envStepsPerVariation": 500}}}
    grown = parse_spec(merge(TINY_SPEC, patch)).spec
    budgets = [task_setup(grown, store, Task("specialist", i)).env_steps for i in range(3)]
    assert budgets == [500, 1500, 1000]
    # a concurrent baseline anneals over GSL's most env steps: all 6 variations' specialists
    assert max_gsl_env_steps(grown, None) - max_gsl_env_steps(fixed, None) == 6 * 500 - 3 * 1024


def test_a_generalist_for_partition_features_writes_its_familys_features(tmp_path):
    patch = {"spec": {"generalist": {"envSteps": 512}, "specialists": {"partition": "features"}}}
    runner = generalist_runner(tmp_path, patch=patch)
    runner.run()
    written = read_json(runner.store, GENERALIST_FEATURES)
    assert written["source"] == "family"
    family = runner.family
    expected = {str(v): family.variation_features(v).tolist() for v in range(6)}
    assert written["features"].keys() == expected.keys()
    for v, vector in expected.items():
        np.testing.assert_allclose(written["features"][v], vector, rtol=1e-6)


def test_a_generalist_without_partition_features_writes_none(tmp_path):
    runner = generalist_runner(tmp_path, patch={"spec": {"generalist": {"envSteps": 512}}})
    runner.run()
    assert not runner.store.exists(GENERALIST_FEATURES)


@pytest.mark.parametrize("actions", ["greedy", "sample"])
def test_evaluation_takes_the_actions_the_spec_names_and_records_which(
    tmp_path, monkeypatch, actions
):
    patch = {"spec": {"generalist": {"evaluation": {"actions": actions}}}}
    runner = generalist_runner(tmp_path, patch=patch)
    policies = []

    def evaluate(act, family, variations, episodes, seed):
        policies.append(act)
        return {v: VariationResult(0.0, 0.0, episodes) for v in variations}

    monkeypatch.setattr("gsl_k8s.trainer.task.evaluate", evaluate)
    torch.manual_seed(0)
    envs = runner.family.make_vec([0], 1, seed=0)
    agent = Agent(envs.single_observation_space, envs.single_action_space, NetworkSpec())
    metrics = runner.evaluate(agent, step=0)
    runner.progress.flush()
    assert metrics["eval/actions"] == actions
    assert read_progress(runner.store, GENERALIST.progress)[-1]["eval/actions"] == actions
    obs = np.random.default_rng(0).uniform(-1, 1, (256, 3)).astype(np.float32)
    taken = [policies[0](obs) for _ in range(3)]
    argmax = agent.policy_output(torch.as_tensor(obs)).argmax(-1).numpy()
    # a freshly initialised policy is near uniform over 4 actions: samples rarely agree
    greedy = all(np.array_equal(a, argmax) for a in taken)
    assert greedy == (actions == "greedy")


def test_variations_a_family_does_not_describe_are_embedded_by_the_agents_encoder():
    family = make_family(EnvSpec(family="gymnasium", id="CartPole-v1", variations=4))
    envs = family.make_vec([0], 1, seed=0)
    network = NetworkSpec(hidden_sizes=[16, 8])
    agent = Agent(envs.single_observation_space, envs.single_action_space, network)
    envs.close()
    source, features = variation_features(family, agent, [5, 6, 5], seed=0)
    assert source == "encoder" and sorted(features) == [5, 6]
    assert len(features[5]) == 8  # the last hidden layer
    first, _ = family.make_vec([6], 1, seed=1).reset(seed=1)  # variation = reset seed
    expected = agent.embed(torch.as_tensor(first)).numpy()[0]
    np.testing.assert_allclose(features[6], expected, atol=1e-5)
    assert not np.allclose(features[5], features[6])


class WholeBatches:
    """A backend that trains nothing, in whole batches, as Sample Factory does; `on_call`
    runs during the n-th `train_until` (from 1)."""

    calls: list[int] = []
    on_call: dict = {}
    evaluations: list[dict[int, float]] = []

    def __init__(self, context: TaskContext):
        self.context = context
        envs = context.family.make_vec(context.variations, 1, context.seed)
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        envs.close()
        self.granularity = 256

    def prepare(self, agent, step, demo_shards):
        self.step = step

    def load_state_dict(self, state, resumed):
        self.loaded = (state["learner"], resumed)

    def state_dict(self):
        return {"learner": len(WholeBatches.calls)}

    def train_until(self, target):
        WholeBatches.calls.append(target)
        WholeBatches.on_call.get(len(WholeBatches.calls), lambda: None)()
        self.step = target
        return target

    def evaluated(self, success):
        WholeBatches.evaluations.append(success)

    def close(self):
        pass


@pytest.fixture
def whole_batches():
    WholeBatches.calls, WholeBatches.on_call, WholeBatches.evaluations = [], {}, []
    return WholeBatches


def test_a_whole_batch_backend_trains_one_call_per_evaluation_and_stops_short_of_the_budget(
    tmp_path, whole_batches
):
    runner = generalist_runner(tmp_path, whole_batches)
    result = runner.run()
    assert whole_batches.calls == [1024, 2048, 3072, 4096, 5120, 5888]  # 6000 is no batch
    assert result.env_steps == 5888 and result.reason == "budget"
    assert evaluation_steps(runner) == [0, 1024, 2048, 3072, 4096, 5120, 5888]
    # each evaluation's success per variation, as numbers by variation id, went to the backend
    records = read_progress(runner.store, GENERALIST.progress)
    evaluated = [r["eval/per_variation"] for r in records if "eval/per_variation" in r]
    assert whole_batches.evaluations == [{int(v): s for v, s in e.items()} for e in evaluated]
    state = load_checkpoint(runner.store, latest_checkpoint(runner.store, GENERALIST.checkpoints))
    assert state["learner"] == 6  # the backend's state, saved beside the model


def test_the_stop_file_ends_the_task_after_an_evaluation(tmp_path, whole_batches):
    runner = generalist_runner(tmp_path, whole_batches)
    whole_batches.on_call[2] = lambda: runner.store.write_bytes(GENERALIST.stop, b"")
    result = runner.run()
    assert (result.env_steps, result.reason) == (2048, "stopped")
    assert evaluation_steps(runner)[-1] == 2048


def test_sigterm_checkpoints_and_a_rerun_resumes_the_backend_state(tmp_path, whole_batches):
    runner = generalist_runner(tmp_path, whole_batches)
    whole_batches.on_call[3] = lambda: runner._on_sigterm(15, None)
    with pytest.raises(Interrupted, match="SIGTERM at env step 3072, checkpoint saved"):
        runner.run()
    assert not runner.store.exists(GENERALIST.result)
    key = latest_checkpoint(runner.store, GENERALIST.checkpoints)
    counters = load_checkpoint(runner.store, key)["counters"]
    assert counters["env_steps"] == 3072
    before = counters["wall_seconds"]
    assert before > 0

    started = time.monotonic()
    rerun = generalist_runner(tmp_path, whole_batches)
    result = rerun.run()
    assert result.env_steps == 5888
    # its wall seconds go on from the checkpoint's: both runs count
    assert before < result.wall_seconds <= before + time.monotonic() - started
    assert whole_batches.calls == [1024, 2048, 3072, 4096, 5120, 5888]  # none trained twice
    assert evaluation_steps(rerun) == [0, 1024, 2048, 3072, 4096, 5120, 5888]


def test_builtin_learner_state_resumes_the_demo_iteration_and_clones_without_it(tmp_path):
    """Adam's state and the reward statistics come back on a resume and on a clone of the
    plateau; the demo term's iteration only on a resume."""
    experiment = parse_spec(TINY_SPEC)
    store = open_store(str(tmp_path))
    logged = []
    context = finetune_context(
        experiment.spec, store, lambda step, metrics: logged.append((step, metrics))
    )
    backend = BuiltinBackend(context)
    agent = Agent(backend.observation_space, backend.action_space, experiment.spec.trainer.network)
    obs = np.stack([backend.observation_space.sample() for _ in range(20)])
    shards = write_shards(store, "demos/0", [Episode(obs, np.zeros(20, int), np.zeros(20), 0)])
    backend.prepare(agent, 0, shards)
    assert backend.train_until(10_000) == 256  # one rollout per call
    assert logged[0][0] == 256 and logged[0][1]["losses/demo_loss"] > 0
    state = backend.state_dict()
    assert state["demo_iteration"] == 1 and state["optimizer"]["state"]
    assert state["reward_normalizer"]["returns.count"] > 1  # trainer.normalizeRewards
    backend.close()
    for resumed, iteration in ((True, 1), (False, 0)):
        other = BuiltinBackend(context)
        other.prepare(agent, 256, shards)
        other.load_state_dict(state, resumed)
        assert other.demos.iteration == iteration
        restored = other.ppo.optimizer.state_dict()["state"]
        torch.testing.assert_close(
            restored[0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"]
        )
        rewards = other.ppo.reward_normalizer.state_dict()
        torch.testing.assert_close(
            rewards["returns.var"], state["reward_normalizer"]["returns.var"]
        )
        other.close()


def test_steps_per_second_count_training_time_only(tmp_path, monkeypatch):
    """charts/sps: env steps over the seconds spent in collection and updates; the time
    between calls (evaluations, checkpoints) does not count."""
    experiment = parse_spec(TINY_SPEC)
    logged = []
    context = finetune_context(
        experiment.spec, open_store(str(tmp_path)), lambda step, m: logged.append(m)
    )
    backend = BuiltinBackend(context)
    agent = Agent(backend.observation_space, backend.action_space, experiment.spec.trainer.network)
    backend.prepare(agent, 0, None)
    clock = iter([10.0, 12.0, 1000.0, 1002.0])  # two calls of 2 s each, 988 s apart
    monkeypatch.setattr(builtin, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    backend.train_until(10_000)
    backend.train_until(10_000)
    backend.close()
    assert [m["charts/sps"] for m in logged] == [256 / 2.0, 512 / 4.0]
