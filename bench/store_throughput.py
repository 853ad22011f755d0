"""S3 store throughput vs raw boto3, to the same endpoint.

    python bench/store_throughput.py [--rounds 5] [--endpoint URL --bucket NAME]

Without --endpoint it starts moto's S3 server on 127.0.0.1. Each round uploads and
downloads a checkpoint-sized (100 MB) and a demo-shard-sized (8 MB) object twice: through
the store (`put_artifact`/`get_artifact`: multipart, sha256 record, verification on
load) and through raw boto3 `upload_file`/`download_file` with its default settings.
The two alternate within each round, so drift in the server hits both alike. Prints a
table of median throughputs and, last, the store/raw throughput ratio over all transfers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' servers

from gsl_k8s.store import get_artifact, put_artifact  # noqa: E402
from gsl_k8s.store.s3 import S3Options, S3Store  # noqa: E402
from tests.servers import moto_server  # noqa: E402

MB = 1 << 20
OBJECTS = {"checkpoint (100 MB)": 100 * MB, "demo shard (8 MB)": 8 * MB}


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def transfers(store, client, bucket: str, key: str, data: bytes, tmp: Path) -> dict:
    """The four timed transfers of one object: (path, direction) -> action."""
    source, target = Path(tmp, "source"), Path(tmp, "target")
    source.write_bytes(data)
    return {
        ("store", "upload"): lambda: put_artifact(store, key, data),
        ("store", "download"): lambda: get_artifact(store, key),
        ("raw", "upload"): lambda: client.upload_file(str(source), bucket, f"bench-raw/{key}"),
        ("raw", "download"): lambda: client.download_file(bucket, f"bench-raw/{key}", str(target)),
    }


def run(endpoint: str, bucket: str, rounds: int) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    store = S3Store(f"s3://{bucket}/bench-store", S3Options(endpoint_url=endpoint))
    seconds: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in OBJECTS.items():
            data = os.urandom(size)
            key = name.split()[0]
            actions = transfers(store, client, bucket, key, data, Path(tmp))
            for _ in range(rounds):
                for (path, direction), action in actions.items():
                    seconds.setdefault((name, direction, path), []).append(timed(action))
            if get_artifact(store, key) != data or Path(tmp, "target").read_bytes() != data:
                raise SystemExit(f"{name}: a round trip changed the bytes")

    print(f"{'object':<22}{'direction':<11}{'store MB/s':>12}{'raw MB/s':>10}{'ratio':>8}")
    totals = {"store": 0.0, "raw": 0.0}
    for name, size in OBJECTS.items():
        for direction in ("upload", "download"):
            store_s = median(seconds[name, direction, "store"])
            raw_s = median(seconds[name, direction, "raw"])
            totals["store"] += sum(seconds[name, direction, "store"])
            totals["raw"] += sum(seconds[name, direction, "raw"])
            print(
                f"{name:<22}{direction:<11}{size / MB / store_s:>12.0f}"
                f"{size / MB / raw_s:>10.0f}{raw_s / store_s:>8.2f}"
            )
    # Both paths moved the same bytes, so the throughput ratio is the inverse time ratio.
    print(f"store/raw throughput ratio: {totals['raw'] / totals['store']:.2f} (target >= 0.8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--endpoint", help="an S3 endpoint (default: start moto's server)")
    parser.add_argument("--bucket", default="gsl-bench", help="with --endpoint: an existing bucket")
    args = parser.parse_args()
    if args.endpoint:
        run(args.endpoint, args.bucket, args.rounds)
        return
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    with moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=args.bucket)
        run(endpoint, args.bucket, args.rounds)


if __name__ == "__main__":
    main()
