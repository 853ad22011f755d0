"""The generalist's variation features, `generalist/features.json`, for `partition:
features`: a vector per variation, and where the vectors came from (`family` where the env
family describes its variations, `encoder` for the agent's embedding). Written by the
generalist before its result; read by the controller when it partitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsl_k8s.layout import GENERALIST_FEATURES
from gsl_k8s.records.record import read_record, write_record
from gsl_k8s.store import ArtifactStore


@dataclass(frozen=True)
class VariationFeatures:
    """A feature vector per variation, and their source."""

    source: str
    features: dict[int, list[float]]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "features": {str(v): x for v, x in self.features.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariationFeatures:
        features = {int(v): list(vector) for v, vector in data["features"].items()}
        return cls(source=data["source"], features=features)


def read_features(store: ArtifactStore) -> VariationFeatures:
    """The generalist's variation features."""
    return read_record(store, GENERALIST_FEATURES, VariationFeatures.from_json)


def write_features(store: ArtifactStore, features: VariationFeatures) -> None:
    """Store the generalist's variation features."""
    write_record(store, GENERALIST_FEATURES, features)
