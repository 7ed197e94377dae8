"""The S3 server dying mid-upload: a `StorageError` naming the endpoint, and after a
restart the previous version intact and no partial object visible.

These run on a Ceph cluster of their own, since they kill its gateway (radosgw).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from servers import ROOT, S3Server, ceph_rgw, have_ceph

MiB = 1 << 20
OLD = b"the previous version " * 1000


class Gateway:
    """The radosgw of a cluster this module owns: kill it, start it again."""

    def __init__(self, server: S3Server, work_dir: Path) -> None:
        self.server = server
        self.work_dir = work_dir

    @property
    def pid(self) -> int:
        return int((self.work_dir / "run" / "client.rgw.a.pid").read_text())

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def restart(self) -> None:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "ceph-rgw"), "gateway", str(self.work_dir)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def store(self, bucket: str) -> vs.S3Store:
        return vs.S3Store(
            bucket,
            endpoint=self.server.endpoint,
            access_key=self.server.access_key,
            secret_key=self.server.secret_key,
            connect_timeout=2,
            read_timeout=10,
        )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    if not have_ceph() and not os.environ.get("CI"):
        pytest.skip("Ceph is not installed: run `scripts/ceph-rgw install` (CI always runs these)")
    work_dir = Path(tmp_path_factory.mktemp("ceph-faults"))
    cluster = ceph_rgw(work_dir)
    server, _ = next(cluster)
    yield Gateway(server, work_dir)
    cluster.close()


def _assert_only_the_old_version_is_visible(store: vs.Store, key: str) -> None:
    assert [info.key for info in store.list()] == [key]
    assert store.stat(key).size == len(OLD)
    with store.get(key) as r:
        assert r.read() == OLD


@pytest.mark.slow
def test_radosgw_killed_during_a_multipart_upload(gateway: Gateway) -> None:
    key = "models/big.bin"
    store = gateway.store(gateway.server.new_bucket())
    store.put(key, OLD)

    def body() -> Iterator[bytes]:
        block = os.urandom(MiB)
        for n in range(64):
            if n == 20:  # parts are on their way: kill the gateway under them
                gateway.signal(signal.SIGKILL)
            yield block

    started = time.monotonic()
    with pytest.raises(vs.StorageError) as caught:
        store.put(key, body())
    seconds = time.monotonic() - started
    gateway.restart()
    _assert_only_the_old_version_is_visible(store, key)
    uploads = gateway.server.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    print(
        f"\nradosgw killed 20 MiB into a 64 MiB multipart put: StorageError in {seconds:.1f} s "
        f"({caught.value}); after a restart only the old version is visible ({len(uploads)} "
        "unfinished multipart upload left for the bucket's lifecycle rule)"
    )
    assert gateway.server.endpoint in str(caught.value)
    assert not isinstance(caught.value, vs.NotFoundError)


@pytest.mark.slow
def test_radosgw_killed_while_a_single_put_is_in_flight(gateway: Gateway) -> None:
    key = "models/small.bin"
    store = gateway.store(gateway.server.new_bucket())
    store.put(key, OLD)
    data = os.urandom(7 * MiB)  # under part_size: one PUT request
    gateway.signal(signal.SIGSTOP)  # the request connects and sends, and nobody reads it...
    outcome: list[BaseException | None] = []

    def put() -> None:
        try:
            store.put(key, data)
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=put)
    thread.start()
    time.sleep(1.0)
    gateway.signal(signal.SIGKILL)  # ...until the server dies with the body half-received
    thread.join(60)
    gateway.restart()
    _assert_only_the_old_version_is_visible(store, key)
    print(f"\nradosgw killed under a 7 MiB PUT: {outcome[0]!r}; after a restart only the old version")
    assert isinstance(outcome[0], vs.StorageError)
    assert gateway.server.endpoint in str(outcome[0])


@pytest.mark.slow
def test_a_put_while_the_server_is_down_fails_fast_and_names_it(gateway: Gateway) -> None:
    key = "models/down.bin"
    store = gateway.store(gateway.server.new_bucket())
    store.put(key, OLD)
    gateway.signal(signal.SIGKILL)
    started = time.monotonic()
    try:
        with pytest.raises(vs.StorageError, match=gateway.server.endpoint):
            store.put(key, b"new")
        with pytest.raises(vs.StorageError, match=gateway.server.endpoint):
            store.stat(key)
        seconds = time.monotonic() - started
    finally:
        gateway.restart()
    _assert_only_the_old_version_is_visible(store, key)
    print(f"\nserver down: put and stat each raise StorageError naming it, {seconds:.1f} s for both")
