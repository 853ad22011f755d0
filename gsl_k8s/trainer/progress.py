"""Progress records of a training task, mirrored to TensorBoard and Prometheus.

The records themselves (JSON lines in the store) are `gsl_k8s.records.progress`; this adds
the trainer's two mirrors: TensorBoard event files (file:// stores) and `TrainerMetrics`.
"""

from __future__ import annotations

from typing import Any

from gsl_k8s.records.progress import ProgressWriter
from gsl_k8s.store import ArtifactStore
from gsl_k8s.trainer.metrics import TrainerMetrics


class ProgressLog:
    """Record metrics (`charts/...`, `losses/...`, `eval/...`) at an env step."""

    def __init__(
        self,
        store: ArtifactStore,
        prefix: str,
        tensorboard_dir: str | None = None,
        metrics: TrainerMetrics | None = None,
        flush_seconds: float = 15.0,
    ):
        self.records = ProgressWriter(store, prefix, flush_seconds)
        self.metrics = metrics
        self.writer = None
        local = store.local_dir(tensorboard_dir) if tensorboard_dir else None
        if local is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(local))

    def log(self, step: int, metrics: dict[str, Any], flush: bool = False) -> None:
        """Record `metrics` at env step `step`; `flush` publishes it at once."""
        if self.metrics is not None:
            self.metrics.observe(step, metrics)
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(name, value, step)
        self.records.write(step, metrics, flush)

    def flush(self) -> None:
        """Publish the buffered records now."""
        self.records.flush()

    def close(self) -> None:
        """Flush, and close TensorBoard."""
        self.records.flush()
        if self.writer is not None:
            self.writer.close()
