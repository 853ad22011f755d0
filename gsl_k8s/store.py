"""Artifact stores: where an experiment's checkpoints, demos and progress records live.

Keys are relative, slash-separated paths under the experiment's root URI (see
`gsl_k8s.layout` for the layout). Writes are atomic: a reader sees a whole object or none.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class StoreError(RuntimeError):
    """A store that cannot be opened or an object that cannot be read; names the URI."""


class ArtifactStore(Protocol):
    """The store interface shared by every backend."""

    uri: str

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def append_text(self, key: str, text: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def local_dir(self, key: str) -> Path | None: ...


class FileStore:
    """A store in a local directory (`file://` URIs)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StoreError(f"{self.uri}: key {key!r} escapes the store")
        return path

    def read_bytes(self, key: str) -> bytes:
        """The object's content; StoreError if it does not exist."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{self.uri}/{key}: no such object") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish an object atomically (write a temporary file, then rename it)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)

    def append_text(self, key: str, text: str) -> None:
        """Append to a text object (progress records), creating it if needed."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(text)

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted (temporary files of unfinished writes excluded)."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def delete(self, key: str) -> None:
        """Remove an object if it exists."""
        self._path(key).unlink(missing_ok=True)

    def local_dir(self, key: str) -> Path | None:
        """A local directory for tools that write files themselves (TensorBoard)."""
        return self._path(key)


def read_json(store: ArtifactStore, key: str) -> dict:
    """A JSON object from the store."""
    return json.loads(store.read_bytes(key))


def write_json(store: ArtifactStore, key: str, obj: dict) -> None:
    """Store `obj` as indented JSON (atomically, like every write)."""
    store.write_bytes(key, json.dumps(obj, indent=2).encode())


def open_store(uri: str) -> ArtifactStore:
    """The store at `uri`: `file:///abs/path`, `file://relative/path` or a plain path."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = uri.removeprefix("file://") if parsed.scheme else uri
        if not path:
            raise StoreError(f"{uri}: a file:// URI needs a path")
        return FileStore(path)
    raise StoreError(f"{uri}: unsupported storage scheme {parsed.scheme!r} (use file://)")


def join_uri(base: str, name: str) -> str:
    """`base` with one more path component."""
    return base.rstrip("/") + "/" + name
