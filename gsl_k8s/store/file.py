"""A store in a local directory (`file://` URIs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from gsl_k8s.store.base import StoreError

_TEMPORARY = ".tmp-"


class FileStore:
    """Objects as files under a root directory; writes go through a temporary file."""

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
        except (FileNotFoundError, IsADirectoryError):
            raise StoreError(f"{self.uri}/{key}: no such object") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Publish an object atomically (write a temporary file, then rename it)."""
        with self._publishing(key) as tmp:
            tmp.write(data)

    def copy(self, source: str, destination: str) -> None:
        """Copy an object (see `ArtifactStore.copy`); StoreError if it does not exist."""
        path = self._path(source)
        if not path.is_file():
            raise StoreError(f"{self.uri}/{source}: no such object")
        with self._publishing(destination) as tmp, path.open("rb") as original:
            shutil.copyfileobj(original, tmp)

    @contextmanager
    def _publishing(self, key: str) -> Iterator[IO[bytes]]:
        """A temporary file beside `key`'s, renamed to it once written."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=_TEMPORARY, delete=False) as tmp:
            yield tmp
        os.replace(tmp.name, path)

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        return self._path(key).is_file()

    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Keys under `prefix`, sorted (temporary files of unfinished writes excluded)."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(_TEMPORARY)
        )
        return [k for k in keys if k > start_after] if start_after else keys

    def delete(self, key: str) -> None:
        """Remove an object if it exists."""
        self._path(key).unlink(missing_ok=True)

    def local_dir(self, key: str) -> Path | None:
        """The directory for `key` (see `ArtifactStore.local_dir`)."""
        return self._path(key)
