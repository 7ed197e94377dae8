"""S3Store against raw boto3 on a real Ceph RGW, in the same run: put and get of 64 MiB
and 1 GiB, MiB/s and peak RSS (each measured in its own process).

    .venv/bin/python bench/s3_vs_boto3.py [--runs 3] [--sizes 64,1024]

Starts a throw-away Ceph cluster with scripts/ceph-rgw (root, Debian packages) unless
CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY and CEPH_RGW_SECRET_KEY point at one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import peak_rss_mib

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def _client(env: dict[str, str]) -> Any:
    import boto3  # noqa: PLC0415 - measured in the child only
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client(
        "s3",
        endpoint_url=env["CEPH_RGW_ENDPOINT"],
        aws_access_key_id=env["CEPH_RGW_ACCESS_KEY"],
        aws_secret_access_key=env["CEPH_RGW_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def child(mode: str, source: str, bucket: str) -> None:
    """One measurement in a fresh process: prints seconds and peak RSS as JSON."""
    env = dict(os.environ)
    import visiona_storage as vs  # noqa: PLC0415

    size = os.path.getsize(source)
    store = vs.S3Store(
        bucket,
        endpoint=env["CEPH_RGW_ENDPOINT"],
        access_key=env["CEPH_RGW_ACCESS_KEY"],
        secret_key=env["CEPH_RGW_SECRET_KEY"],
    )
    client = _client(env)
    key = f"bench/{mode.split('-', maxsplit=1)[0]}-{size}"
    start = time.perf_counter()
    if mode == "ours-put":
        with open(source, "rb") as f:
            store.put(key, f, size=size)
    elif mode == "boto3-put":
        with open(source, "rb") as f:
            client.upload_fileobj(f, bucket, key)
    elif mode == "ours-get":
        with store.get(key) as reader:
            while reader.read(MiB):
                pass
    elif mode == "boto3-get":
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for _ in body.iter_chunks(MiB):
            pass
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def _run_child(mode: str, source: str, bucket: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, source, bucket],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _start_ceph(folder: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/ceph-rgw"), "start", folder], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="64,1024", help="object sizes in MiB")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return

    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ)
        started_here = "CEPH_RGW_ENDPOINT" not in env
        if started_here:
            env.update(_start_ceph(os.path.join(folder, "ceph")))
        try:
            bucket = "bench"
            _client(env).create_bucket(Bucket=bucket)
            endpoint = env["CEPH_RGW_ENDPOINT"]
            print(f"Ceph RGW at {endpoint}, {options.runs} runs after a warm-up, median (min-max)")
            for mib in (int(s) for s in options.sizes.split(",")):
                source = os.path.join(folder, f"source-{mib}.bin")
                with open(source, "wb") as out:
                    for _ in range(mib):
                        out.write(os.urandom(MiB))
                for operation in ("put", "get"):
                    results: dict[str, list[dict[str, float]]] = {"ours": [], "boto3": []}
                    for run in range(options.runs + 1):
                        for who in ("boto3", "ours"):
                            result = _run_child(f"{who}-{operation}", source, bucket, env)
                            if run:  # the first round warms up
                                results[who].append(result)
                    line = [f"  {operation} {mib:>5} MiB"]
                    speeds = {}
                    for who in ("ours", "boto3"):
                        rates = [mib / r["seconds"] for r in results[who]]
                        rss = max(r["peak_rss_mib"] for r in results[who])
                        speeds[who] = statistics.median(rates)
                        line.append(
                            f"{'S3Store' if who == 'ours' else 'boto3'} {speeds[who]:6.0f} MiB/s "
                            f"({min(rates):.0f}-{max(rates):.0f}), peak RSS {rss:5.1f} MiB"
                        )
                    line.append(f"ratio {speeds['ours'] / speeds['boto3']:.2f}")
                    print("   ".join(line))
                os.unlink(source)
        finally:
            if started_here:
                stop = ["bash", str(ROOT / "scripts/ceph-rgw"), "stop", os.path.join(folder, "ceph")]
                subprocess.run(stop, check=False)


if __name__ == "__main__":
    main()
