"""Progress records: JSON lines in the store, one object per record.

A record is `{"step": env step, "time": unix time, <metric>: value, ...}` with metrics named
`charts/*`, `losses/*` and `eval/*`. Object stores cannot append, so a writer buffers records
and writes them as immutable segments `<task>/progress/NNNNNNNN.jsonl`: on every evaluation
(the controller waits for those), every `flush_seconds`, and at the end. A reader lists only
the segments it has not seen.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gsl_k8s.store import ArtifactStore


def _segment_number(key: str) -> int:
    return int(key.rsplit("/", 1)[-1].split(".", 1)[0])


class ProgressWriter:
    """Append records under `prefix`, continuing after the segments already there."""

    def __init__(self, store: ArtifactStore, prefix: str, flush_seconds: float = 15.0):
        self.store = store
        self.prefix = prefix
        self.flush_seconds = flush_seconds
        existing = store.list(prefix)
        self._next_segment = _segment_number(existing[-1]) + 1 if existing else 0
        self._buffer: list[str] = []
        self._flushed = time.monotonic()

    def write(self, step: int, metrics: dict[str, Any], flush: bool = False) -> None:
        """Record `metrics` at env step `step`; `flush` publishes it at once."""
        self._buffer.append(json.dumps({"step": step, "time": time.time(), **metrics}))
        if flush or time.monotonic() - self._flushed >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as the next segment."""
        if self._buffer:
            key = f"{self.prefix}/{self._next_segment:08d}.jsonl"
            self.store.write_bytes(key, ("\n".join(self._buffer) + "\n").encode())
            self._next_segment += 1
            self._buffer = []
        self._flushed = time.monotonic()


class ProgressReader:
    """A task's records so far; each call reads only the segments that are new."""

    def __init__(self, store: ArtifactStore, prefix: str):
        self.store = store
        self.prefix = prefix
        self._records: list[dict[str, Any]] = []
        self._last_segment: str | None = None

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order."""
        for key in self.store.list(self.prefix, start_after=self._last_segment):
            lines = self.store.read_bytes(key).decode().splitlines()
            self._records += [json.loads(line) for line in lines]
            self._last_segment = key
        return self._records


def read_progress(store: ArtifactStore, prefix: str) -> list[dict[str, Any]]:
    """Every record of a task, in order."""
    return ProgressReader(store, prefix).records()
