"""The S3 store against a real S3 HTTP server (moto's), on 127.0.0.1. A whole `gsl run` on
S3, its layout and manifest, is tests/test_recovery.py's."""

import hashlib
import os
import subprocess
import sys
import threading
import time

import boto3
import pytest

from gsl_k8s.errors import EXIT_TEMPORARY
from gsl_k8s.store import StoreError, get_artifact, open_store, put_artifact, write_manifest
from gsl_k8s.store.integrity import delete_artifact, is_published
from gsl_k8s.store.s3 import S3Options, S3Store
from gsl_k8s.trainer.checkpoint import load_checkpoint, save_checkpoint
from tests.servers import FlakyProxy, free_port, moto_server


def raw_client():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])


def bucket_and_root(uri):
    bucket, root = uri.removeprefix("s3://").split("/", 1)
    return bucket, root


def test_round_trip_listing_and_prefix(s3_uri):
    store = open_store(s3_uri)
    store.write_bytes("a/b/c.bin", b"payload")
    store.write_bytes("a/d.json", b"{}")
    store.write_bytes("e.txt", b"e")
    assert store.read_bytes("a/b/c.bin") == b"payload"
    assert store.list("a") == ["a/b/c.bin", "a/d.json"]
    assert store.list("a", start_after="a/b/c.bin") == ["a/d.json"]
    assert store.list("") == ["a/b/c.bin", "a/d.json", "e.txt"]
    assert store.exists("a/d.json") and not store.exists("a/missing")
    store.delete("a/d.json")
    assert store.list("a") == ["a/b/c.bin"]
    bucket, root = bucket_and_root(s3_uri)
    keys = [o["Key"] for o in raw_client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [f"{root}/a/b/c.bin", f"{root}/e.txt"]  # all under the prefix
    with pytest.raises(StoreError, match="no such object"):
        store.read_bytes("a/missing")
    with pytest.raises(StoreError, match="escapes the store"):
        store.read_bytes("../other/x")


def test_50mb_artifact_round_trip_is_multipart_and_verified(s3_uri):
    store = open_store(s3_uri)
    data = os.urandom(50 * 2**20)
    digest = put_artifact(store, "generalist/checkpoints/big.pt", data)
    assert digest == hashlib.sha256(data).hexdigest()
    bucket, root = bucket_and_root(s3_uri)
    head = raw_client().head_object(Bucket=bucket, Key=f"{root}/generalist/checkpoints/big.pt")
    assert head["ETag"].strip('"').endswith("-4")  # 50 MB in 16 MB parts
    assert get_artifact(store, "generalist/checkpoints/big.pt") == data


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:],  # one flipped bit
        lambda data: data[: len(data) // 2],  # truncated
    ],
    ids=["flipped", "truncated"],
)
def test_a_damaged_checkpoint_fails_to_load_with_a_clear_message(s3_uri, damage):
    store = open_store(s3_uri)
    save_checkpoint(store, "plateau/checkpoint.pt", {"model": {"w": list(range(1000))}})
    assert load_checkpoint(store, "plateau/checkpoint.pt")["model"]["w"][999] == 999
    bucket, root = bucket_and_root(s3_uri)
    key = f"{root}/plateau/checkpoint.pt"
    original = raw_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    raw_client().put_object(Bucket=bucket, Key=key, Body=damage(original))
    with pytest.raises(StoreError, match=r"plateau/checkpoint.pt: corrupted or truncated"):
        load_checkpoint(store, "plateau/checkpoint.pt")


def test_an_unpublished_upload_is_invisible(s3_uri):
    """An object without its sha256 record (an upload that died) is never loaded."""
    store = open_store(s3_uri)
    store.write_bytes("demos/0/shard-0000.npz", b"half an upload")
    with pytest.raises(StoreError, match="no such artifact"):
        get_artifact(store, "demos/0/shard-0000.npz")


def test_the_manifest_leaves_out_an_artifact_pruned_while_it_is_written(s3_uri):
    """A trainer may prune an old checkpoint between the manifest's listing and its reading
    of that checkpoint's record: the manifest leaves it out instead of failing."""
    store = open_store(s3_uri)
    put_artifact(store, "task/checkpoints/step-1.pt", b"old")
    put_artifact(store, "task/checkpoints/step-2.pt", b"new")

    class PrunedAfterListing:
        """The store, with the old checkpoint pruned right after each listing."""

        def __getattr__(self, name):
            return getattr(store, name)

        def list(self, prefix, start_after=None):
            keys = store.list(prefix, start_after)
            if is_published(store, "task/checkpoints/step-1.pt"):
                delete_artifact(store, "task/checkpoints/step-1.pt")
            return keys

    entries = write_manifest(PrunedAfterListing(), "manifest.json")
    assert entries == {"task/checkpoints/step-2.pt": hashlib.sha256(b"new").hexdigest()}
    with pytest.raises(StoreError, match="no such artifact"):
        get_artifact(store, "task/checkpoints/step-1.pt")


def test_transient_faults_are_retried(s3_uri):
    """Behind a proxy that fails every third request (503, 500, dropped connection), a
    multipart round trip still succeeds."""
    proxy = FlakyProxy(os.environ["AWS_ENDPOINT_URL_S3"])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        store = S3Store(s3_uri, S3Options(endpoint_url=proxy.endpoint))
        data = os.urandom(40 * 2**20)
        put_artifact(store, "x/checkpoint.pt", data)
        assert get_artifact(store, "x/checkpoint.pt") == data
        assert store.list("x") == ["x/checkpoint.pt", "x/checkpoint.pt.sha256"]
    finally:
        proxy.shutdown()
    assert proxy.faults_injected >= 3


def test_unreachable_endpoint_is_one_clear_error(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    started = time.time()
    with pytest.raises(StoreError) as error:
        open_store("s3://bucket/prefix")
    assert f"s3://bucket/prefix: cannot reach S3 at {endpoint}" in str(error.value)
    assert time.time() - started < 30


def test_missing_bucket_is_named(s3_uri):
    with pytest.raises(StoreError, match="s3://no-such-bucket/x: bucket 'no-such-bucket' does"):
        open_store("s3://no-such-bucket/x")


def test_bad_credentials_are_named(monkeypatch):
    with moto_server(auth=True) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        with pytest.raises(StoreError, match=r"s3://bucket/p: access denied .*credentials"):
            open_store("s3://bucket/p")


def test_missing_credentials_are_named(monkeypatch, s3_endpoint, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials"):
        open_store("s3://bucket/p")


def test_cli_reports_a_bad_storage_uri_in_one_line(write_spec, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    proc = subprocess.run(
        [sys.executable, "-m", "gsl_k8s", "run", str(write_spec()), "--storage", "s3://b/p"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_TEMPORARY  # no answer: it may come on a retry
    assert proc.stderr.startswith("gsl: error: s3://b/p/tiny: cannot reach S3")
    assert "Traceback" not in proc.stderr
