"""The run record, `run.json`: when the controller first stored the run (unix time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsl_k8s.layout import RUN
from gsl_k8s.records.record import read_record, write_record
from gsl_k8s.store import ArtifactStore


@dataclass(frozen=True)
class RunRecord:
    """When the run was created."""

    created: float

    def to_json(self) -> dict[str, float]:
        return {"created": self.created}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(created=data["created"])


def read_run(store: ArtifactStore) -> RunRecord:
    """The run record."""
    return read_record(store, RUN, RunRecord.from_json)


def write_run(store: ArtifactStore, run: RunRecord) -> None:
    """Store the run record (once, when the run is created)."""
    write_record(store, RUN, run)
