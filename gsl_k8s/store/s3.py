"""A store in an S3 bucket (`s3://bucket/prefix` URIs), through boto3.

Credentials come from the standard AWS chain (environment, profile, instance or IRSA
role). S3-compatible servers (MinIO, Ceph, moto) need an endpoint URL and usually
path-style addressing; both come from `S3Options`, which child processes inherit
through environment variables (`S3Options.to_env`).

Large objects move in parallel multipart transfers. Throttling, 5xx answers and
dropped connections are retried with exponential backoff (botocore's "standard" retry
mode). Every other failure becomes one `StoreError` naming the URI, transient where a
later retry may succeed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gsl_k8s.store.base import StoreError

AddressingStyle = Literal["auto", "path", "virtual"]
MiB = 1 << 20
TRANSFER = TransferConfig(
    multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8
)
_ACCESS_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "429"}
SERVER_ERROR = 500


@dataclass(frozen=True)
class S3Options:
    """How to reach the S3 service; `None` fields fall back to boto3's own defaults."""

    endpoint_url: str | None = None
    addressing_style: AddressingStyle | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, **overrides) -> S3Options:
        """Options from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`,
        `GSL_S3_ADDRESSING_STYLE` and `AWS_REGION`, with non-None `overrides` on top."""
        env = os.environ
        options = cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            addressing_style=env.get("GSL_S3_ADDRESSING_STYLE"),  # type: ignore[arg-type]
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**options.__dict__, **given})

    def to_env(self) -> dict[str, str]:
        """Environment variables that make `from_env` in a child process return `self`."""
        env = {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "GSL_S3_ADDRESSING_STYLE": self.addressing_style,
            "AWS_REGION": self.region,
        }
        return {k: v for k, v in env.items() if v}

    def client(self, session: boto3.session.Session, max_attempts: int):
        """An S3 client: addressing style (path-style for custom endpoints), retries."""
        style = self.addressing_style or ("path" if self.endpoint_url else "auto")
        config = Config(
            s3={"addressing_style": style},
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=TRANSFER.max_request_concurrency,
        )
        return session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


class S3Store:
    """Objects under `s3://bucket/prefix`. Opening checks that the bucket is reachable."""

    def __init__(self, uri: str, options: S3Options | None = None, max_attempts: int = 8):
        parsed = urlparse(uri)
        self.uri = uri.rstrip("/")
        self.bucket = parsed.netloc
        self.root = parsed.path.strip("/")
        if not self.bucket:
            raise StoreError(f"{uri}: an s3:// URI needs a bucket (s3://bucket/prefix)")
        self.options = options or S3Options.from_env()
        session = boto3.session.Session()
        self.client = self.options.client(session, max_attempts)
        with self._errors():  # one quick check, so a bad URI fails before any work starts
            self.options.client(session, max_attempts=2).head_bucket(Bucket=self.bucket)

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"{self.uri}: key {key!r} escapes the store")
        return f"{self.root}/{key}" if self.root else key

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn botocore failures into one StoreError naming the URI (and key)."""
        try:
            yield
        except (BotoCoreError, ClientError) as err:
            raise self._translate(err, key) from None

    def _translate(self, err: BotoCoreError | ClientError, key: str | None) -> StoreError:
        """One StoreError naming the URI; transient where S3 may answer on a retry (after
        botocore's own retries): no connection, throttling, a 5xx answer."""
        where = f"{self.uri}/{key}" if key else self.uri
        if isinstance(err, NoCredentialsError):
            return StoreError(
                f"{where}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or run with an instance or IRSA role)"
            )
        if isinstance(err, BotoCoreError):
            endpoint = self.client.meta.endpoint_url
            return StoreError(f"{where}: cannot reach S3 at {endpoint} ({err})", transient=True)
        code = _error_code(err)
        if code == "NoSuchBucket" or (code in _NOT_FOUND and key is None):
            return StoreError(f"{where}: bucket {self.bucket!r} does not exist")
        if code in _NOT_FOUND:
            return StoreError(f"{where}: no such object")
        if code in _ACCESS_DENIED:
            return StoreError(
                f"{where}: access denied ({code}); check the credentials "
                "and the bucket's permissions"
            )
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        transient = status >= SERVER_ERROR or code in _THROTTLED
        return StoreError(f"{where}: S3 error {code}: {err}", transient=transient)

    def read_bytes(self, key: str) -> bytes:
        """The object's content; StoreError if it does not exist. Small objects take one
        request; large ones are fetched again in parallel ranges."""
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            if response["ContentLength"] < TRANSFER.multipart_threshold:
                return response["Body"].read()
            response["Body"].close()
            buffer = io.BytesIO()
            self.client.download_fileobj(self.bucket, self._key(key), buffer, Config=TRANSFER)
            return buffer.getvalue()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Upload an object; S3 makes it visible only once the (multipart) upload completes."""
        with self._errors(key):
            self.client.upload_fileobj(
                io.BytesIO(data), self.bucket, self._key(key), Config=TRANSFER
            )

    def copy(self, source: str, destination: str) -> None:
        """Copy an object server-side (CopyObject; multipart UploadPartCopy for large ones):
        its bytes never pass through this process."""
        origin = {"Bucket": self.bucket, "Key": self._key(source)}
        with self._errors(source):
            self.client.copy(origin, self.bucket, self._key(destination), Config=TRANSFER)

    def exists(self, key: str) -> bool:
        """Whether the object exists."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if _error_code(err) in _NOT_FOUND:
                return False
            raise self._translate(err, key) from None
        except BotoCoreError as err:
            raise self._translate(err, key) from None
        return True

    def list(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Keys under `prefix`, sorted."""
        full = self._key(prefix).rstrip("/") + "/" if prefix else self._key("")
        request = {"Bucket": self.bucket, "Prefix": full}
        if start_after:
            request["StartAfter"] = self._key(start_after)
        strip = len(self.root) + 1 if self.root else 0
        keys = []
        with self._errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(**request):
                keys += [item["Key"][strip:] for item in page.get("Contents", [])]
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove an object if it exists."""
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def local_dir(self, key: str) -> Path | None:
        """None: objects live in the bucket only."""
        return None
