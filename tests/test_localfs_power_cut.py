"""Power cuts: an ext4 with a journal on a loop device, shut down right after a
put (needs root and loop devices, as in CI). Whatever reached the disk, an object
read after the reboot matches its ETag; a durable put is all there."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from disks import journaled_ext4, needs_loop, needs_root, power_cut, remount
from visiona_storage.backends.localfs._layout import SIDECAR_SUFFIX

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


_SIZES = [0, 1024, 300 * 1024, 2 * MiB, 9 * MiB]
_CUTS = 12


class _Writer(threading.Thread):
    """Puts random sizes over a few keys, and now and then deletes one, until the
    disk fails. Remembers, per key, the ETag of the last put or delete (None) that
    returned and of the one under way."""

    def __init__(self, store: vs.LocalFSStore, prefix: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.store, self.prefix, self.random = store, prefix, random.Random(seed)
        self.returned: dict[str, str | None] = {}
        self.under_way: dict[str, str | None] = {}

    def run(self) -> None:
        while True:
            n = self.random.randrange(6)
            key = f"{self.prefix}/k{n}" if n < 3 else f"{self.prefix}/sub{n}/k"
            data = self.random.randbytes(self.random.choice(_SIZES))
            deleting = self.random.random() < 0.15
            self.under_way[key] = None if deleting else hashlib.sha256(data).hexdigest()
            try:
                if deleting:
                    self.store.delete(key)
                else:
                    self.store.put(key, data)
            except vs.StorageError:
                return  # the power is off
            self.returned[key] = self.under_way.pop(key)


class _Flusher(threading.Thread):
    """Writes random files under `folder` out to disk until `stop` is set, as the
    kernel's flusher does in its own order: a sidecar may get there before its
    data, a data file before its sidecar."""

    def __init__(self, folder: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.random, self.stop = folder, random.Random(seed), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            with contextlib.suppress(OSError):  # files and folders come and go meanwhile
                files = sorted(p for p in self.folder.rglob("*") if p.is_file())
                if files:
                    _synced(self.random.choice(files))


def test_power_cuts_at_random_instants_leave_every_object_whole(disk: tuple[Path, Path]) -> None:
    image, mount = disk
    root = mount / "storage"
    chance = random.Random(20261126)
    checked = kept = 0
    for round_ in range(_CUTS):
        with vs.LocalFSStore(root) as durable, vs.LocalFSStore(root, fsync=False) as unsynced:
            writers = [_Writer(durable, "durable", round_), _Writer(unsynced, "unsynced", -round_)]
            flusher = _Flusher(root / "unsynced", round_)
            for thread in (*writers, flusher):
                thread.start()
            time.sleep(chance.uniform(0.05, 0.6))
            power_cut(mount)
            flusher.stop.set()
            for thread in (*writers, flusher):
                thread.join(30)
                assert not thread.is_alive()
        remount(image, mount)
        with vs.LocalFSStore(root) as store:
            store.cleanup(min_age_seconds=0)
            found = {info.key: info for info in store.list()}
            for key, info in found.items():
                assert _read_checked(store, key)[1].etag == info.etag
            checked += len(found)
            last = writers[0]
            for key, etag in last.returned.items():
                # A durable put or delete that returned holds, unless the next one does.
                now = found[key].etag if key in found else None
                assert now == etag or (key in last.under_way and now == last.under_way[key]), key
            kept += len(last.returned)
        assert [p.name for p in root.rglob("*") if p.name.endswith(".vs-tmp")] == []
    print(f"{_CUTS} power cuts: {checked} objects read back whole, {kept} durable puts and deletes held")
