import subprocess

import numpy as np
import pytest

from gsl_k8s.envs.forkmaze import ForkMazeFamily
from gsl_k8s.records.demos import demo_batches, describe_shortfall, load_shard, write_shards
from gsl_k8s.store import StoreError, get_artifact, open_store, put_artifact
from gsl_k8s.trainer.demos import collect_demos, record_demos, record_demos_per_variation
from tests.test_gail import shortest_path_expert


def test_file_store_round_trip_and_listing(tmp_path):
    store = open_store(f"file://{tmp_path}")
    store.write_bytes("a/b/c.bin", b"payload")
    store.write_bytes("a/log.jsonl", b"1\n")
    (tmp_path / "a" / ".tmp-unfinished").write_bytes(b"partial")
    assert store.read_bytes("a/b/c.bin") == b"payload"
    assert store.list("a") == ["a/b/c.bin", "a/log.jsonl"]
    assert store.list("a", start_after="a/b/c.bin") == ["a/log.jsonl"]
    store.delete("a/b/c.bin")
    assert not store.exists("a/b/c.bin")


def test_file_store_errors_name_the_uri(tmp_path):
    store = open_store(str(tmp_path))
    with pytest.raises(StoreError, match="no such object"):
        store.read_bytes("missing.json")
    with pytest.raises(StoreError, match="escapes the store"):
        store.read_bytes("../outside")
    with pytest.raises(StoreError, match="unsupported storage scheme"):
        open_store("ftp://host/x")


def test_demos_keep_only_successes_and_round_trip(tmp_path):
    store = open_store(str(tmp_path))
    family = ForkMazeFamily(goals=4)
    rng = np.random.default_rng(0)
    collection = collect_demos(
        lambda obs: rng.integers(0, 4, len(obs)),
        family,
        [1, 2],
        episodes=5,
        seed=0,
        max_attempts=4000,
    )
    assert 0 < len(collection.episodes) <= 5
    assert collection.env_steps >= sum(len(e.rewards) for e in collection.episodes)
    for episode in collection.episodes:
        assert episode.variation in (1, 2)
        assert episode.rewards[-1] >= 1.0  # success: the last step reached the own goal
    keys = write_shards(store, "demos/0", collection.episodes)
    shard = load_shard(store, keys[0])
    assert len(shard["variations"]) == len(collection.episodes)
    assert shard["obs"].shape == (len(shard["actions"]), 3)
    np.testing.assert_array_equal(
        shard["episode_starts"][1:], np.cumsum([len(e.rewards) for e in collection.episodes])[:-1]
    )
    obs, actions, variations = next(demo_batches(store, keys, batch_size=16, seed=0))
    assert obs.shape == (16, 3) and actions.shape == (16,)
    # each step's variation is its episode's: the goal its observation's context names
    np.testing.assert_array_equal(variations, np.rint((obs[:, 2] + 1.0) * 3 / 2).astype(int))


def test_collect_demos_gives_up_after_max_attempts():
    family = ForkMazeFamily(goals=4)
    never = collect_demos(
        lambda obs: np.zeros(len(obs), dtype=np.int64),
        family,
        [0],
        episodes=3,
        seed=0,
        max_attempts=10,
        num_envs=4,
    )
    assert never.episodes == [] and never.attempts >= 10


def scripted_policy(policy_greedy: bool):
    """Greedy: always up, which never reaches a goal; sampled: uniformly random actions,
    which reach a goal of a small maze now and then."""
    rng = np.random.default_rng(0)
    if policy_greedy:
        return lambda obs: np.zeros(len(obs), dtype=np.int64)
    return lambda obs: rng.integers(0, 4, len(obs))


def test_greedy_demos_that_keep_nothing_fall_back_to_sampled_actions():
    family = ForkMazeFamily(goals=2, corridor_length=1)
    lines = []
    kept, count = record_demos(
        scripted_policy,
        family,
        [0, 1],
        8,
        greedy=True,
        seed=0,
        log=lines.append,
    )
    assert count.asked == count.kept == count.sampled == len(kept) == 8
    assert all(e.rewards[-1] >= 1.0 for e in kept)
    # the greedy pass gave up after its first wave of 32 attempts, not after 4 x 8
    assert 32 < count.attempted <= 32 + 4 * 8
    assert lines == [
        f"greedy actions kept 0 of 8 demos in 32 attempts; sampled actions recorded 8 more "
        f"in {count.attempted - 32}"
    ]


def test_per_variation_demos_show_every_variation_where_greedy_actions_solve_only_one():
    """Greedy actions walk to goal 0 whatever the context, sampled ones at random: at
    random, greedy demos fill the whole quota with variation 0; per variation, variation 1
    gets its half, recorded with sampled actions."""
    family = ForkMazeFamily(goals=2, corridor_length=1)
    to_goal_0 = shortest_path_expert(family)
    rng = np.random.default_rng(0)

    def policy(greedy: bool):
        if greedy:
            return lambda obs: to_goal_0(np.column_stack([obs[:, :2], -np.ones(len(obs))]))
        return lambda obs: rng.integers(0, 4, len(obs))

    kept, count = record_demos(policy, family, [0, 1], 8, greedy=True, seed=0)
    assert [e.variation for e in kept] == [0] * 8 and count.sampled == 0
    lines = []
    kept, count = record_demos_per_variation(
        policy, family, [0, 1], 8, greedy=True, seed=0, log=lines.append
    )
    assert sorted(e.variation for e in kept) == [0] * 4 + [1] * 4
    assert (count.asked, count.kept, count.sampled) == (8, 8, 4)
    assert count.env_steps > 0 and len(lines) == 1  # variation 1's fallback, logged


def test_sampled_demos_are_capped_and_counted_short():
    family = ForkMazeFamily(goals=8, corridor_length=4, arm_length=4)  # random walks fail
    kept, count = record_demos(
        scripted_policy,
        family,
        [0],
        4,
        greedy=False,
        seed=0,
        attempts_per_episode=2,
        log=pytest.fail,
    )
    assert count.short and count.kept == len(kept) < 4 and count.attempted >= 8
    assert describe_shortfall({"specialist-0": count}) == (
        f"fewer demos than asked: specialist-0 kept {count.kept} of 4 in {count.attempted} attempts"
    )


def test_file_artifacts_are_verified_and_sha256sum_compatible(tmp_path):
    store = open_store(str(tmp_path))
    put_artifact(store, "generalist/checkpoints/step-1.pt", b"weights" * 1000)
    checked = subprocess.run(
        ["sha256sum", "-c", "step-1.pt.sha256"],
        cwd=tmp_path / "generalist/checkpoints",
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0 and "step-1.pt: OK" in checked.stdout
    path = tmp_path / "generalist/checkpoints/step-1.pt"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="step-1.pt: corrupted or truncated"):
        get_artifact(store, "generalist/checkpoints/step-1.pt")
