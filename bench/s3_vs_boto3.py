"""S3Store against raw boto3 and obstore's S3Store on a real Ceph RGW, in the same
run: put and get of 64 MiB and 1 GiB, MiB/s and peak RSS (each in its own process).

Each process makes the transfer twice. The second, with the client warm (its
connections open, boto3's operation models loaded), is the figure, as in a
long-running service; the first, the cold start of a new process, is in the note.

Two more measures show how much of a figure is the client's doing. A get by curl
on a presigned URL (no Python at all; curl's own transfer time) is a row beside
boto3's. And when the bench starts the cluster itself, the note of each figure
gives the CPU seconds Ceph's daemons spent per warm transfer of each client,
against its wall time: on these 2 cores the server, not the client, sets the pace.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import Figure, cpu_seconds, install_commands, peak_rss_mib, table

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
SERVER_PIDS = "BENCH_CEPH_PIDS"
"""The environment variable that gives a child the PIDs of Ceph's daemons (comma-separated)."""


def boto3_client(env: dict[str, str], connections: int = 10) -> Any:
    """A boto3 client of the Ceph cluster `env` names, with `connections` pooled
    (botocore's default: 10)."""
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
            max_pool_connections=connections,
        ),
    )


def obstore_s3(env: dict[str, str], bucket: str) -> Any:
    """obstore's S3Store on the bucket of the Ceph cluster `env` names."""
    from obstore.store import S3Store as ObstoreS3  # noqa: PLC0415 - measured in the child only

    return ObstoreS3(
        bucket,
        endpoint=env["CEPH_RGW_ENDPOINT"],
        access_key_id=env["CEPH_RGW_ACCESS_KEY"],
        secret_access_key=env["CEPH_RGW_SECRET_KEY"],
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def child(mode: str, source: str, bucket: str) -> None:
    """One measurement in a fresh process: prints the seconds of a cold and of a warm
    transfer, the CPU seconds Ceph's daemons spent on the warm one (if their PIDs
    are given), and peak RSS, as JSON."""
    transfer = _transfer(mode, source, bucket)
    server = [int(pid) for pid in os.environ.get(SERVER_PIDS, "").split(",") if pid]
    cold = _timed(transfer)
    before = cpu_seconds(server)
    seconds = _timed(transfer)
    server_cpu = cpu_seconds(server) - before
    print(
        json.dumps(
            {"cold": cold, "seconds": seconds, "server_cpu": server_cpu, "peak_rss_mib": peak_rss_mib()}
        )
    )


def _timed(action: Callable[[], float | None]) -> float:
    """The seconds `action` took: what it returns, or else its wall time."""
    start = time.perf_counter()
    reported = action()
    return time.perf_counter() - start if reported is None else reported


def _transfer(mode: str, source: str, bucket: str) -> Callable[[], float | None]:
    """The put or get of `mode` ("ours-put", "boto3-get", "curl-get", ...), with its
    client made. curl's returns its own transfer time (not its process's start)."""
    env = dict(os.environ)
    who, operation = mode.split("-", maxsplit=1)
    size = os.path.getsize(source)
    key = f"bench/{who}-{size}"
    if who == "ours":
        import visiona_storage as vs  # noqa: PLC0415 - measured in the child only

        store = vs.S3Store(
            bucket,
            endpoint=env["CEPH_RGW_ENDPOINT"],
            access_key=env["CEPH_RGW_ACCESS_KEY"],
            secret_key=env["CEPH_RGW_SECRET_KEY"],
        )

        def put() -> None:
            with open(source, "rb") as f:
                store.put(key, f, size=size)

        def get() -> None:
            with store.get(key) as reader:
                while reader.read(MiB):
                    pass

    elif who == "boto3":
        client = boto3_client(env)

        def put() -> None:
            with open(source, "rb") as f:
                client.upload_fileobj(f, bucket, key)

        def get() -> None:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            for _ in body.iter_chunks(MiB):
                pass

    elif who == "curl":
        url = boto3_client(env).generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": f"bench/ours-{size}"}, ExpiresIn=3600
        )

        def curl_get() -> float:
            out = subprocess.run(
                ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            return float(out)

        return curl_get

    else:
        import obstore  # noqa: PLC0415

        theirs = obstore_s3(env, bucket)

        def put() -> None:
            with open(source, "rb") as f:
                obstore.put(theirs, key, f)

        def get() -> None:
            for _ in obstore.get(theirs, key).stream(min_chunk_size=MiB):
                pass

    return put if operation == "put" else get


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


def figures(runs: int = 3, sizes: tuple[int, ...] = (64, 1024), folder: str | None = None) -> list[Figure]:
    """S3Store against raw boto3 and obstore on Ceph; each transfer in a process of its own."""
    install_commands({"curl": "curl"})
    found: list[Figure] = []
    with tempfile.TemporaryDirectory(dir=folder) as work, ceph_env(os.path.join(work, "ceph")) as env:
        if "CEPH_RGW_ENDPOINT" not in os.environ:  # started here: its daemons' CPU counts
            env[SERVER_PIDS] = ",".join(str(pid) for pid in ceph_pids(os.path.join(work, "ceph")))
        bucket = "bench"
        boto3_client(env).create_bucket(Bucket=bucket)
        for mib in sizes:
            source = os.path.join(work, f"source-{mib}.bin")
            with open(source, "wb") as out:
                for _ in range(mib):
                    out.write(os.urandom(MiB))
            for operation in ("put", "get"):
                # curl gets the object our put stored
                clients = ("boto3", "obstore", "ours") + (("curl",) if operation == "get" else ())
                results: dict[str, list[dict[str, float]]] = {who: [] for who in clients}
                for run in range(runs + 1):
                    for who in clients:
                        result = _run_child(f"{who}-{operation}", source, bucket, env)
                        if run:  # the first round warms up
                            results[who].append(result)
                found += _figures(operation, mib, results)
            os.unlink(source)
    return found


def _figures(operation: str, mib: int, results: dict[str, list[dict[str, float]]]) -> list[Figure]:
    """The rows of one operation on one size, from each client's child results."""
    rate = {who: [mib / r["seconds"] for r in rs] for who, rs in results.items()}
    cold = {who: [mib / r["cold"] for r in rs] for who, rs in results.items()}
    rss = {who: [r["peak_rss_mib"] for r in rs] for who, rs in results.items()}
    what = "upload_fileobj" if operation == "put" else "streamed get_object"
    name = f"S3 {operation} {mib} MiB on Ceph"
    found = []
    for who, baseline, target in (
        ("boto3", f"boto3 {what}", 1.0),
        ("obstore", f"obstore S3Store {operation}", 0.95),
    ):
        first = Figure(name, baseline, "MiB/s", cold["ours"], cold[who])
        note = f"first transfer of a new process: {first.ratio:.2f}{_server_note(results)}"
        found.append(Figure(name, baseline, "MiB/s", rate["ours"], rate[who], target, note=note))
    if "curl" in rate:
        found.append(
            Figure(
                f"{name} by curl on a presigned URL (no Python client: what the server gives)",
                f"boto3 {what}",
                "MiB/s",
                rate["curl"],
                rate["boto3"],
                note="curl's own transfer time, without its process's start",
            )
        )
    found.append(
        Figure(
            f"{name}: peak RSS",
            "boto3's",
            "MiB",
            rss["ours"],
            rss["boto3"],
            limit=128,
            higher_is_better=False,
            note=f"obstore {max(rss['obstore']):.1f} MiB",
        )
    )
    return found


def _server_note(results: dict[str, list[dict[str, float]]]) -> str:
    """What Ceph's daemons spent per warm transfer of each client (medians), if measured."""
    if not any(r["server_cpu"] for rs in results.values() for r in rs):
        return ""  # a cluster the bench did not start
    spent = ", ".join(
        f"{who} {statistics.median(r['server_cpu'] for r in rs):.2f} s"
        f" in {statistics.median(r['seconds'] for r in rs):.2f} s"
        for who, rs in results.items()
    )
    return f"; Ceph's CPU per transfer in wall time, median: {spent}"


def ceph_pids(folder: str) -> list[int]:
    """The PIDs of the daemons of the cluster `start_ceph` started in `folder`."""
    return [int(path.read_text()) for path in sorted(Path(folder, "run").glob("*.pid"))]


def start_ceph(folder: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/ceph-rgw"), "start", folder], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def stop_ceph(folder: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts/ceph-rgw"), "stop", folder], check=False)


@contextmanager
def ceph_env(folder: str) -> Iterator[dict[str, str]]:
    """This process's environment with a Ceph RGW's endpoint and keys: the cluster
    CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY and CEPH_RGW_SECRET_KEY name, else a
    throw-away one started in `folder` and stopped at the end."""
    env = dict(os.environ)
    if "CEPH_RGW_ENDPOINT" in env:
        yield env
        return
    try:  # stopped also when the start fails half-way
        env.update(start_ceph(folder))
        yield env
    finally:
        stop_ceph(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="64,1024", help="object sizes in MiB")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return
    print(table(figures(options.runs, tuple(int(s) for s in options.sizes.split(",")))))


if __name__ == "__main__":
    main()
