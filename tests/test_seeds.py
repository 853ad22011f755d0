"""The seed streams keep the values of earlier versions, and a task's streams stay apart."""

from gsl_k8s.seeds import SeedStreams, demo_retry, demo_variation, env_worker


def test_task_seeds_are_the_historic_ones():
    assert SeedStreams.for_task(7, "generalist", 0, 1).task == 7
    assert SeedStreams.for_task(7, "specialist", 3, 1).task == 1010
    assert SeedStreams.for_task(7, "finetune", 0, 2).task == 12_007
    assert SeedStreams.for_task(7, "baseline", 0, 1).task == 3007
    seeds = SeedStreams(100)
    assert (seeds.demo_recording, seeds.features, seeds.behaviour_cloning) == (101, 102, 103)
    assert seeds.training_envs(256) == 356 and seeds.demo_batches(5) == 105
    assert seeds.evaluation(0) == 100 + 7919 and seeds.evaluation(1024) == 100 + 7919 * 1025
    assert env_worker(356, 2) == 356 + 2 * 7919
    assert demo_retry(101) == 102 and demo_variation(101, 3) == 104


def test_the_tasks_of_an_experiment_draw_apart():
    """No two tasks of three rounds (up to 100 specialists) share a seed."""
    tasks = [("generalist", 0, 1), ("baseline", 0, 1)] + [
        (role, index, round_)
        for round_ in (1, 2, 3)
        for role, count in (("specialist", 100), ("finetune", 1))
        for index in range(count)
    ]
    seeds = [SeedStreams.for_task(0, *task).task for task in tasks]
    assert len(set(seeds)) == len(seeds)
