"""Power cuts: an ext4 with a journal on a loop device, shut down right after a
put (needs root and loop devices, as in CI). Whatever reached the disk, an object
read after the reboot matches its ETag; a durable put is all there."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from disks import journaled_ext4, needs_loop, needs_root, power_cut, remount
from visiona_storage._keys import SIDECAR_SUFFIX

MiB = 1 << 20

pytestmark = [needs_root, needs_loop]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the disk's image file, where it is mounted)."""
    image = tmp_path / "disk.img"
    with journaled_ext4(image, tmp_path / "disk") as mount:
        yield image, mount


def _synced(path: Path) -> None:
    """fsync `path`: its data reaches the disk, and so does the journal's running
    transaction (every file's size, times and names), but no other file's data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_checked(store: vs.LocalFSStore, key: str) -> tuple[bytes, vs.ObjectInfo]:
    """The object's bytes and info, after checking that they match its ETag."""
    with store.get(key) as reader:
        data, info = reader.read(), reader.info
    assert hashlib.sha256(data).hexdigest() == info.etag == store.stat(key).etag
    assert info.size == len(data)
    return data, info


@pytest.mark.parametrize("over", [False, True], ids=["new-key", "over-an-old-version"])
def test_a_power_cut_after_an_unsynced_put_leaves_data_that_matches_its_etag(
    disk: tuple[Path, Path], over: bool
) -> None:
    image, mount = disk
    root = mount / "storage"
    old, new = os.urandom(3 * MiB), os.urandom(16 * MiB)
    with vs.LocalFSStore(root, fsync=False) as store:
        if over:
            store.put("m.bin", old)
            os.sync()
        store.put("m.bin", new, metadata={"v": "new"})
        # The kernel may write the small sidecar out before the large data file;
        # its fsync also commits the data file's size and times to the journal.
        _synced(root / ("m.bin" + SIDECAR_SUFFIX))
        power_cut(mount)
    remount(image, mount)
    with vs.LocalFSStore(root, fsync=False) as store:
        data, _ = _read_checked(store, "m.bin")
    assert data == old or new.startswith(data)


def test_a_power_cut_after_a_durable_put_keeps_all_of_it(disk: tuple[Path, Path]) -> None:
    image, mount = disk
    root = mount / "storage"
    new = os.urandom(16 * MiB)
    with vs.LocalFSStore(root) as store:
        store.put("m.bin", os.urandom(MiB))
        store.put("m.bin", new, metadata={"v": "new"})
        power_cut(mount)
    remount(image, mount)
    with vs.LocalFSStore(root) as store:
        data, info = _read_checked(store, "m.bin")
    assert data == new
    assert info.metadata == {"v": "new"}
