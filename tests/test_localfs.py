"""Promises of the local backend beyond the conformance suite: layout, symlinks,
leftovers and hand-placed files."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import visiona_storage as vs
from visiona_storage.backends.localfs import _reading as localfs_reading
from visiona_storage.backends.localfs import _sidecar as sidecar
from visiona_storage.backends.localfs import _tempfile
from visiona_storage.backends.localfs._layout import temp_name
from visiona_storage.backends.localfs._tempfile import TempFile
from visiona_storage.testing._suite import FailingFile

MiB = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def store(root: Path) -> Iterator[vs.LocalFSStore]:
    with vs.LocalFSStore(root) as store:
        yield store


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the root, with a file a symlink may point at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"do not touch")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_key_is_a_plain_file_under_the_root(store: vs.LocalFSStore, root: Path) -> None:
    store.put("models/user-123/yolov5.nef", b"weights", metadata={"framework": "onnx"})
    assert (root / "models/user-123/yolov5.nef").read_bytes() == b"weights"
    assert (root / "models/user-123/yolov5.nef.meta.json").is_file()
    assert sorted(os.listdir(root / "models/user-123")) == ["yolov5.nef", "yolov5.nef.meta.json"]


def test_etag_is_the_sha256_of_the_content(store: vs.LocalFSStore) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    assert store.put("x", data).etag == hashlib.sha256(data).hexdigest()
    assert store.put("y", data).etag == store.stat("x").etag


def test_open_store_creates_the_root(tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "a" / "b"):
        pass
    assert (tmp_path / "a" / "b").is_dir()


def test_a_root_that_is_a_file_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(vs.StorageError):
        vs.LocalFSStore(tmp_path / "file")


def test_delete_removes_empty_folders(store: vs.LocalFSStore, root: Path) -> None:
    store.put("a/b/c/d", b"x")
    store.put("a/keep", b"x")
    store.delete("a/b/c/d")
    assert sorted(os.listdir(root / "a")) == ["keep", "keep.meta.json"]


def test_put_over_a_leftover_empty_folder_succeeds(store: vs.LocalFSStore, root: Path) -> None:
    (root / "was/a").mkdir(parents=True)
    store.put("was/a", b"object now")
    assert (root / "was/a").read_bytes() == b"object now"


def test_key_conflict_changes_nothing_on_disk(store: vs.LocalFSStore, root: Path) -> None:
    store.put("a/b", b"object")
    before = _snapshot(root)
    with pytest.raises(vs.KeyConflictError):
        store.put("a/b/c", b"below")
    with pytest.raises(vs.KeyConflictError):
        store.put("a/b/c/d/e", b"deeper")
    assert _snapshot(root) == before


# Symlinks: never followed, never replaced.


def test_symlinked_folder_is_never_followed(store: vs.LocalFSStore, root: Path, outside: Path) -> None:
    store.put("real/x", b"x")
    (root / "link").symlink_to(outside, target_is_directory=True)
    before = _snapshot(outside)
    with pytest.raises(vs.StorageError):
        store.get("link/secret.txt")
    with pytest.raises(vs.StorageError):
        store.stat("link/secret.txt")
    with pytest.raises(vs.StorageError):
        store.put("link/new.bin", b"escape")
    with pytest.raises(vs.StorageError):
        store.delete("link/secret.txt")
    assert [i.key for i in store.list()] == ["real/x"]
    assert list(store.list("link/")) == []
    assert _snapshot(outside) == before
    assert (root / "link").is_symlink()


def test_symlinked_file_is_never_followed_nor_replaced(
    store: vs.LocalFSStore, root: Path, outside: Path
) -> None:
    (root / "models").mkdir(parents=True)
    (root / "models/model.nef").symlink_to(outside / "secret.txt")
    before = _snapshot(outside)
    for call in (
        lambda: store.get("models/model.nef"),
        lambda: store.stat("models/model.nef"),
        lambda: store.put("models/model.nef", b"overwrite"),
        lambda: store.delete("models/model.nef"),
    ):
        with pytest.raises(vs.StorageError):
            call()
    assert list(store.list()) == []
    assert _snapshot(outside) == before
    assert (root / "models/model.nef").is_symlink()


def test_a_symlink_is_no_object_even_with_a_sidecar_naming_it(
    store: vs.LocalFSStore, root: Path, outside: Path
) -> None:
    """A sidecar written as the store writes it, naming the symlink's own inode,
    size and mtime, must not make stat or list take the symlink for an object."""
    (root / "models").mkdir(parents=True)
    link = root / "models/model.nef"
    link.symlink_to(outside / "secret.txt")
    identity = sidecar.FileIdentity.of(os.lstat(link))
    forged = sidecar.encode([sidecar.Version(identity, "0" * 64, "text/plain", {})])
    (root / "models/model.nef.meta.json").write_bytes(forged)
    for call in (lambda: store.stat("models/model.nef"), lambda: store.get("models/model.nef")):
        with pytest.raises(vs.StorageError):
            call()
    assert list(store.list()) == []
    assert list(store.list("models/")) == []


def _returns_within(call: Any, seconds: float = 10.0) -> BaseException | None:
    """Run `call` in a thread; fail the test if it blocks. Returns what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"{call} blocked"
    return outcome[0]


def _release(fifo: Path) -> None:
    """Wake any reader still blocked opening `fifo`."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_in_place_of_an_object_or_sidecar_never_blocks(store: vs.LocalFSStore, root: Path) -> None:
    """Opening a FIFO for reading waits for a writer: a get through serve would
    hang the whole event loop. The store must refuse it at once instead."""
    store.put("models/real.bin", b"weights")
    fifos = [root / "models/pipe.bin", root / "models/real.bin.meta.json", root / "models/x.bin.vs-tmp"]
    fifos[1].unlink()
    for fifo in fifos:
        os.mkfifo(fifo)
    try:
        for key in ("models/pipe.bin", "models/real.bin"):
            for call in (lambda key=key: store.stat(key), lambda key=key: store.get(key).read()):
                assert isinstance(_returns_within(call), vs.StorageError)
        assert _returns_within(lambda: list(store.list("models/"))) is None
        assert _returns_within(lambda: store.cleanup(min_age_seconds=0)) is None
    finally:
        for fifo in fifos:
            _release(fifo)


def test_symlinked_sidecar_is_never_followed(store: vs.LocalFSStore, root: Path, outside: Path) -> None:
    store.put("k", b"data")
    (root / "k.meta.json").unlink()
    (root / "k.meta.json").symlink_to(outside / "secret.txt")
    with pytest.raises(vs.StorageError):
        store.stat("k")
    assert (outside / "secret.txt").read_bytes() == b"do not touch"


def test_symlink_swapped_in_for_a_folder_during_a_put(
    store: vs.LocalFSStore, root: Path, outside: Path
) -> None:
    before = _snapshot(outside)
    started = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        started.set()
        # The folder the put is writing into is replaced by a symlink mid-stream.
        (root / "swap").rename(root / "swapped-away")
        (root / "swap").symlink_to(outside, target_is_directory=True)
        yield b"b" * 1000

    store.put("swap/placeholder", b"x")
    with pytest.raises(vs.StorageError):
        store.put("swap/model.bin", body())
    assert started.is_set()
    assert _snapshot(outside) == before
    assert not (outside / "model.bin").exists()


# Files placed by hand and damaged sidecars.


def test_a_file_copied_in_by_hand_is_an_object(store: vs.LocalFSStore, root: Path) -> None:
    (root / "manual").mkdir(parents=True)
    (root / "manual/model.onnx").write_bytes(b"copied")
    info = store.stat("manual/model.onnx")
    assert info.etag == hashlib.sha256(b"copied").hexdigest()
    assert info.content_type == "application/octet-stream"
    assert info.metadata == {}
    assert [i.key for i in store.list()] == ["manual/model.onnx"]
    with store.get("manual/model.onnx") as reader:
        assert reader.read() == b"copied"


def test_a_file_copied_in_by_hand_is_hashed_once_and_its_version_kept(
    store: vs.LocalFSStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MiB)
    (root / "manual").mkdir(parents=True)
    (root / "manual/model.onnx").write_bytes(data)
    assert store.get_nowait("manual/model.onnx") is None  # only hashing can tell its ETag
    assert store.stat("manual/model.onnx").etag == hashlib.sha256(data).hexdigest()
    assert (root / "manual/model.onnx.meta.json").exists()

    def no_more_hashing(*args: object) -> None:
        raise AssertionError("hashed again")

    monkeypatch.setattr(localfs_reading, "_adopt", no_more_hashing)
    reader = store.get_nowait("manual/model.onnx", 1, 4)
    assert reader is not None
    with reader:
        assert reader.read() == data[1:4]
        assert reader.info.etag == hashlib.sha256(data).hexdigest()
    assert [i.etag for i in store.list("manual/")] == [hashlib.sha256(data).hexdigest()]
    assert store.cleanup(min_age_seconds=0).removed == 0


def test_a_file_replaced_by_hand_is_hashed_again(store: vs.LocalFSStore, root: Path) -> None:
    store.put("m", b"first", metadata={"v": "1"})
    (root / "new").write_bytes(b"second, copied over by hand")
    os.replace(root / "new", root / "m")
    info = store.stat("m")
    assert (info.etag, info.metadata) == (hashlib.sha256(b"second, copied over by hand").hexdigest(), {})
    with store.get("m") as reader:
        assert reader.read() == b"second, copied over by hand"


def test_a_store_that_cannot_write_still_serves_a_file_copied_in_by_hand(
    store: vs.LocalFSStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "d").mkdir(parents=True)
    (root / "d/f.bin").write_bytes(b"by hand")

    def read_only(*args: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "_write_sidecar", read_only)
    for _ in range(2):
        assert store.stat("d/f.bin").etag == hashlib.sha256(b"by hand").hexdigest()
    assert not (root / "d/f.bin.meta.json").exists()


def test_a_file_edited_by_hand_gets_its_true_etag(store: vs.LocalFSStore, root: Path) -> None:
    store.put("edited", b"original", metadata={"v": "1"})
    with open(root / "edited", "ab") as f:
        f.write(b" plus more")
    info = store.stat("edited")
    assert info.etag == hashlib.sha256(b"original plus more").hexdigest()
    assert info.size == len(b"original plus more")
    assert info.metadata == {}


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{not json",
        b'{"format": 99, "versions": []}',
        b"[]",
        b'{"format":1,"versions":{}}',
        b'{"format":1,"versions":[1, "x", null]}',
        b'{"format":1,"versions":[{}]}',
    ],
)
def test_a_damaged_sidecar_is_a_storage_error_for_that_key_only(
    store: vs.LocalFSStore, root: Path, damage: bytes
) -> None:
    store.put("good/a", b"a")
    store.put("good/b", b"b")
    (root / "good/a.meta.json").write_bytes(damage)
    with pytest.raises(vs.StorageError) as caught:
        store.stat("good/a")
    assert caught.value.key == "good/a"
    assert "good/a" in str(caught.value)
    with pytest.raises(vs.StorageError):
        store.get("good/a")
    assert [i.key for i in store.list()] == ["good/b"]
    store.put("good/a", b"repaired")
    assert store.stat("good/a").etag == hashlib.sha256(b"repaired").hexdigest()


# Keys and values that spell what the sidecar's own fields look like.
TRICKY_METADATA = {
    "etag": "not the etag",
    "ino": '"ino":1,"size":2,"mtime_ns":3}',
    "x": '{"etag":"x"},{"etag":"y","ino":1,"size":2,"mtime_ns":3}',
    "content-type": "}]}",
    "note": '\u00e9\u6a21"\\',
}


@pytest.mark.parametrize("versions", [1, 2, 3])
def test_metadata_that_looks_like_sidecar_text_reads_back_exactly(
    store: vs.LocalFSStore, versions: int
) -> None:
    for n in range(versions):
        put = store.put("t/k", b"v%d" % n, metadata=TRICKY_METADATA, content_type='text/x-y; a="{"')
    assert store.stat("t/k") == put
    with store.get("t/k") as reader:
        assert reader.info == put
        assert reader.read() == b"v%d" % (versions - 1)
    assert [(i.key, i.etag, i.metadata) for i in store.list("t/")] == [("t/k", put.etag, TRICKY_METADATA)]


def test_a_sidecar_laid_out_differently_is_still_read(store: vs.LocalFSStore, root: Path) -> None:
    store.put("k", b"old", metadata={"a": "1"})
    put = store.put("k", b"new", metadata={"a": "2"})
    path = root / "k.meta.json"
    doc = json.loads(path.read_bytes())
    doc["versions"] = [dict(reversed(list(v.items()))) for v in doc["versions"]]
    path.write_text(json.dumps(doc, indent=2))
    assert store.stat("k") == put
    assert next(iter(store.list())) == dataclasses.replace(put)


@pytest.mark.parametrize(
    ("field", "value"), [("etag", 5), ("content_type", None), ("metadata", {"a": 1}), ("metadata", [])]
)
def test_a_malformed_entry_for_the_data_in_place_is_a_storage_error(
    store: vs.LocalFSStore, root: Path, field: str, value: object
) -> None:
    store.put("d/k", b"x", metadata={"a": "1"})
    store.put("d/other", b"y")
    path = root / "d/k.meta.json"
    doc = json.loads(path.read_bytes())
    doc["versions"][0][field] = value
    path.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
    with pytest.raises(vs.StorageError, match="d/k"):
        store.stat("d/k")
    assert [i.key for i in store.list()] == ["d/other"]


def test_list_skips_sidecars_temp_files_and_odd_names(store: vs.LocalFSStore, root: Path) -> None:
    store.put("dir/obj", b"x")
    (root / "dir/stray.vs-tmp").write_bytes(b"temp")
    (root / "dir/orphan.meta.json").write_bytes(b"{}")
    (root / ".visiona-storage").mkdir()
    (root / ".visiona-storage/signing-key").write_bytes(b"k")
    os.mkfifo(root / "dir/fifo")
    (root / "dir/control\x01char").write_bytes(b"x")
    assert [i.key for i in store.list()] == ["dir/obj"]


# Leftovers of crashed writers.


def _plant(path: Path, data: bytes) -> None:
    """A file as a crashed writer or a person left it, long ago."""
    path.write_bytes(data)
    os.utime(path, (1, 1))


def test_cleanup_removes_stale_temp_files_and_orphan_sidecars(store: vs.LocalFSStore, root: Path) -> None:
    store.put("a/obj", b"x")
    store.put("a/gone", b"y", metadata={"v": "1"})
    sidecar_bytes = (root / "a/gone.meta.json").read_bytes()
    (root / "a/gone").unlink()  # as if killed between the two unlinks of a delete
    _plant(root / "a" / temp_name(), b"killed between link and rename")
    _plant(root / "a" / temp_name(), sidecar_bytes[:20])  # killed while writing a sidecar
    report = store.cleanup()
    assert report == vs.CleanupReport(removed=3, kept=())
    assert sorted(os.listdir(root / "a")) == ["obj", "obj.meta.json"]
    assert store.stat("a/obj").size == 1


USER_FILES = [
    "notes.meta.json",
    "x.vs-tmp",
    "a/model.onnx.vs-tmp",
    "a/model.onnx.meta.json.vs-tmp",
    "a/X.META.JSON",
    "a/.vs-0123.vs-tmp",
    "a/report.meta.json",
]


def test_cleanup_never_removes_a_persons_file_with_a_reserved_name(
    store: vs.LocalFSStore, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.put("a/obj", b"x")
    store.put("a/report", b"r")  # an object whose sidecar name a person's file will take below
    (root / "a/report").unlink()
    contents = {}
    for n, name in enumerate(USER_FILES):
        data = os.urandom(100_000) if n % 2 else json.dumps({"format": 1, "notes": "mine"}).encode()
        _plant(root / name, data)
        contents[name] = data
    with caplog.at_level("WARNING", logger="visiona_storage.localfs"):
        report = store.cleanup(min_age_seconds=0)
    assert report.removed == 0
    assert report.kept == tuple(sorted(USER_FILES))
    for name, data in contents.items():
        assert (root / name).read_bytes() == data
        assert repr(name) in caplog.text
    assert [i.key for i in store.list()] == ["a/obj"]


def test_a_fifo_or_hard_link_at_a_reserved_name_is_neither_opened_nor_written(
    store: vs.LocalFSStore, root: Path, outside: Path
) -> None:
    store.put("d/k", b"old")
    victim = outside / "victim"
    victim.write_bytes(b"precious" * 1000)
    for name in ["k.meta.json.vs-tmp", "k.vs-tmp", "x.meta.json"]:
        os.link(victim, root / "d" / name)
    os.mkfifo(root / "d" / "f.meta.json.vs-tmp")
    os.mkfifo(root / "d" / "f.vs-tmp")
    done = threading.Event()

    def work() -> None:
        store.put("d/k", b"new", metadata={"v": "2"})
        store.put("d/f", b"f")
        store.delete("d/x")
        store.cleanup(min_age_seconds=0)
        done.set()

    threading.Thread(target=work, daemon=True).start()
    assert done.wait(20), "a put, delete or cleanup hung on a FIFO"
    assert victim.read_bytes() == b"precious" * 1000
    assert os.stat(victim).st_nlink == 4
    with store.get("d/k") as reader:
        assert reader.read() == b"new"
    assert store.stat("d/k").metadata == {"v": "2"}


def test_cleanup_keeps_a_live_writers_temp_file(
    store: vs.LocalFSStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without O_TMPFILE a temp file has a name while it is written; its writer locks it.
    monkeypatch.setattr(_tempfile, "_CAN_LINK_UNNAMED", False)
    (root / "live").mkdir(parents=True)
    fd = os.open(root / "live", os.O_RDONLY | os.O_DIRECTORY)
    try:
        temp = TempFile(fd)
        temp.write(b"in progress")
        assert temp.name is not None
        assert temp.name.endswith(".vs-tmp")
        assert store.cleanup(min_age_seconds=0).removed == 0
        assert os.path.exists(root / "live" / temp.name)
        os.close(temp.fd)  # its writer dies: the lock goes, the name stays
        temp.fd = -1
        assert store.cleanup(min_age_seconds=0) == vs.CleanupReport(removed=1, kept=())
        assert os.listdir(root / "live") == []
    finally:
        os.close(fd)


def test_a_failed_publish_leaves_no_temp_name(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An unnamed temp file is named only under the folder lock: gone again if the rename fails.
    (root / "f").mkdir(parents=True)
    fd = os.open(root / "f", os.O_RDONLY | os.O_DIRECTORY)
    temp = TempFile(fd, durable=True)
    try:
        temp.write(b"new")

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EIO, "I/O error")

        monkeypatch.setattr(os, "rename", refuse)
        with pytest.raises(OSError, match="I/O error"):
            temp.publish(fd, "obj")
        assert os.listdir(root / "f") == []
    finally:
        temp.discard()
        os.close(fd)


def test_a_killed_writer_leaves_no_temp_file(store: vs.LocalFSStore, root: Path) -> None:
    class Boom(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"x" * 100_000
        raise Boom

    store.put("k/a", b"x")
    with pytest.raises(Boom):
        store.put("k/a", body())
    assert sorted(os.listdir(root / "k")) == ["a", "a.meta.json"]


# Threads.


@pytest.mark.parametrize("fsync", [True, False])
def test_threads_writing_one_key_never_mix_data_and_metadata(root: Path, fsync: bool) -> None:
    # Without fsync, a put swaps its files in (`_tree.replace`): the key never goes missing.
    store = vs.LocalFSStore(root, fsync=fsync)
    store.put("hot", b"first", metadata={"sha256": hashlib.sha256(b"first").hexdigest()})
    errors: list[str] = []
    stop = threading.Event()

    def write(n: int) -> None:
        for i in range(30):
            data = f"{n}-{i}-".encode() * (n * 500 + i)
            store.put("hot", data, metadata={"sha256": hashlib.sha256(data).hexdigest()})

    def read() -> None:
        while not stop.is_set():
            try:
                with store.get("hot") as r:
                    data, info = r.read(), r.info
            except vs.NotFoundError:
                errors.append("missing")
                continue
            if not hashlib.sha256(data).hexdigest() == info.etag == info.metadata["sha256"]:
                errors.append(info.etag)

    readers = [threading.Thread(target=read) for _ in range(3)]
    writers = [threading.Thread(target=write, args=(n,)) for n in range(1, 5)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    final = store.stat("hot")
    with store.get("hot") as r:
        assert hashlib.sha256(r.read()).hexdigest() == final.etag == final.metadata["sha256"]
    store.close()


def test_a_put_leaves_files_at_its_old_staging_names_alone(store: vs.LocalFSStore, root: Path) -> None:
    store.put("n/k", b"x")
    (root / "n/k.vs-tmp").write_bytes(b"a person's file")
    (root / "n/k.meta.json.vs-tmp").write_bytes(b"another")
    store.put("n/k", b"y")
    assert sorted(os.listdir(root / "n")) == ["k", "k.meta.json", "k.meta.json.vs-tmp", "k.vs-tmp"]
    assert (root / "n/k.vs-tmp").read_bytes() == b"a person's file"


def test_the_next_delete_of_a_key_removes_its_orphan_sidecar(store: vs.LocalFSStore, root: Path) -> None:
    store.put("n/k", b"x")
    store.put("n/other", b"x")
    (root / "n/k").unlink()  # as if killed between the two unlinks of a delete
    store.delete("n/k")
    assert sorted(os.listdir(root / "n")) == ["other", "other.meta.json"]


def test_a_delete_leaves_a_persons_file_at_a_missing_objects_sidecar_name(
    store: vs.LocalFSStore, root: Path
) -> None:
    (root / "n").mkdir(parents=True)
    (root / "n/k.meta.json").write_text('{"mine": true}')
    store.delete("n/k")
    assert (root / "n/k.meta.json").read_text() == '{"mine": true}'


def test_a_hand_edited_file_is_recognised_even_while_its_access_time_changes(
    store: vs.LocalFSStore, root: Path
) -> None:
    store.put("e", b"original")
    (root / "e").write_bytes(b"edited by hand")
    os.utime(root / "e", ns=(1, (root / "e").stat().st_mtime_ns))  # an access time far from "now"
    assert store.stat("e").etag == hashlib.sha256(b"edited by hand").hexdigest()


# openat2: one call per path where the kernel has it, the segment walk elsewhere.


def test_open_beneath_refuses_symlinks_and_escapes(root: Path, outside: Path) -> None:
    from visiona_storage.backends.localfs import _linux  # noqa: PLC0415

    (root / "a" / "b").mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "a" / "inner").symlink_to(root / "a" / "b", target_is_directory=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        if _linux._syscall is None:
            pytest.skip("this kernel has no openat2")
        opened = _linux.open_beneath(fd, "a/b", flags)
        assert opened is not None
        os.close(opened)
        for path in ("link", "link/secret.txt", "a/inner", "../outside", "a/../../outside", "missing/x"):
            assert _linux.open_beneath(fd, path, flags) is None, path
    finally:
        os.close(fd)


@pytest.mark.parametrize("openat2", [True, False])
def test_the_segment_walk_and_openat2_agree(
    root: Path, outside: Path, openat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visiona_storage.backends.localfs import _linux  # noqa: PLC0415

    if not openat2:
        monkeypatch.setattr(_linux, "_syscall", None)
    store = vs.LocalFSStore(root)
    store.put("a/b/c.bin", b"data")
    (root / "a" / "link").symlink_to(outside, target_is_directory=True)
    with store.get("a/b/c.bin") as r:
        assert r.read() == b"data"
    assert [i.key for i in store.list("a/")] == ["a/b/c.bin"]
    with pytest.raises(vs.StorageError, match="symlink"):
        store.stat("a/link/secret.txt")
    with pytest.raises(vs.StorageError, match="symlink"):
        store.put("a/link/x", b"x")
    store.delete("a/b/c.bin")
    assert not (root / "a" / "b").exists()


# Large bodies: read and written by a helper thread (files, bytes) or written by one (generators).


@pytest.mark.parametrize(
    "make",
    [
        lambda: (FailingFile(3 * MiB), 8 * MiB, vs.DataReadError),
        lambda: (io.BytesIO(b"y" * (3 * MiB)), 5 * MiB, vs.SizeMismatchError),
        lambda: (io.BytesIO(b"y" * (5 * MiB)), 3 * MiB, vs.SizeMismatchError),
        lambda: ((b"z" * MiB for _ in range(3)), 4 * MiB, vs.SizeMismatchError),
    ],
    ids=["read-error", "short-file", "long-file", "short-generator"],
)
def test_a_large_body_that_fails_midway_stores_nothing(store: vs.LocalFSStore, root: Path, make: Any) -> None:
    store.put("big/k", b"old", metadata={"v": "1"})
    data, size, error = make()
    with pytest.raises(error):
        store.put("big/k", data, size=size)
    assert store.stat("big/k").metadata == {"v": "1"}
    with store.get("big/k") as r:
        assert r.read() == b"old"
    assert sorted(os.listdir(root / "big")) == ["k", "k.meta.json"]


@pytest.mark.parametrize("kind", ["bytes", "file", "generator"])
def test_large_bodies_of_every_kind_get_the_right_etag(store: vs.LocalFSStore, kind: str) -> None:
    data = os.urandom(5 * MiB + 123)
    body: Any = {
        "bytes": data,
        "file": io.BytesIO(data),
        "generator": (data[i : i + 300_000] for i in range(0, len(data), 300_000)),
    }[kind]
    info = store.put("big/k", body)
    assert info.etag == hashlib.sha256(data).hexdigest()
    with store.get("big/k") as r:
        assert r.read() == data


class _ReadOnlyRaw(io.RawIOBase):
    """A file with only ``read``: io.RawIOBase's own ``readinto`` raises NotImplementedError."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.data.read(min(size, 70_000) if size and size > 0 else size)  # short reads


class _ReadOnly:
    """A file-like object with ``read`` and nothing else."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.data.read(size)


PIECE = 4 * MiB  # visiona_storage.backends.localfs._writing.FILE_PIECE


@pytest.mark.parametrize(
    "length", [0, 1, MiB, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE, 3 * PIECE + 5], ids=lambda n: f"{n}B"
)
@pytest.mark.parametrize("declared", [True, False], ids=["size-given", "size-unknown"])
@pytest.mark.parametrize("kind", ["disk", "bytesio", "read-only-raw", "read-only"])
def test_file_bodies_round_trip_at_every_piece_boundary(
    store: vs.LocalFSStore, tmp_path: Path, length: int, declared: bool, kind: str
) -> None:
    data = os.urandom(length)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    with open(path, "rb") as disk:
        body: Any = {
            "disk": disk,
            "bytesio": io.BytesIO(data),
            "read-only-raw": _ReadOnlyRaw(data),
            "read-only": _ReadOnly(data),
        }[kind]
        info = store.put("f/k", body, size=length if declared else -1)
    assert info.size == length
    assert info.etag == hashlib.sha256(data).hexdigest()
    assert store.stat("f/k") == info
    with store.get("f/k") as r:
        assert r.read() == data


@pytest.mark.parametrize("length", [PIECE, 2 * PIECE])
@pytest.mark.parametrize("declared", [-1, 1, 3], ids=["fewer", "one-more", "more"])
def test_a_file_body_off_its_declared_size_by_any_amount_stores_nothing(
    store: vs.LocalFSStore, root: Path, length: int, declared: int
) -> None:
    store.put("f/k", b"old")
    with pytest.raises(vs.SizeMismatchError):
        store.put("f/k", io.BytesIO(os.urandom(length)), size=length + declared)
    with store.get("f/k") as r:
        assert r.read() == b"old"
    assert sorted(os.listdir(root / "f")) == ["k", "k.meta.json"]


class _Liar(io.RawIOBase):
    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Any:
        return self.answer


@pytest.mark.parametrize("answer", [None, -1, 10 * PIECE, "x"])
def test_a_file_whose_readinto_returns_nonsense_is_refused(store: vs.LocalFSStore, answer: object) -> None:
    with pytest.raises(vs.InvalidArgumentError, match="readinto"):
        store.put("f/k", _Liar(answer), size=PIECE * 2)
    with pytest.raises(vs.NotFoundError):
        store.stat("f/k")


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_listing_a_500_deep_key_holds_a_bounded_number_of_descriptors(store: vs.LocalFSStore) -> None:
    deep = "d/" * 499 + "leaf"
    store.put(deep, b"x")
    store.put("d/" * 250 + "middle", b"y")
    store.put("e", b"z")
    before = _open_descriptors()
    listing = store.list()
    first = next(listing)  # the deepest point of the walk: every folder above it entered
    during = _open_descriptors()
    rest = list(listing)
    assert [first.key] + [i.key for i in rest] == [deep, "d/" * 250 + "middle", "e"]
    assert during - before <= 3
    assert _open_descriptors() == before


def test_a_listing_goes_on_when_a_folder_it_left_is_removed(store: vs.LocalFSStore, root: Path) -> None:
    for key in ["a/b/c", "a/z", "b"]:
        store.put(key, b"x")
    listing = store.list()
    assert next(listing).key == "a/b/c"
    store.delete("a/z")  # prunes a/ once a/b/c goes too
    store.delete("a/b/c")
    assert [i.key for i in listing] == ["b"]


def test_a_huge_file_at_a_sidecar_name_is_damage_not_memory(tmp_path: Path) -> None:
    """A 64 MiB ``x.meta.json`` put there by hand reads as damaged metadata, without
    reading the whole file into memory (a GET may run this on the event loop)."""
    import tracemalloc  # noqa: PLC0415

    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        store.put("x", b"data")
        with open(tmp_path / "x.meta.json", "wb") as f:
            f.write(b"{" + b" " * (64 << 20))
        tracemalloc.start()
        try:
            with pytest.raises(vs.StorageError):
                store.stat("x")
            with pytest.raises(vs.StorageError):
                store.get("x")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 << 20
