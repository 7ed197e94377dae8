"""Puts whose data is pushed in pieces (`start_put`): localfs's own writer, and the
threaded writer every other backend gets."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from visiona_storage._store import start_put

MiB = 1 << 20


@pytest.fixture(params=["localfs", "localfs-nofsync", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[vs.Store]:
    if request.param == "memory":
        with vs.MemoryStore() as memory:
            yield memory
        return
    with vs.LocalFSStore(tmp_path / "storage", fsync=request.param == "localfs") as local:
        yield local


def _read(store: vs.Store, key: str) -> bytes:
    with store.get(key) as reader:
        return reader.read()


def _leftovers(store: vs.Store) -> list[str]:
    if not isinstance(store, vs.LocalFSStore):
        return []
    return [name for _, _, names in os.walk(store.root) for name in names if name.endswith(".vs-tmp")]


def test_pieces_pushed_in_order_make_the_object(store: vs.Store) -> None:
    pieces = [os.urandom(n) for n in (1, MiB, 3 * MiB + 5, 0, 17)]
    writer = start_put(store, "w/k.bin", sum(map(len, pieces)), {"Model": "yolo"}, None)
    for piece in pieces:
        writer.write(piece)
    assert [i.key for i in store.list()] == []  # nothing visible before commit
    info = writer.commit()
    data = b"".join(pieces)
    assert _read(store, "w/k.bin") == data
    assert store.stat("w/k.bin") == info
    assert info.metadata == {"model": "yolo"}
    assert info.content_type == "application/octet-stream"
    if isinstance(store, vs.LocalFSStore):
        assert info.etag == hashlib.sha256(data).hexdigest()
    writer.abort()  # after commit: nothing happens
    assert _read(store, "w/k.bin") == data


def test_an_aborted_put_stores_nothing_and_keeps_the_old_version(store: vs.Store) -> None:
    store.put("w/k", b"old", metadata={"v": "1"})
    writer = start_put(store, "w/k", -1, {"v": "2"}, None)
    writer.write(b"new" * MiB)
    writer.abort()
    assert _read(store, "w/k") == b"old"
    assert store.stat("w/k").metadata == {"v": "1"}
    assert _leftovers(store) == []


@pytest.mark.parametrize(("declared", "pieces"), [(10, [b"x" * 4, b"x" * 7]), (10, [b"x" * 9]), (0, [b"x"])])
def test_data_off_its_declared_size_stores_nothing(
    store: vs.Store, declared: int, pieces: list[bytes]
) -> None:
    writer = start_put(store, "w/k", declared, None, None)

    def push_all() -> None:
        for piece in pieces:
            writer.write(piece)
        writer.commit()

    with pytest.raises(vs.SizeMismatchError):
        push_all()
    writer.abort()
    with pytest.raises(vs.NotFoundError):
        store.stat("w/k")
    assert _leftovers(store) == []


def test_conditions_are_checked_before_any_data_and_again_at_commit(store: vs.Store) -> None:
    first = store.put("w/c", b"1")
    with pytest.raises(vs.PreconditionFailedError):
        start_put(store, "w/c", -1, None, None, if_none_match="*")
    with pytest.raises(vs.PreconditionFailedError):
        start_put(store, "w/missing", -1, None, None, if_match="*")
    writer = start_put(store, "w/c", -1, None, None, if_match=first.etag)
    writer.write(b"2")
    store.put("w/c", b"3")  # replaced meanwhile: the condition no longer holds
    with pytest.raises(vs.PreconditionFailedError):
        writer.commit()
    assert _read(store, "w/c") == b"3"
    assert _leftovers(store) == []


def test_arguments_are_validated_as_put_validates_them(store: vs.Store) -> None:
    with pytest.raises(vs.InvalidKeyError):
        start_put(store, "a//b")
    with pytest.raises(vs.InvalidArgumentError):
        start_put(store, "k", -2)
    with pytest.raises(vs.InvalidArgumentError):
        start_put(store, "k", metadata={"bad name": "x"})
    with pytest.raises(vs.InvalidArgumentError):
        start_put(store, "k", if_match="x", if_none_match="*")


def test_a_reused_buffer_is_stored_as_it_was_when_written(store: vs.Store) -> None:
    buffer = bytearray(MiB)
    writer = start_put(store, "w/r", -1, None, None)
    expected = b""
    for fill in b"abc":
        buffer[:] = bytes([fill]) * MiB
        writer.write(buffer)  # type: ignore[arg-type]  # a careless caller
        expected += bytes(buffer)
    buffer[:] = b"z" * MiB
    writer.commit()
    assert _read(store, "w/r") == expected


def test_a_writer_holds_no_thread_between_pieces(tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "storage") as store:
        before = threading.active_count()
        writers = [start_put(store, f"w/{n}", -1, None, None) for n in range(50)]
        for writer in writers:
            writer.write(b"x" * 1000)
        assert threading.active_count() - before <= 8  # the shared write helpers at most
        for writer in writers:
            writer.abort()
        assert _leftovers(store) == []


def test_a_forked_child_can_still_write_pieces(tmp_path: Path) -> None:
    """The shared writing threads do not survive a fork; the child makes its own."""
    with vs.LocalFSStore(tmp_path) as store:
        writer = start_put(store, "parent", -1)
        writer.write(os.urandom(2 << 20))
        writer.commit()
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 once its own put is done
            try:
                child = start_put(store, "child", -1)
                child.write(os.urandom(2 << 20))
                child.write(os.urandom(2 << 20))
                child.commit()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child's put hung")
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.stat("child").size == 4 << 20
