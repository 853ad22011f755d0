"""Progress records: one JSON object per line in the store, mirrored to TensorBoard."""

from __future__ import annotations

import json
import time
from typing import Any

from gsl_k8s.store import ArtifactStore


class ProgressLog:
    """Append metrics (`charts/...`, `losses/...`, `eval/...`) at an env step."""

    def __init__(self, store: ArtifactStore, key: str, tensorboard_dir: str | None = None):
        self.store = store
        self.key = key
        self.writer = None
        local = store.local_dir(tensorboard_dir) if tensorboard_dir else None
        if local is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(local))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record `metrics` at env step `step`."""
        record = {"step": step, "time": time.time(), **metrics}
        self.store.append_text(self.key, json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_progress(store: ArtifactStore, key: str) -> list[dict[str, Any]]:
    """All complete records of a progress object (an unfinished last line is skipped)."""
    if not store.exists(key):
        return []
    records = []
    for line in store.read_bytes(key).decode().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
