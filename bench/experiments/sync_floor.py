"""What a copy to S3 costs at least in Python: `visiona-storage sync` and `aws s3
sync` beside floors made with boto3 alone, over the same local files into Ceph,
runs alternating.

For small objects (the default, 1,000 x 1 MiB), on as many threads as sync uses:

- ``boto3 PUT``: each file's bytes read and sent with one ``put_object``: the
  least a copy in Python costs, and about what ``aws s3 sync`` does.
- ``boto3 PUT+HEAD``: each ``put_object`` conditional (``If-None-Match: *``, as
  sync creates an object only where there is none), then a ``head_object`` of
  what was written, as `Store.put` does on S3 so that it returns what `stat`
  would (S3's PUT answer carries no Last-Modified; DESIGN.md asks for it): the
  least sync's copies through `Store.put` cost.

For objects over 8 MiB (``--count 4 --mib 256``), aws's own engine, s3transfer
(8 MiB parts, 10 at once, across the files):

- ``s3transfer``: what ``aws s3 sync`` does, without its start-up and listing;
- ``s3transfer+SHA-256``: the same, each file first read through SHA-256, as
  sync hashes every byte to verify the copy.

    PYTHONPATH=bench .venv/bin/python bench/experiments/sync_floor.py \\
        [--count 1000] [--mib 1] [--runs 3] [--dir DIR]

Starts a throw-away Ceph cluster with scripts/ceph-rgw (root, Debian packages)
unless CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY and CEPH_RGW_SECRET_KEY point at one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3_vs_boto3 import boto3_client, ceph_env
from sync_vs_rclone import _awscli, _check_copied, _command, _dataset, _empty, _run, _tool_env

MiB = 1 << 20
WORKERS = 8
"""Threads of the floors: sync's default number of transfers."""
SMALL_TOOLS = ("ours", "aws", "boto3 PUT", "boto3 PUT+HEAD")
LARGE_TOOLS = ("ours", "aws", "s3transfer", "s3transfer+SHA-256")
FLOORS = {"boto3 PUT": "put", "boto3 PUT+HEAD": "put-head", "s3transfer": "transfer"}
FLOORS["s3transfer+SHA-256"] = "transfer-sha256"


def floor(root: str, bucket: str, head: bool) -> None:
    """Copy every object file under `root` to `bucket` with boto3 alone (this
    process's environment names the endpoint), on `WORKERS` threads."""
    client = boto3_client(dict(os.environ))
    files = [p for p in Path(root, "models").iterdir() if not p.name.endswith(".meta.json")]

    def copy(path: Path) -> None:
        key = f"models/{path.name}"
        if head:
            body, index = path.read_bytes(), {"index": path.stem}
            written = client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=index, IfNoneMatch="*")
            client.head_object(Bucket=bucket, Key=key, IfMatch=written["ETag"])
        else:
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata={"index": path.stem})

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(copy, files))


def transfer_floor(root: str, bucket: str, sha256: bool) -> None:
    """Copy every object file under `root` to `bucket` with s3transfer, as ``aws s3``
    does (its default part size and concurrency); with `sha256`, each file is first
    read through SHA-256, while the uploads before it run."""
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
    from s3transfer.manager import TransferManager  # noqa: PLC0415

    client = boto3_client(dict(os.environ))
    files = [p for p in Path(root, "models").iterdir() if not p.name.endswith(".meta.json")]
    config = TransferConfig(multipart_chunksize=8 * MiB, max_concurrency=10)
    with TransferManager(client, config) as manager:
        uploads = []
        for path in files:
            if sha256:
                digest = hashlib.sha256()
                with path.open("rb") as data:
                    while chunk := data.read(MiB):
                        digest.update(chunk)
            extra = {"Metadata": {"index": path.stem}}
            uploads.append(manager.upload(str(path), bucket, f"models/{path.name}", extra_args=extra))
        for upload in uploads:
            upload.result()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--mib", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--floor", choices=tuple(FLOORS.values()), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.floor in ("put", "put-head"):  # one floor's run, in a process of its own
        floor(options.root, options.bucket, options.floor == "put-head")
        return
    if options.floor:
        transfer_floor(options.root, options.bucket, options.floor == "transfer-sha256")
        return
    tools = LARGE_TOOLS if options.mib > 8 else SMALL_TOOLS
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        aws = _awscli(work)
        with ceph_env(os.path.join(work, "ceph")) as env:
            root = _dataset(Path(work, "data"), options.count, options.mib * MiB)
            client = boto3_client(env)
            seconds: dict[str, list[float]] = {tool: [] for tool in tools}
            for run in range(options.runs + 1):  # the first warms up
                for tool in tools:
                    bucket = f"floor-{tools.index(tool)}-{run}"
                    client.create_bucket(Bucket=bucket)
                    if tool in ("ours", "aws"):
                        command = _command(tool, root, bucket, env, aws, work)
                        tool_env = _tool_env(tool, env)
                    else:
                        kind = FLOORS[tool]
                        command = [
                            sys.executable,
                            __file__,
                            "--floor",
                            kind,
                            "--root",
                            str(root),
                            "--bucket",
                            bucket,
                        ]
                        tool_env = dict(env, PYTHONPATH=os.pathsep.join(sys.path))
                    took, _ = _run(command, tool_env)
                    _check_copied(client, bucket, root)
                    _empty(client, bucket)
                    if run:
                        seconds[tool].append(took)
    print(
        f"{options.count} x {options.mib} MiB, localfs to Ceph, {options.runs} runs: median (min-max) seconds"
    )
    for tool, times in seconds.items():
        print(f"  {tool:20} {statistics.median(times):6.2f} s ({min(times):.2f}-{max(times):.2f})")


if __name__ == "__main__":
    main()
