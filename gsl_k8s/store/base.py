"""The store interface every backend implements, and helpers over it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from gsl_k8s.errors import GSLError


class StoreError(GSLError):
    """A store that cannot be opened or an object that cannot be read; names the URI.
    Transient where the store may answer on a retry (a dropped connection, throttling)."""

    reason = "StoreError"


class ArtifactStore(Protocol):
    """Objects under one root URI. Keys are relative, slash-separated paths.

    Writes are atomic: a reader sees a whole object or none.
    """

    uri: str

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Keys under `prefix` (a directory), sorted, optionally only those after a key."""
        ...

    def copy(self, source: str, destination: str) -> None:
        """Copy an object within the store without passing its bytes through this process
        where the store can (S3 copies server-side); atomic like every write."""
        ...

    def delete(self, key: str) -> None: ...
    def local_dir(self, key: str) -> Path | None:
        """A local directory for tools that write files themselves, if the store is local."""
        ...


def read_json(store: ArtifactStore, key: str) -> dict:
    """A JSON object from the store."""
    return json.loads(store.read_bytes(key))


def write_json(store: ArtifactStore, key: str, obj: dict) -> None:
    """Store `obj` as indented JSON (atomically, like every write)."""
    store.write_bytes(key, json.dumps(obj, indent=2).encode())


def join_uri(base: str, name: str) -> str:
    """`base` with one more path component."""
    return base.rstrip("/") + "/" + name
