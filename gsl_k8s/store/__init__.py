"""Artifact stores: where an experiment's checkpoints, demos and progress records live.

One interface (`ArtifactStore`), two implementations: a local directory (`file://`) and an
S3 bucket (`s3://`). Keys are relative, slash-separated paths under the experiment's
root URI (`gsl_k8s.layout` documents the layout). Checkpoints and demos go through
`integrity` (sha256-verified artifacts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from gsl_k8s.store.base import ArtifactStore, StoreError, join_uri, read_json, write_json
from gsl_k8s.store.file import FileStore
from gsl_k8s.store.integrity import (
    copy_artifact,
    delete_artifact,
    get_artifact,
    is_published,
    list_artifacts,
    put_artifact,
    write_manifest,
)

if TYPE_CHECKING:
    from gsl_k8s.store.s3 import S3Options

__all__ = [
    "ArtifactStore",
    "FileStore",
    "StoreError",
    "copy_artifact",
    "delete_artifact",
    "get_artifact",
    "is_published",
    "join_uri",
    "list_artifacts",
    "open_store",
    "put_artifact",
    "read_json",
    "write_json",
    "write_manifest",
]


def open_store(uri: str, s3_options: S3Options | None = None) -> ArtifactStore:
    """The store at `uri`: `s3://bucket/prefix`, `file:///abs/path`, `file://relative/path`
    or a plain path. S3 settings default to the environment's (`S3Options.from_env`)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        from gsl_k8s.store.s3 import S3Store

        return S3Store(uri, s3_options)
    if parsed.scheme in ("", "file"):
        path = uri.removeprefix("file://") if parsed.scheme else uri
        if not path:
            raise StoreError(f"{uri}: a file:// URI needs a path")
        return FileStore(path)
    raise StoreError(f"{uri}: unsupported storage scheme {parsed.scheme!r} (use file:// or s3://)")
