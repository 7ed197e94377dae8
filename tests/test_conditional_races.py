"""Conditional writes raced by many processes: exactly one creator, no lost update."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from servers import S3Server

WORKERS = str(Path(__file__).with_name("workers.py"))


def _run_all(args_list: list[list[str]]) -> list[dict[str, int]]:
    procs = [
        subprocess.Popen(
            [sys.executable, WORKERS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in args_list
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture(params=["localfs", "ceph"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, vs.Store]]:
    """(how a worker opens the store, the store here)."""
    if request.param == "localfs":
        root = str(tmp_path / "storage")
        yield root, vs.LocalFSStore(root)
        return
    ceph: S3Server = request.getfixturevalue("ceph")
    bucket = ceph.new_bucket()
    spec = f"s3|{ceph.endpoint}|{bucket}|{ceph.access_key}|{ceph.secret_key}"
    yield (
        spec,
        vs.S3Store(bucket, endpoint=ceph.endpoint, access_key=ceph.access_key, secret_key=ceph.secret_key),
    )
    ceph.drop_bucket(bucket)


@pytest.mark.slow
def test_16_processes_racing_to_create_one_key_exactly_one_wins(target: tuple[str, vs.Store]) -> None:
    spec, store = target
    start_at = str(time.time() + 1.5)  # all start together, after their imports
    results = _run_all([["create-once", spec, "lock/job-7", start_at] for _ in range(16)])
    winners = sum(r["won"] for r in results)
    print(f"\n16 processes put(if_none_match='*') on one key: {winners} succeeded, {16 - winners} refused")
    assert winners == 1
    with store.get("lock/job-7") as r:
        assert r.read().isdigit()


@pytest.mark.slow
def test_16_processes_incrementing_a_counter_lose_no_update(target: tuple[str, vs.Store]) -> None:
    spec, store = target
    store.put("counter", b"0")
    results = _run_all([["increment", spec, "counter", "10"] for _ in range(16)])
    with store.get("counter") as r:
        final = int(r.read())
    retries = sum(r["retries"] for r in results)
    print(f"\n16 processes x 10 if_match increments: counter {final} (expected 160), {retries} retries")
    assert final == 160
