"""Real S3-compatible servers on loopback for the tests: moto's server and Ceph RGW.

Each is started by the test session itself and stopped by PID at its end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

import visiona_storage as vs

ROOT = Path(__file__).resolve().parent.parent

FIGURES: list[str] = []
"""Figures measured by the fixtures, printed at the end of the test run."""


@dataclass(frozen=True)
class S3Server:
    """Where a test S3 server listens and how to log in."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    verify: bool | str = True
    ceph_conf: str = ""
    """The Ceph cluster's configuration file, for ``radosgw-admin``; empty on other servers."""

    def store(self, bucket: str) -> vs.S3Store:
        """Our `S3Store` on `bucket` of this server (made or not)."""
        return vs.S3Store(
            bucket,
            endpoint=self.endpoint,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )

    def new_user(self, *, max_buckets: int | None = None) -> S3Server:
        """This Ceph gateway as seen by a new user of its own (who owns none of the
        buckets made so far); `max_buckets` -1 forbids it to create any."""
        if not self.ceph_conf:
            raise RuntimeError(f"{self.name} has no radosgw-admin: users can be made on Ceph only")
        uid = f"u-{uuid.uuid4().hex[:12]}"
        access_key, secret_key = f"{uid}-access", f"{uid}-secret-{uuid.uuid4().hex}"
        command = ["radosgw-admin", "-c", self.ceph_conf, "-n", "client.admin", "user", "create"]
        command += [f"--uid={uid}", f"--display-name={uid}", f"--access-key={access_key}"]
        command += [f"--secret-key={secret_key}"]
        if max_buckets is not None:
            command.append(f"--max-buckets={max_buckets}")
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        return replace(self, access_key=access_key, secret_key=secret_key)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            verify=self.verify,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def drop_bucket(self, bucket: str) -> None:
        """Empty and delete `bucket`, uploads in progress included; best effort."""
        client = self.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            client.delete_bucket(Bucket=bucket)
        except Exception as exc:  # a test's own failure matters more than its clean-up
            print(f"could not drop bucket {bucket}: {exc}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds} s")


def stop_process(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM, seconds: float = 10) -> None:
    """Ask a process we started to stop with `signum`; kill it if it is still there after `seconds`."""
    proc.send_signal(signum)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def moto_server(log_dir: Path) -> Iterator[S3Server]:
    """Run ``moto.server`` on a free loopback port for as long as the generator lives."""
    port = free_port()
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    try:
        wait_for_port(port, proc, 30, "moto server")
        yield S3Server("moto", f"http://127.0.0.1:{port}", "testing", "testing-secret")
    finally:
        stop_process(proc)
        log.close()


def ceph_rgw(work_dir: Path) -> Generator[tuple[S3Server, S3Server], None, None]:
    """A throw-away Ceph cluster (``scripts/ceph-rgw``): its HTTP and HTTPS gateways."""
    script = str(ROOT / "scripts" / "ceph-rgw")
    started = time.monotonic()
    try:
        out = subprocess.run(
            ["bash", script, "start", str(work_dir)], check=True, capture_output=True, text=True, timeout=300
        ).stdout
    except subprocess.CalledProcessError as exc:
        subprocess.run(["bash", script, "stop", str(work_dir)], check=False)
        raise RuntimeError(f"Ceph did not start: {exc.stderr[-2000:]}") from exc
    seconds = time.monotonic() - started
    FIGURES.append(f"Ceph RGW cluster (mon, memstore OSD, radosgw) started in {seconds:.1f} s")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    conf = str(work_dir.resolve() / "ceph.conf")
    try:
        yield (
            S3Server(
                "ceph",
                env["CEPH_RGW_ENDPOINT"],
                env["CEPH_RGW_ACCESS_KEY"],
                env["CEPH_RGW_SECRET_KEY"],
                ceph_conf=conf,
            ),
            S3Server(
                "ceph-https",
                env["CEPH_RGW_SSL_ENDPOINT"],
                env["CEPH_RGW_ACCESS_KEY"],
                env["CEPH_RGW_SECRET_KEY"],
                verify=env["CEPH_RGW_CA_FILE"],
                ceph_conf=conf,
            ),
        )
    finally:
        subprocess.run(["bash", script, "stop", str(work_dir)], check=False)


def have_ceph() -> bool:
    return all(shutil.which(tool) for tool in ("radosgw", "ceph-mon", "ceph-osd", "openssl"))


class LiveServer:
    """A real uvicorn on a loopback port, serving whichever ASGI app `serve` was given last."""

    def __init__(self, http: Any = "auto") -> None:
        """`http`: uvicorn's HTTP protocol, its name or a class."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._target: Any = None
        config = uvicorn.Config(
            self._dispatch,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            http=http,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-uvicorn", daemon=True)

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        await self._target(scope, receive, send)

    def serve(self, app: Any) -> None:
        self._target = app

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
