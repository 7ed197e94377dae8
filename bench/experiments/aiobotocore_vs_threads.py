"""Many small concurrent async S3 requests on a real Ceph RGW, three ways in one run:
boto3 in a pool of worker threads, aiobotocore's native async client, and obstore.

`AsyncStore` runs the sync store's boto3 calls in 16 worker threads
(``loop.run_in_executor``). This asks what a native async client, aiobotocore,
would give instead, on many small requests at once, where a thread trip costs most
beside the transfer. Each batch is 1,000 concurrent 4 KiB operations
(``asyncio.gather``), and each way does the same S3 requests as far as it can:

- (a) threads: a raw boto3 client whose calls run in a ThreadPoolExecutor of
  ``--threads`` (16) threads, one thread trip per operation; a put is
  ``put_object`` then ``head_object`` (visiona-storage's put returns what stat
  would), a get is ``get_object`` and reading the body;
- (b) aiobotocore: the same requests with ``await``, its connection pool
  (``max_pool_connections``) as large as (a)'s thread pool;
- (c) obstore: ``obstore.put_async`` (one PUT, no HEAD) and ``obstore.get_async``
  then ``bytes_async``, its connection pool unbounded: the outside baseline.

A round makes one put batch and one get batch per way, the ways' order rotating
from round to round; a warm-up round comes first and is not counted. Puts of each
way overwrite their own 1,000 keys; gets read 1,000 objects put before the first
round. Printed: operations per second (one operation = one put or one get, so
two requests for (a) and (b)'s puts), median and min-max over the rounds, the
client process's CPU per operation, and the ratios (b)/(a), (a)/(c), (b)/(c),
median and min-max of the per-round ratios.

aiobotocore pins botocore to a narrow range that the project's own venv does not
meet, so the script runs in a throw-away venv of its own and does not import
visiona_storage (only the cluster and obstore helpers of bench/s3_vs_boto3.py).
From the repository root:

    python3 -m venv /tmp/aiov && /tmp/aiov/bin/pip install aiobotocore boto3 obstore
    PYTHONPATH=bench /tmp/aiov/bin/python bench/experiments/aiobotocore_vs_threads.py \\
        [--rounds 5] [--count 1000] [--size 4096] [--threads 16] [--dir /tmp]

(pip picks the boto3 whose botocore aiobotocore accepts.) Starts a throw-away Ceph
cluster with scripts/ceph-rgw (root, Debian packages) in a temporary folder under
``--dir`` and stops it at the end, unless CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY
and CEPH_RGW_SECRET_KEY point at one (then its bucket is emptied and deleted at
the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from importlib import metadata
from typing import Any

from s3_vs_boto3 import ceph_env, obstore_s3

WAYS = ("threads", "aiobotocore", "obstore")
OPERATIONS = ("put", "get")
RATIOS = (("aiobotocore", "threads"), ("threads", "obstore"), ("aiobotocore", "obstore"))
LETTER = {"threads": "a", "aiobotocore": "b", "obstore": "c"}


def boto3_config(pool: int) -> dict[str, Any]:
    """The botocore Config arguments for Ceph (as the benches' boto3_client), with `pool` connections."""
    return {
        "s3": {"addressing_style": "path"},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "max_pool_connections": pool,
    }


def client_args(env: dict[str, str]) -> dict[str, Any]:
    """The client arguments of the cluster `env` names, as botocore and aiobotocore take them."""
    return {
        "endpoint_url": env["CEPH_RGW_ENDPOINT"],
        "aws_access_key_id": env["CEPH_RGW_ACCESS_KEY"],
        "aws_secret_access_key": env["CEPH_RGW_SECRET_KEY"],
        "region_name": "us-east-1",
    }


# --- the three ways: each has put(key) and get(key) -> the bytes read ---


class Threads:
    """(a) A boto3 client's calls in a pool of worker threads, one trip per operation."""

    def __init__(self, client: Any, bucket: str, body: bytes, pool: ThreadPoolExecutor) -> None:
        self.client, self.bucket, self.body, self.pool = client, bucket, body, pool
        self.retries = 0
        self._counting = threading.Lock()

    def _count(self, *responses: dict[str, Any]) -> None:
        with self._counting:
            self.retries += sum(r["ResponseMetadata"]["RetryAttempts"] for r in responses)

    def _put(self, key: str) -> None:
        put = self.client.put_object(Bucket=self.bucket, Key=key, Body=self.body)
        self._count(put, self.client.head_object(Bucket=self.bucket, Key=key))

    def _get(self, key: str) -> int:
        got = self.client.get_object(Bucket=self.bucket, Key=key)
        self._count(got)
        return len(got["Body"].read())

    async def put(self, key: str) -> int:
        await asyncio.get_running_loop().run_in_executor(self.pool, self._put, key)
        return 0

    async def get(self, key: str) -> int:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._get, key)


class Aio:
    """(b) aiobotocore's async client."""

    def __init__(self, client: Any, bucket: str, body: bytes) -> None:
        self.client, self.bucket, self.body = client, bucket, body
        self.retries = 0

    async def put(self, key: str) -> int:
        put = await self.client.put_object(Bucket=self.bucket, Key=key, Body=self.body)
        head = await self.client.head_object(Bucket=self.bucket, Key=key)
        self.retries += put["ResponseMetadata"]["RetryAttempts"] + head["ResponseMetadata"]["RetryAttempts"]
        return 0

    async def get(self, key: str) -> int:
        got = await self.client.get_object(Bucket=self.bucket, Key=key)
        self.retries += got["ResponseMetadata"]["RetryAttempts"]
        async with got["Body"] as body:
            return len(await body.read())


class Obstore:
    """(c) obstore's async API."""

    def __init__(self, store: Any, body: bytes) -> None:
        self.store, self.body = store, body
        self.retries = 0  # obstore does not tell

    async def put(self, key: str) -> int:
        import obstore  # noqa: PLC0415

        await obstore.put_async(self.store, key, self.body)
        return 0

    async def get(self, key: str) -> int:
        import obstore  # noqa: PLC0415

        got = await obstore.get_async(self.store, key)
        return len(await got.bytes_async())


async def batch(
    operation: Callable[[str], Awaitable[int]], keys: list[str], size: int | None
) -> tuple[float, float]:
    """Operations per second and the client's CPU seconds per operation of all `keys` at
    once; each must return `size` (the bytes a get read), unless None."""
    cpu = time.process_time()
    start = time.perf_counter()
    read = await asyncio.gather(*(operation(key) for key in keys))
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if size is not None and any(n != size for n in read):
        raise RuntimeError(f"a get read {min(read)}..{max(read)} bytes, not {size}")
    return len(keys) / seconds, cpu / len(keys)


async def measure(env: dict[str, str], options: argparse.Namespace, cleanup: bool) -> dict[str, Any]:
    """Every round of every way: {(way, operation): [(ops/s, CPU s/op), ...]} and retries."""
    import boto3  # noqa: PLC0415
    import obstore  # noqa: PLC0415
    from aiobotocore.config import AioConfig  # type: ignore[import-not-found]  # noqa: PLC0415
    from aiobotocore.session import get_session  # type: ignore[import-not-found]  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    bucket = f"aio-vs-threads-{secrets.token_hex(4)}"
    body = os.urandom(options.size)
    sync_client = boto3.client("s3", config=Config(**boto3_config(options.threads)), **client_args(env))
    sync_client.create_bucket(Bucket=bucket)
    store = obstore_s3(env, bucket)
    gets = [f"get/{i:05d}" for i in range(options.count)]
    await asyncio.gather(*(obstore.put_async(store, key, body) for key in gets))
    results: dict[tuple[str, str], list[tuple[float, float]]] = {
        (way, operation): [] for way in WAYS for operation in OPERATIONS
    }
    try:
        async with AsyncExitStack() as stack:
            pool = stack.enter_context(ThreadPoolExecutor(options.threads, thread_name_prefix="boto3"))
            aio_client = await stack.enter_async_context(
                get_session().create_client(
                    "s3", config=AioConfig(**boto3_config(options.threads)), **client_args(env)
                )
            )
            ways: dict[str, Threads | Aio | Obstore] = {
                "threads": Threads(sync_client, bucket, body, pool),
                "aiobotocore": Aio(aio_client, bucket, body),
                "obstore": Obstore(store, body),
            }
            for round_ in range(options.rounds + 1):  # round 0 warms up
                order = WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]
                for operation in OPERATIONS:
                    for way in order:
                        keys = (
                            gets
                            if operation == "get"
                            else [f"put/{way}/{i:05d}" for i in range(options.count)]
                        )
                        size = options.size if operation == "get" else None
                        figure = await batch(getattr(ways[way], operation), keys, size)
                        if round_:
                            results[way, operation].append(figure)
                line = "  ".join(
                    f"{LETTER[w]} {o} {results[w, o][-1][0]:.0f}" for o in OPERATIONS for w in WAYS if round_
                )
                print(f"round {round_}: {line or 'warm-up'}", file=sys.stderr, flush=True)
            retries = {way: ways[way].retries for way in WAYS}
    finally:
        if cleanup:
            _empty_and_delete(sync_client, bucket)
    return {"results": results, "retries": retries}


def _empty_and_delete(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def report(measured: dict[str, Any], options: argparse.Namespace, header: list[str]) -> str:
    results = measured["results"]
    names = {
        "threads": f"(a) boto3 in {options.threads} threads",
        "aiobotocore": f"(b) aiobotocore, {options.threads} connections",
        "obstore": "(c) obstore async",
    }
    lines = [*header, ""]
    lines.append(
        f"{'way':<32} {'put ops/s median [min-max]':>28} {'get ops/s median [min-max]':>28}"
        f" {'CPU us/op put':>14} {'get':>5}"
    )
    for way in WAYS:
        rates = [spread([r for r, _ in results[way, o]]) for o in OPERATIONS]
        cpu = [f"{1e6 * statistics.median(c for _, c in results[way, o]):.0f}" for o in OPERATIONS]
        lines.append(f"{names[way]:<32} {rates[0]:>28} {rates[1]:>28} {cpu[0]:>14} {cpu[1]:>5}")
    lines += ["", f"{'ratio (per round)':<32} {'put median [min-max]':>28} {'get median [min-max]':>28}"]
    for top, bottom in RATIOS:
        cells = [
            spread([t / b for (t, _), (b, _) in zip(results[top, o], results[bottom, o], strict=True)], 2)
            for o in OPERATIONS
        ]
        lines.append(f"{f'({LETTER[top]})/({LETTER[bottom]})':<32} {cells[0]:>28} {cells[1]:>28}")
    retries = measured["retries"]
    lines += ["", f"botocore retries: (a) {retries['threads']}, (b) {retries['aiobotocore']}"]
    return "\n".join(lines)


def versions() -> str:
    found = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("aiobotocore", "botocore", "boto3", "obstore")
    )
    return f"{found}, aiohttp {metadata.version('aiohttp')}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds, after one warm-up round")
    parser.add_argument("--count", type=int, default=1000, help="concurrent operations per batch")
    parser.add_argument("--size", type=int, default=4096, help="object size in bytes")
    parser.add_argument("--threads", type=int, default=16, help="(a)'s threads and (b)'s connections")
    parser.add_argument("--dir", default="/tmp", help="where the temporary Ceph folder goes")
    options = parser.parse_args()
    # A SIGTERM unwinds like an error, so a cluster started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # (c) opens up to --count connections at once; Ceph's daemons inherit the limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    header = [
        f"nproc {os.cpu_count()}, 1-minute load {os.getloadavg()[0]:.2f} before the run",
        versions(),
        f"{options.count} concurrent {options.size}-byte operations per batch,"
        f" {options.rounds} round{'s' if options.rounds != 1 else ''} after 1 warm-up, the ways' order"
        " rotating; a put is PUT+HEAD for (a) and (b), PUT for (c)",
    ]
    started = time.perf_counter()
    ours = "CEPH_RGW_ENDPOINT" not in os.environ
    with (
        tempfile.TemporaryDirectory(dir=options.dir, prefix="aio-vs-threads-") as work,
        ceph_env(os.path.join(work, "ceph")) as env,
    ):
        header.append(f"Ceph RGW {env['CEPH_RGW_ENDPOINT']}, {'started here' if ours else 'given'}")
        measured = asyncio.run(measure(env, options, cleanup=not ours))
    header.append(f"whole run {time.perf_counter() - started:.0f} s")
    print(report(measured, options, header))


if __name__ == "__main__":
    main()
