"""Checkpoints in the store: model, optimizer, counters and RNG state, in one torch file.

Checkpoints are sha256-verified artifacts (`gsl_k8s.store.integrity`). They hold tensors and
plain Python values only, and load with `torch.load(weights_only=True)`: every Job can write
to the bucket, so a checkpoint must not be able to run code in the Jobs that read it.
"""

from __future__ import annotations

import io
import pickle
import random
import re
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


def rng_state() -> dict[str, Any]:
    """The process's torch, numpy and Python RNG states, as tensors and plain values."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put the RNGs back as `rng_state` found them."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(store: ArtifactStore, key: str, state: dict[str, Any]) -> None:
    """Write `state` (state dicts and counters) plus the process's RNG states to `key`."""
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_state()}, buffer)
    put_artifact(store, key, buffer.getvalue())


def load_checkpoint(store: ArtifactStore, key: str, restore_rng: bool = False) -> dict[str, Any]:
    """Read a checkpoint; with `restore_rng`, also put the RNGs back as they were.

    Only tensors and plain values are accepted: a checkpoint that pickles any other object
    is refused with a `StoreError`, never unpickled."""
    data = get_artifact(store, key)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise StoreError(
            f"{store.uri}/{key}: refused: the checkpoint pickles an object{what}, not only "
            "tensors and plain values; loading it could run code"
        ) from None
    except Exception as err:  # a truncated or foreign file: say which one
        raise StoreError(f"{store.uri}/{key}: not a readable checkpoint ({err})") from None
    if restore_rng:
        set_rng_state(state["rng"])
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
