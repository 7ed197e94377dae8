"""Crash and concurrency promises of the local backend, with real processes.

Each test prints its figure (run with ``-s`` to see them).
"""

from __future__ import annotations

import hashlib
import random
import signal
import time
from pathlib import Path

import pytest

import visiona_storage as vs
from processes import finish, spawn

KEYS = ["hot/a.bin", "hot/b.bin", "cold/c.bin"]


def _assert_every_object_consistent(store: vs.LocalFSStore) -> int:
    """Every listed object's data matches the metadata it is returned with."""
    count = 0
    for listed in store.list():
        with store.get(listed.key) as r:
            data, info = r.read(), r.info
        digest = hashlib.sha256(data).hexdigest()
        assert digest == info.etag == info.metadata["sha256"] == listed.etag, listed.key
        assert info.content_type == f"application/x-writer-{info.metadata['writer']}"
        assert store.stat(listed.key) == info
        count += 1
    return count


def _leftovers(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        name = path.name
        orphan = name.endswith(".meta.json") and not path.with_name(name.removesuffix(".meta.json")).is_file()
        if name.endswith(".vs-tmp") or orphan:
            found.append(str(path))
    return found


@pytest.mark.slow
def test_writers_killed_at_random_moments_never_leave_a_torn_object(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    store = vs.LocalFSStore(root)
    rng = random.Random(4)
    rounds, killed_mid_write = 200, 0
    keys = ",".join(KEYS)
    for round_no in range(rounds):
        fsync = "1" if round_no % 3 == 0 else "0"
        writers = [
            spawn("writer", str(root), keys, str(round_no * 10 + n), "100000", "0", "2000000", fsync)
            for n in range(3)
        ]
        time.sleep(rng.uniform(0.15, 0.45))
        for proc in writers:
            if proc.poll() is None:
                killed_mid_write += 1
            proc.send_signal(signal.SIGKILL)
        for proc in writers:
            proc.communicate()
        _assert_every_object_consistent(store)
    objects = _assert_every_object_consistent(store)
    leftovers_before = len(_leftovers(root))
    removed = store.cleanup(min_age_seconds=0).removed
    print(
        f"\nkill -9: {rounds} rounds, {killed_mid_write} writers killed, {objects} objects, "
        f"0 torn; {leftovers_before} leftovers before clean-up, {removed} removed, "
        f"{len(_leftovers(root))} after"
    )
    assert killed_mid_write >= rounds  # the writers really were killed while writing
    assert objects == len(KEYS)
    assert _leftovers(root) == []


def _peak_rss_mib(root: Path, mib: int) -> float:
    result = finish(spawn("memory", str(root), str(mib)), timeout=300)
    assert result["size"] == mib << 20
    assert result["intact"]
    return float(result["peak_rss_kib"]) / 1024


@pytest.mark.slow
def test_streaming_1gib_uses_no_more_memory_than_64mib(tmp_path: Path) -> None:
    small = _peak_rss_mib(tmp_path / "small", 64)
    large = _peak_rss_mib(tmp_path / "large", 1024)
    print(f"\npeak RSS: put+get 64 MiB {small:.1f} MiB, 1 GiB {large:.1f} MiB")
    assert large < 64
    assert abs(large - small) < 8
