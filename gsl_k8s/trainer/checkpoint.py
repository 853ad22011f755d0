"""Checkpoints in the store: model, optimizer, counters and RNG state, in one torch file.

Checkpoints are sha256-verified artifacts (`gsl_k8s.store.integrity`)."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from gsl_k8s.store import (
    ArtifactStore,
    StoreError,
    delete_artifact,
    get_artifact,
    list_artifacts,
    put_artifact,
)


def save_checkpoint(store: ArtifactStore, key: str, state: dict[str, Any]) -> None:
    """Write `state` (state dicts and counters) plus the process's RNG states to `key`."""
    rng = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng}, buffer)
    put_artifact(store, key, buffer.getvalue())


def load_checkpoint(store: ArtifactStore, key: str, restore_rng: bool = False) -> dict[str, Any]:
    """Read a checkpoint; with `restore_rng`, also put the RNGs back as they were."""
    data = get_artifact(store, key)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise StoreError(f"{store.uri}/{key}: not a readable checkpoint ({err})") from None
    if restore_rng:
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
    return state


def latest_checkpoint(store: ArtifactStore, prefix: str) -> str | None:
    """The newest checkpoint key under `prefix` (keys sort by step), or None."""
    keys = list_artifacts(store, prefix, ".pt")
    return keys[-1] if keys else None


def prune_checkpoints(
    store: ArtifactStore, prefix: str, keep: int, protected: str | None = None
) -> None:
    """Delete all but the newest `keep` checkpoints under `prefix`, and `protected`."""
    for key in list_artifacts(store, prefix, ".pt")[:-keep]:
        if key != protected:
            delete_artifact(store, key)
