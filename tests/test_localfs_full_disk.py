"""A full disk: a small tmpfs mounted by the test (needs root, as in CI)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from disks import free_bytes, needs_root, small_tmpfs

MiB = 1 << 20

pytestmark = needs_root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs; stores opened on it must be closed before the test ends."""
    with small_tmpfs(tmp_path / "disk", 8) as disk:
        yield disk


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("kind", ["bytes", "file", "stream"])
def test_a_full_disk_raises_and_keeps_the_previous_version(small_disk: Path, fsync: bool, kind: str) -> None:
    with vs.LocalFSStore(small_disk / "storage", fsync=fsync) as store:
        _fill_past_the_end(store, small_disk, fsync, kind)


def _fill_past_the_end(store: vs.LocalFSStore, small_disk: Path, fsync: bool, kind: str) -> None:
    old = store.put("models/m.bin", b"v1" * MiB, metadata={"v": "1"})
    files, free = _files(small_disk), free_bytes(small_disk)
    big = os.urandom(9 * MiB)
    data: dict[str, vs.PutData] = {
        "bytes": big,
        "file": io.BytesIO(big),
        "stream": (big[i : i + MiB] for i in range(0, len(big), MiB)),
    }
    with pytest.raises(vs.StorageFullError) as caught:
        store.put("models/m.bin", data[kind], metadata={"v": "2"})
    assert isinstance(caught.value, vs.StorageError)
    assert caught.value.key == "models/m.bin"
    assert store.stat("models/m.bin") == old
    with store.get("models/m.bin") as r:
        assert r.read() == b"v1" * MiB
    assert _files(small_disk) == files
    assert free_bytes(small_disk) == free
    print(
        f"\nfull disk ({kind}, fsync={fsync}): StorageFullError, old version intact, {free} bytes free again"
    )


def test_every_failure_point_near_a_full_disk_leaves_a_whole_object(small_disk: Path) -> None:
    with vs.LocalFSStore(small_disk / "storage") as store:
        _put_sizes_around_the_free_space(store, small_disk)


def _put_sizes_around_the_free_space(store: vs.LocalFSStore, small_disk: Path) -> None:
    store.put("k", b"old", metadata={"v": "old"})
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (free_bytes(small_disk) - 64 * 1024))
    outcomes = {"stored": 0, "full": 0}
    for size in range(0, 96 * 1024, 2048):
        data = os.urandom(size)
        try:
            info = store.put("k", data, metadata={"sha256": hashlib.sha256(data).hexdigest()})
        except vs.StorageFullError:
            outcomes["full"] += 1
        else:
            outcomes["stored"] += 1
            assert info.etag == hashlib.sha256(data).hexdigest()
        with store.get("k") as r:
            body, current = r.read(), r.info
        assert hashlib.sha256(body).hexdigest() == current.etag
        assert current.metadata in ({"v": "old"}, {"sha256": current.etag})
    assert outcomes["stored"] > 0
    assert outcomes["full"] > 0
    assert [p for p in _files(small_disk) if p.endswith(".vs-tmp")] == []
