"""The blocks of replaced and deleted large objects are freed off the caller's path
(`_reclaim`): held open while the name goes, closed by a background thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from disks import free_bytes, needs_root, small_tmpfs
from visiona_storage.backends.localfs import _reclaim
from visiona_storage.backends.localfs._layout import is_temp_name

MiB = 1 << 20
BIG = _reclaim.RECLAIM_FROM + MiB


def _held_deleted(root: Path) -> list[str]:
    """The files under `root` this process still has open though their names are gone.

    A file replaced with fsync off was swapped to a temp name before it was
    unlinked (`_tree.replace`): it is reported as ``<folder>/(temp)``.
    """
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)) and target.endswith(" (deleted)"):
            path = Path(target.removesuffix(" (deleted)"))
            found.append(f"{path.parent / '(temp)' if is_temp_name(path.name) else path} (deleted)")
    return found


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The background closing waits until the test sets this event."""
    opened = threading.Event()
    real_close = _reclaim._close

    def close_when_open(fd: int) -> None:
        if threading.current_thread().name == "vs-reclaim":
            assert opened.wait(30)
        real_close(fd)

    monkeypatch.setattr(_reclaim, "_close", close_when_open)
    try:
        yield opened
    finally:
        opened.set()


def test_a_replaced_large_object_is_freed_after_put_returns(tmp_path: Path, gate: threading.Event) -> None:
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        store.put("models/m.bin", b"1" * BIG)
        assert _held_deleted(tmp_path) == []
        store.put("models/m.bin", b"2" * BIG)
        # put has returned while its old file still waits to be closed
        assert _held_deleted(tmp_path) == [f"{tmp_path}/models/(temp) (deleted)"]
        with store.get("models/m.bin") as reader:
            assert reader.read() == b"2" * BIG
        assert _drain_waits_for_the_gate(store, gate)
        assert _held_deleted(tmp_path) == []
        assert not store._reclaimer.drain()


def _drain_waits_for_the_gate(store: vs.LocalFSStore, gate: threading.Event) -> bool:
    """Call `drain` while the background close waits for `gate`: it must wait too,
    and return once the gate opens; what it returned."""
    returned: list[bool] = []
    waiter = threading.Thread(target=lambda: returned.append(store._reclaimer.drain()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the held file is not closed yet
    gate.set()
    waiter.join(30)
    return returned == [True]


def test_a_deleted_large_object_is_freed_after_delete_returns(tmp_path: Path, gate: threading.Event) -> None:
    with vs.LocalFSStore(tmp_path) as store:
        store.put("m.bin", b"1" * BIG)
        store.delete("m.bin")
        assert _held_deleted(tmp_path) == [f"{tmp_path}/m.bin (deleted)"]
        with pytest.raises(vs.NotFoundError):
            store.stat("m.bin")
        assert not (tmp_path / "m.bin").exists()
        gate.set()
        store._reclaimer.drain()
        assert _held_deleted(tmp_path) == []


def test_small_objects_are_freed_in_the_call(tmp_path: Path, gate: threading.Event) -> None:
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        small = _reclaim.RECLAIM_FROM - 1
        store.put("a", b"1" * small)
        store.put("a", b"2" * small)
        store.put("b", b"1" * small)
        store.delete("b")
        assert _held_deleted(tmp_path) == []
        assert not store._reclaimer.drain()


def test_close_waits_until_every_held_file_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_close = _reclaim._close

    def slow_close(fd: int) -> None:
        time.sleep(0.3)
        real_close(fd)

    monkeypatch.setattr(_reclaim, "_close", slow_close)
    store = vs.LocalFSStore(tmp_path, fsync=False)
    store.put("a", b"1" * BIG)
    store.put("b", b"1" * BIG)
    store.delete("a")
    store.delete("b")
    assert len(_held_deleted(tmp_path)) == 2
    store.close()
    assert _held_deleted(tmp_path) == []


def test_past_max_held_the_caller_closes(
    tmp_path: Path, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_reclaim, "MAX_HELD", 2)
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        for name in "abcd":
            store.put(name, b"1" * BIG)
        for name in "abcd":
            store.delete(name)
        # one is being closed (and waits), one waits its turn, two were closed in delete
        assert len(_held_deleted(tmp_path)) == 2
        gate.set()
        store._reclaimer.drain()
        assert _held_deleted(tmp_path) == []


def test_a_forked_child_does_not_wait_for_its_parents_thread(tmp_path: Path, gate: threading.Event) -> None:
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        store.put("a", b"1" * BIG)
        store.delete("a")
        assert len(_held_deleted(tmp_path)) == 1
        pid = os.fork()
        if pid == 0:  # the child: its copy of the held file is closed at the fork
            code = 0 if _held_deleted(tmp_path) == [] and not store._reclaimer.drain() else 1
            os._exit(code)
        deadline = time.monotonic() + 30
        while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if waited[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in drain")
        assert os.waitstatus_to_exitcode(waited[1]) == 0
        gate.set()


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 32 MiB tmpfs, where a released file's space comes back only after 5 s,
    unless a full disk makes a writer wait for it (`Reclaimer.made_room`)."""
    real_close = _reclaim._close

    def late_close(fd: int) -> None:
        time.sleep(5)
        real_close(fd)

    monkeypatch.setattr(_reclaim, "_close", late_close)
    with small_tmpfs(tmp_path / "disk", 32) as disk:
        yield disk


@needs_root
@pytest.mark.parametrize("fsync", [True, False])
def test_a_put_that_finds_the_disk_full_waits_for_the_space_of_a_delete(
    small_disk: Path, fsync: bool
) -> None:
    with vs.LocalFSStore(small_disk / "storage", fsync=fsync) as store:
        store.put("a", b"1" * (20 * MiB))
        store.delete("a")
        info = store.put("b", b"2" * (20 * MiB))  # the data file needs a's space
        assert info.size == 20 * MiB
        with store.get("b") as reader:
            assert reader.read() == b"2" * (20 * MiB)


@needs_root
def test_a_sidecar_that_finds_the_disk_full_waits_for_the_space_of_a_delete(small_disk: Path) -> None:
    with vs.LocalFSStore(small_disk / "storage") as store:
        store.put("a", b"1" * (20 * MiB))
        store.delete("a")
        data = b"2" * free_bytes(small_disk)  # the data file fills the disk; its sidecar needs a's space
        info = store.put("b", data)
        assert info.size == len(data)
        with store.get("b") as reader:
            assert reader.read() == data
        assert [p.name for p in (small_disk / "storage").iterdir() if p.name.endswith(".vs-tmp")] == []
