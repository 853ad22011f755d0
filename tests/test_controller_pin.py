"""The controller's plateau decision, and pinning the plateau checkpoint: once, verified, and
robust to pruned checkpoints."""

from gsl_k8s import layout
from gsl_k8s.layout import GENERALIST
from gsl_k8s.orchestration.controller import Controller, Stage
from gsl_k8s.records.progress import ProgressWriter
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import get_artifact, list_artifacts, open_store, put_artifact
from gsl_k8s.trainer.checkpoint import prune_checkpoints
from tests.conftest import TINY_SPEC, merge


class IdleBackend:
    """Starts nothing: the test plays the generalist by writing its records."""

    def __init__(self):
        self.started = []

    def phases(self):
        return {}

    def start(self, task):
        self.started.append(task)


def write_evaluations(store, steps):
    progress = ProgressWriter(store, GENERALIST.progress)
    for step in steps:
        per_variation = {str(v): 0.5 for v in range(6)}
        record = {"eval/success_rate": 0.5, "eval/return": 1.0}
        progress.write(step, {**record, "eval/per_variation": per_variation}, flush=True)


def test_a_pruned_plateau_checkpoint_is_replaced_by_the_next_evaluations(tmp_path):
    store = open_store(str(tmp_path))
    backend = IdleBackend()
    controller = Controller(parse_spec(TINY_SPEC), store, backend)
    write_evaluations(store, range(0, 6000, 1000))  # flat: the plateau is at step 2000
    for step in (3000, 4000, 5000):  # the generalist already pruned 0..2000
        put_artifact(store, GENERALIST.checkpoint(step), f"weights at {step}".encode())

    status = controller.reconcile()

    assert status.stage is Stage.GENERALIST and "plateau at step 2000" in status.message
    assert [task for task in backend.started if task.role == "generalist"] == [GENERALIST]
    pinned = store.read_bytes(layout.PLATEAU_PINNED)
    assert b'"step": 3000' in pinned and b'"plateau_step": 2000' in pinned
    assert get_artifact(store, layout.PLATEAU_CHECKPOINT) == b"weights at 3000"
    assert store.exists(GENERALIST.stop)

    # Pinned once: a later reconcile never rewrites it, even if newer checkpoints appear.
    put_artifact(store, GENERALIST.checkpoint(2000), b"late")
    controller.reconcile()
    assert get_artifact(store, layout.PLATEAU_CHECKPOINT) == b"weights at 3000"
    assert list_artifacts(store, "plateau") == [layout.PLATEAU_CHECKPOINT]


def test_pruning_keeps_the_newest_and_the_protected_checkpoint(tmp_path):
    store = open_store(str(tmp_path))
    for step in range(0, 8000, 1000):
        put_artifact(store, GENERALIST.checkpoint(step), b"x")
    prune_checkpoints(store, GENERALIST.checkpoints, 3, protected=GENERALIST.checkpoint(2000))
    kept = list_artifacts(store, GENERALIST.checkpoints, ".pt")
    assert kept == [GENERALIST.checkpoint(s) for s in (2000, 5000, 6000, 7000)]
    assert not store.exists(GENERALIST.checkpoint(1000))  # the data too, not just the record


def test_the_success_rate_noise_comes_from_the_episode_count_in_the_spec(tmp_path):
    """Identical evaluations have no scatter, but 2 episodes x 6 variations per evaluation
    leave a success rate of 0.5 a standard error of 0.14: not shown flat. The return has no
    such floor: the same records are flat."""
    plateau = {"window": 3, "minImprovement": 0.05, "confidence": 2.0, "patience": 1}
    for metric, expected in (("success_rate", None), ("return", 2000)):
        spec = merge(
            TINY_SPEC, {"spec": {"generalist": {"plateau": {**plateau, "metric": metric}}}}
        )
        store = open_store(str(tmp_path / metric))
        write_evaluations(store, range(0, 6000, 1000))
        status = Controller(parse_spec(spec), store, IdleBackend()).reconcile()
        if expected is None:
            assert status.message == (
                "training until plateau, 0.50 at step 5000, rise +0.00 (se 0.20) over the window"
            )
            assert not store.exists(GENERALIST.stop)
        else:
            assert status.message == f"plateau at step {expected}; stopping"
