"""Artifacts: objects published with a sha256 record and verified on every load.

`put_artifact` uploads the object, then publishes it by writing `<key>.sha256` (in
`sha256sum` format, so `sha256sum -c` works in a local run directory). Readers only see
published artifacts, so an upload that died half way is never loaded. `get_artifact`
refuses an object whose bytes do not match its record: a flipped bit or a truncated
object is an error, never a silent load.

Each artifact has its own record because many processes write artifacts at once and S3
has no atomic read-modify-write; `write_manifest` gathers the records into one index.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from gsl_k8s.store.base import ArtifactStore, StoreError, write_json

RECORD_SUFFIX = ".sha256"


def _record_key(key: str) -> str:
    return key + RECORD_SUFFIX


def put_artifact(store: ArtifactStore, key: str, data: bytes) -> str:
    """Upload `data`, then publish it with its sha256 record; returns the digest."""
    digest = hashlib.sha256(data).hexdigest()
    store.write_bytes(key, data)
    _publish(store, key, digest)
    return digest


def _publish(store: ArtifactStore, key: str, digest: str) -> None:
    """Write the artifact's sha256 record, which makes it visible to readers."""
    name = key.rsplit("/", 1)[-1]
    store.write_bytes(_record_key(key), f"{digest}  {name}\n".encode())


def is_published(store: ArtifactStore, key: str) -> bool:
    """Whether the artifact's upload completed and was published."""
    return store.exists(_record_key(key))


class NoSuchArtifact(StoreError):
    """The artifact is not published (never, or no longer: pruned)."""


def recorded_digest(store: ArtifactStore, key: str) -> str:
    """The sha256 published for `key`."""
    try:
        record = store.read_bytes(_record_key(key))
    except StoreError:
        if is_published(store, key):  # the record exists: the read failed for another reason
            raise
        raise NoSuchArtifact(
            f"{store.uri}/{key}: no such artifact (no published sha256 record)"
        ) from None
    return record.split()[0].decode()


def get_artifact(store: ArtifactStore, key: str) -> bytes:
    """The artifact's bytes, verified against its published sha256."""
    expected = recorded_digest(store, key)
    data = store.read_bytes(key)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise StoreError(
            f"{store.uri}/{key}: corrupted or truncated: its {len(data):,} bytes have sha256 "
            f"{actual[:16]}..., but {expected[:16]}... was published"
        )
    return data


def copy_artifact(store: ArtifactStore, source: str, destination: str) -> str:
    """Publish a copy of a published artifact, copied within the store (`ArtifactStore.copy`:
    server-side on S3), under the source's digest, which every load of the copy checks;
    returns the digest."""
    digest = recorded_digest(store, source)
    store.copy(source, destination)
    _publish(store, destination, digest)
    return digest


def list_artifacts(store: ArtifactStore, prefix: str, suffix: str = "") -> list[str]:
    """Published artifact keys under `prefix` ending in `suffix`, sorted."""
    ending = suffix + RECORD_SUFFIX
    return [k.removesuffix(RECORD_SUFFIX) for k in store.list(prefix) if k.endswith(ending)]


def delete_artifact(store: ArtifactStore, key: str) -> None:
    """Unpublish, then delete."""
    store.delete(_record_key(key))
    store.delete(key)


def write_manifest(store: ArtifactStore, key: str) -> dict[str, str]:
    """Write `{"sha256": {artifact key: digest}}` for every published artifact to `key`;
    one that a trainer unpublished after the listing (an old checkpoint, pruned) is left
    out."""

    def digest(artifact: str) -> str | None:
        try:
            return recorded_digest(store, artifact)
        except NoSuchArtifact:
            return None

    artifacts = list_artifacts(store, "")
    with ThreadPoolExecutor(max_workers=16) as pool:
        digests = pool.map(digest, artifacts)
        entries = {a: d for a, d in zip(artifacts, digests, strict=True) if d is not None}
    write_json(store, key, {"sha256": entries})
    return entries
