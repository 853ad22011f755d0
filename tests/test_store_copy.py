"""`ArtifactStore.copy`: the controller pins the plateau and starts each later round by
copying a checkpoint within the store (S3 CopyObject, a file copy for file://), so the
operator's pod never holds a whole checkpoint."""

from __future__ import annotations

import pytest

from gsl_k8s import layout
from gsl_k8s.layout import GENERALIST
from gsl_k8s.orchestration.controller import Controller
from gsl_k8s.spec import parse_spec
from gsl_k8s.store import (
    FileStore,
    StoreError,
    copy_artifact,
    get_artifact,
    open_store,
    put_artifact,
)
from gsl_k8s.store.s3 import TRANSFER
from tests.conftest import TINY_SPEC
from tests.test_controller_pin import IdleBackend, write_evaluations


@pytest.fixture(params=["file", "s3"])
def any_store(request, tmp_path):
    if request.param == "file":
        return open_store(f"file://{tmp_path}")
    return open_store(request.getfixturevalue("s3_uri"))


def test_copy_artifact_publishes_the_same_verified_bytes(any_store):
    put_artifact(any_store, "a/step-1.pt", b"weights")
    digest = copy_artifact(any_store, "a/step-1.pt", "b/pinned.pt")
    assert get_artifact(any_store, "b/pinned.pt") == b"weights"
    assert any_store.read_bytes("b/pinned.pt.sha256").decode() == f"{digest}  pinned.pt\n"
    any_store.write_bytes("a/step-2.pt", b"unpublished")
    with pytest.raises(StoreError, match="no such artifact"):
        copy_artifact(any_store, "a/step-2.pt", "b/other.pt")
    with pytest.raises(StoreError, match="no such object") as missing:
        any_store.copy("a/none.pt", "b/none.pt")
    assert not missing.value.transient and not any_store.exists("b/none.pt")


def test_s3_copies_server_side_even_multipart(s3_uri):
    store = open_store(s3_uri)
    calls = []
    store.client.meta.events.register(
        "before-call.s3.*", lambda model, **_: calls.append(model.name)
    )
    big = bytes(range(256)) * (TRANSFER.multipart_threshold // 256 + 4096)  # 16 MiB + 1 MiB
    store.write_bytes("big.pt", big)
    calls.clear()
    store.copy("big.pt", "copy.pt")
    assert "UploadPartCopy" in calls and "GetObject" not in calls, calls
    assert store.read_bytes("copy.pt") == big


class ReadsRecorded(FileStore):
    """A file store that records the keys it reads."""

    def __init__(self, root):
        super().__init__(root)
        self.reads: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read_bytes(key)


def test_the_controller_pins_the_plateau_without_reading_the_checkpoint(tmp_path):
    store = ReadsRecorded(tmp_path)
    controller = Controller(parse_spec(TINY_SPEC), store, IdleBackend())
    write_evaluations(store, range(0, 6000, 1000))  # flat: the plateau is at step 2000
    for step in (2000, 3000):
        put_artifact(store, GENERALIST.checkpoint(step), f"weights at {step}".encode())
    controller.reconcile()
    assert get_artifact(store, layout.PLATEAU_CHECKPOINT) == b"weights at 2000"
    assert GENERALIST.checkpoint(2000) not in store.reads
