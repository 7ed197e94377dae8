"""`vs.sync` and ``visiona-storage sync``: between localfs, moto and Ceph, both ways,
with the skip rule (a content hash, never size and time), conditional writes, failed
keys, ``--delete`` and ``--dry-run``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import visiona_storage as vs
from servers import S3Server
from visiona_storage.cli import main
from visiona_storage.driver import Body, ObjectInfo, ObjectReader, Store

MiB = 1 << 20

UNICODE_META = {"framework": "模型 onnx", "note": "café =?utf-8?q?x?= ä"}


def _objects() -> dict[str, bytes]:
    return {
        "models/u1/yolov5.nef": b"weights" * 1000,
        "models/u1/模型 v2.onnx": os.urandom(3000),
        "models/u2/empty.bin": b"",
        "top.json": b'{"a": 1}',
        "z/deep/er/still/x": b"x",
    }


def _fill(store: Store, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        store.put(key, data, metadata=UNICODE_META if key.endswith(".onnx") else None)


def _contents(store: Store, prefix: str = "") -> dict[str, tuple[bytes, str, dict[str, str]]]:
    found = {}
    for listed in store.list(prefix):
        with store.get(listed.key) as reader:
            found[listed.key] = (reader.read(), reader.info.content_type, reader.info.metadata)
    return found


@pytest.fixture(params=["memory", "localfs", "moto", "ceph"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A factory of fresh empty stores of one backend."""
    made: list[Store] = []
    buckets: list[str] = []
    server: S3Server | None = None
    if request.param in ("moto", "ceph"):
        server = request.getfixturevalue(request.param)

    def make() -> Store:
        store: Store
        if request.param == "memory":
            store = vs.MemoryStore()
        elif request.param == "localfs":
            store = vs.LocalFSStore(tmp_path / f"root{len(made)}", fsync=False)
        else:
            assert server is not None
            buckets.append(server.new_bucket())
            store = server.store(buckets[-1])
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    for bucket in buckets:
        assert server is not None
        server.drop_bucket(bucket)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Store]:
    with vs.LocalFSStore(tmp_path / "local", fsync=False) as store:
        yield store


# Both ways between each backend and localfs, and within each backend.


@pytest.mark.parametrize("direction", ["to", "from", "within"])
def test_sync_copies_bytes_type_and_metadata_then_skips_them(
    backend: Callable[[], Store], local: Store, direction: str
) -> None:
    other = backend()
    src, dst = {"to": (local, other), "from": (other, local), "within": (other, backend())}[direction]
    objects = _objects()
    _fill(src, objects)
    src.put("models/u1/custom.bin", b"typed", content_type="text/plain; charset=utf-8")

    report = vs.sync(src, dst)
    assert (report.copied, report.skipped, report.deleted, report.failed) == (6, 0, 0, 0)
    assert report.bytes_copied == sum(map(len, objects.values())) + 5
    assert _contents(dst) == _contents(src)
    assert dst.stat("models/u1/模型 v2.onnx").metadata == UNICODE_META

    again = vs.sync(src, dst)
    assert (again.copied, again.skipped, again.failed) == (0, 6, 0)


def test_sync_of_a_large_object_to_and_from_s3(server: S3Server, local: Store, tmp_path: Path) -> None:
    """Past a part (a multipart upload; Ceph and moto do not enforce conditions on
    those, so the destination is checked just before the put instead)."""
    bucket = server.new_bucket()
    try:
        with server.store(bucket) as s3, vs.LocalFSStore(tmp_path / "back", fsync=False) as back:
            data = os.urandom(12 * MiB + 3)
            local.put("big/model.onnx", data, metadata={"framework": "onnx"})
            s3.put("big/model.onnx", b"an older, smaller version")
            report = vs.sync(local, s3)
            assert (report.copied, report.failed) == (1, 0), report.failures
            info = s3.stat("big/model.onnx")
            assert info.sha256 == hashlib.sha256(data).hexdigest()
            assert info.metadata == {"framework": "onnx"}
            assert vs.sync(local, s3).skipped == 1
            assert vs.sync(s3, back).copied == 1
            assert back.stat("big/model.onnx").etag == hashlib.sha256(data).hexdigest()
    finally:
        server.drop_bucket(bucket)


# The skip rule: a content hash, never size and time alone.


def test_same_size_other_bytes_at_the_destination_are_recopied(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("k", b"right bytes")
        dst.put("k", b"wrong bytes")
        assert vs.sync(local, dst).copied == 1
        assert dst.get("k").read() == b"right bytes"


def test_an_s3_object_without_a_recorded_hash_is_hashed_by_reading(moto: S3Server, local: Store) -> None:
    """Objects other clients wrote carry no SHA-256: same size with other bytes is
    recopied, and the same bytes are skipped."""
    bucket = moto.new_bucket()
    try:
        client = moto.client()
        client.put_object(
            Bucket=bucket, Key="same", Body=b"same bytes", ContentType="application/octet-stream"
        )
        client.put_object(
            Bucket=bucket, Key="other", Body=b"XXXXXXXXXX", ContentType="application/octet-stream"
        )
        local.put("same", b"same bytes")
        local.put("other", b"other byte")
        with moto.store(bucket) as s3:
            assert s3.stat("same").sha256 is None
            report = vs.sync(local, s3)
            assert (report.copied, report.skipped) == (1, 1)
            assert s3.get("other").read() == b"other byte"
            assert s3.stat("other").sha256 == hashlib.sha256(b"other byte").hexdigest()
            back = vs.sync(s3, local)
            assert (back.copied, back.skipped) == (0, 2)
    finally:
        moto.drop_bucket(bucket)


def test_changed_metadata_or_type_alone_is_copied(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("a", b"data", metadata={"v": "1"})
        local.put("b", b"data", content_type="text/plain")
        assert vs.sync(local, dst).copied == 2
        local.put("a", b"data", metadata={"v": "2"})
        local.put("b", b"data", content_type="text/csv")
        report = vs.sync(local, dst)
        assert (report.copied, report.skipped) == (2, 0)
        assert dst.stat("a").metadata == {"v": "2"}
        assert dst.stat("b").content_type == "text/csv"


# Concurrent writers: conditional writes, and a source that changes.


class _Busy(Store):
    """A store used by someone else as well: as its listing reads a key,
    `meanwhile(key)` runs (another writer's put, say), so the listing is already
    out of date when the key is handed out."""

    def __init__(self, inner: Store, meanwhile: Callable[[str], None]) -> None:
        self.inner = inner
        self.meanwhile = meanwhile

    def _put(
        self, key: str, body: Body, metadata: dict[str, str], content_type: str, **kw: Any
    ) -> ObjectInfo:
        return self.inner.put(key, body, body.size, metadata, content_type, sha256=body.sha256, **kw)

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        return self.inner.get(key, start, end)

    def _stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def _delete(self, key: str) -> None:
        self.inner.delete(key)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        for info in self.inner.list(prefix):
            self.meanwhile(info.key)
            yield info


def test_an_object_another_writer_replaces_at_the_destination_is_left_alone(
    local: Store, tmp_path: Path
) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as inner:
        local.put("k", b"source version")
        local.put("new", b"source version of new")
        inner.put("k", b"old destination version")

        def another_writer(key: str) -> None:
            if key == "k":
                inner.put("k", b"the other writer's newer version")
                inner.put("new", b"the other writer created it")

        report = vs.sync(local, _Busy(inner, another_writer))
        assert report.failed == 2
        assert {f.key for f in report.failures} == {"k", "new"}
        assert all("changed at the destination" in f.error for f in report.failures)
        assert inner.get("k").read() == b"the other writer's newer version"
        assert inner.get("new").read() == b"the other writer created it"


def test_an_object_replaced_at_the_source_during_the_sync_is_not_copied_half(
    local: Store, tmp_path: Path
) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("k", b"first version")

        def replaced(key: str) -> None:
            local.put(key, b"second version, longer")

        report = vs.sync(_Busy(local, replaced), dst)
        assert report.failed == 1
        assert "changed at the source" in report.failures[0].error
        assert list(dst.list()) == []
        assert vs.sync(local, dst).copied == 1
        assert dst.get("k").read() == b"second version, longer"


def test_delete_leaves_an_object_another_writer_replaced(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as inner:
        inner.put("gone-at-source", b"v1")

        def another_writer(key: str) -> None:
            inner.put(key, b"v2, written during the sync")

        report = vs.sync(local, _Busy(inner, another_writer), delete=True)
        assert (report.deleted, report.failed) == (0, 1)
        assert inner.get("gone-at-source").read() == b"v2, written during the sync"


# --delete, --dry-run, prefixes and failed keys.


def test_delete_and_dry_run(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        _fill(local, _objects())
        vs.sync(local, dst)
        dst.put("models/u1/only-here", b"x")
        dst.put("outside/only-here", b"x")
        local.put("models/u1/yolov5.nef", b"changed")
        before = _contents(dst)

        plan = vs.sync(local, dst, "models/", delete=True, dry_run=True)
        assert (plan.copied, plan.deleted, plan.dry_run) == (1, 1, True)
        assert _contents(dst) == before

        done = vs.sync(local, dst, "models/", delete=True)
        assert (done.copied, done.deleted, done.skipped) == (1, 1, 2)
        assert _contents(dst, "models/") == _contents(local, "models/")
        assert dst.stat("outside/only-here").size == 1
        without_delete = vs.sync(local, dst)
        assert without_delete.deleted == 0
        assert dst.stat("outside/only-here").size == 1


def test_keys_the_destination_refuses_fail_alone(moto: S3Server, local: Store) -> None:
    """S3 holds ``a/b`` beside ``a/b/c``, and keys outside the key rules; a filesystem
    takes neither. Each fails with its reason, and the rest is copied."""
    bucket = moto.new_bucket()
    try:
        client = moto.client()
        for key in ("a/b", "a/b/c", "a//double", "fine"):
            client.put_object(Bucket=bucket, Key=key, Body=key.encode())
        with moto.store(bucket) as s3:
            planned = vs.sync(s3, local, dry_run=True)
            report = vs.sync(s3, local)
        # A dry run foresees the key that breaks the rules; a folder conflict only a
        # put can find.
        assert (planned.copied, planned.failed) == (3, 1)
        assert planned.failures[0].key == "a//double"
        assert (report.copied, report.failed) == (2, 2)
        failed = {f.key: f.error for f in report.failures}
        # Copied in parallel, either of a/b and a/b/c may come first and stay.
        conflict = ({"a/b", "a/b/c"} & set(failed)).pop()
        assert set(failed) == {conflict, "a//double"}
        assert "folder" in failed[conflict]
        assert "empty" in failed["a//double"] or "segment" in failed["a//double"]
        assert local.get("fine").read() == b"fine"
        kept = ({"a/b", "a/b/c"} - {conflict}).pop()
        assert local.get(kept).read() == kept.encode()
    finally:
        moto.drop_bucket(bucket)


def test_bad_prefix_is_refused(local: Store) -> None:
    with pytest.raises(vs.InvalidKeyError):
        vs.sync(local, vs.MemoryStore(), 5)  # type: ignore[arg-type]


# The command.


def _config(path: Path, root: Path) -> Path:
    path.write_text(yaml.safe_dump({"storage": {"backend": "localfs", "localfs": {"root": str(root)}}}))
    return path


def test_sync_command_between_configuration_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _config(tmp_path / "a.yaml", tmp_path / "a")
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    with vs.open_store(a) as src:
        _fill(src, _objects())
    assert main(["--config", str(a), "sync", "--from", "localfs", "--to", str(b), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "would copy models/u1/模型 v2.onnx" in out
    assert "would copy 5 (" in out
    assert not (tmp_path / "b").exists()  # a dry run makes nothing, not even the root
    assert err == f"visiona-storage: the destination root {tmp_path / 'b'} does not exist yet\n"

    from visiona_storage import _sync_command  # noqa: PLC0415

    monkeypatch.setattr(_sync_command, "LOGGED_EVERY", 0.0)
    assert main(["sync", "--from", str(a), "--to", str(b), "--progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("copied 5 (")
    made, *progress = captured.err.splitlines()
    assert made == f"visiona-storage: making the destination root {tmp_path / 'b'}"
    # Not a terminal: whole lines a log can hold, marked apart from the summary.
    assert progress[0].startswith("progress: copied ")
    assert all(line.startswith("progress: ") for line in progress)
    assert captured.err.endswith("\n")
    assert "\r" not in captured.err
    assert "\x1b" not in captured.err
    monkeypatch.undo()
    assert main(["sync", "--from", str(a), "--to", str(b), "--progress"]) == 0
    assert capsys.readouterr().err == ""  # done before the first line was due
    with vs.open_store(a) as src, vs.open_store(b) as dst:
        assert _contents(dst) == _contents(src)
        dst.put("extra", b"x")
    assert main(["sync", "--from", str(a), "--to", str(b), "--delete"]) == 0
    summary = (
        "skipped 5 (the same bytes, content type and metadata at both ends;"
        " 5 without a request of their own), deleted 1, failed 0"
    )
    assert summary in capsys.readouterr().out


def test_sync_command_exits_1_with_one_line_per_failed_key(
    moto: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = moto.new_bucket()
    try:
        client = moto.client()
        for key in ("a/b", "a/b/c", "ok"):
            client.put_object(Bucket=bucket, Key=key, Body=b"x")
        config = tmp_path / "c.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "storage": {
                        "backend": "s3",
                        "localfs": {"root": str(tmp_path / "root")},
                        "s3": {
                            "endpoint": moto.endpoint,
                            "bucket": bucket,
                            "access_key": moto.access_key,
                            "secret_key": moto.secret_key,
                        },
                    }
                }
            )
        )
        assert main(["--config", str(config), "sync", "--from", "s3", "--to", "localfs"]) == 1
        captured = capsys.readouterr()
        made, *lines = captured.err.strip().splitlines()
        assert made == f"visiona-storage: making the destination root {tmp_path / 'root'}"
        assert len(lines) == 1
        assert lines[0].startswith(("visiona-storage: failed: a/b/c: ", "visiona-storage: failed: a/b: "))
        assert "copied 2" in captured.out
    finally:
        moto.drop_bucket(bucket)


@pytest.mark.parametrize("name", ["nowhere", "memory"])
def test_sync_command_refuses_an_unknown_store(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--from", name, "--to", "localfs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--from" in err
    assert "localfs, s3" in err


def test_sync_of_a_file_body_is_verified(local: Store) -> None:
    """The copy hands the source's SHA-256 to the destination, which stores nothing
    if the bytes differ: what a reader that returns other bytes would cause."""
    dst = vs.MemoryStore()
    local.put("k", b"abc")
    with pytest.raises(vs.ChecksumMismatchError):
        dst.put("k", io.BytesIO(b"abd"), sha256=local.stat("k").sha256)
    assert list(dst.list()) == []


# The state cache: a re-run skips what sync verified before, without a request.


class _Counting(Store):
    """`inner`, counting the calls that reach its objects (stat and get)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads = 0

    @property
    def identity(self) -> str | None:
        return self.inner.identity

    @property
    def lists_details(self) -> bool:  # type: ignore[override]
        return self.inner.lists_details

    @property
    def lists_metadata(self) -> bool:  # type: ignore[override]
        return self.inner.lists_metadata

    def _put(
        self, key: str, body: Body, metadata: dict[str, str], content_type: str, **kw: Any
    ) -> ObjectInfo:
        return self.inner.put(key, body, body.size, metadata, content_type, sha256=body.sha256, **kw)

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        self.reads += 1
        return self.inner.get(key, start, end)

    def _stat(self, key: str) -> ObjectInfo:
        self.reads += 1
        return self.inner.stat(key)

    def _delete(self, key: str) -> None:
        self.inner.delete(key)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)


@pytest.fixture(params=["localfs", "moto"])
def cached_dst(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A destination whose versions the state cache may hold: localfs or S3 (moto)."""
    if request.param == "localfs":
        with vs.LocalFSStore(tmp_path / "dst", fsync=False) as store:
            yield store
        return
    server: S3Server = request.getfixturevalue("moto")
    bucket = server.new_bucket()
    try:
        with server.store(bucket) as store:
            yield store
    finally:
        server.drop_bucket(bucket)


def test_a_rerun_skips_on_the_state_cache_without_reading_either_side(
    local: Store, cached_dst: Store
) -> None:
    _fill(local, _objects())
    src, dst = _Counting(local), _Counting(cached_dst)
    assert vs.sync(src, dst).copied == 5
    src.reads = dst.reads = 0
    again = vs.sync(src, dst)
    assert (again.copied, again.skipped, again.skipped_as_listed, again.failed) == (0, 5, 5, 0)
    assert (src.reads, dst.reads) == (0, 0)


def test_a_skip_proved_without_the_cache_is_cached_for_the_next_run(local: Store, cached_dst: Store) -> None:
    _fill(local, _objects())
    assert vs.sync(local, cached_dst, state=False).copied == 5
    first = vs.sync(local, cached_dst)
    # A localfs listing is its own proof; an S3 one needs the cache, filled by this run.
    assert (first.skipped, first.skipped_as_listed) == (5, 5 if cached_dst.lists_metadata else 0)
    second = vs.sync(local, cached_dst)
    assert (second.skipped, second.skipped_as_listed) == (5, 5)


def test_a_destination_changed_behind_syncs_back_is_recopied(
    local: Store, cached_dst: Store, moto: S3Server
) -> None:
    """Same size, other bytes, written by another client: its listed ETag (and
    Last-Modified) change, so the cache misses and the proof recopies it."""
    _fill(local, _objects())
    assert vs.sync(local, cached_dst).copied == 5
    if isinstance(cached_dst, vs.S3Store):
        moto.client().put_object(Bucket=cached_dst.bucket, Key="top.json", Body=b'{"a": 2}')
    else:
        cached_dst.put("top.json", b'{"a": 2}')
    report = vs.sync(local, cached_dst)
    assert (report.copied, report.skipped, report.skipped_as_listed) == (1, 4, 4)
    assert cached_dst.get("top.json").read() == b'{"a": 1}'
    assert cached_dst.stat("top.json").content_type == local.stat("top.json").content_type


def test_a_source_rewritten_with_other_metadata_is_recopied(local: Store, tmp_path: Path) -> None:
    """Same bytes, so the same ETag and size, within the same second: the listed
    Last-Modified (to the microsecond on localfs) still tells the versions apart."""
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("a", b"data", metadata={"v": "1"})
        assert vs.sync(local, dst).copied == 1
        assert vs.sync(local, dst).skipped_as_listed == 1
        local.put("a", b"data", metadata={"v": "2"})
        report = vs.sync(local, dst)
        assert (report.copied, report.skipped_as_listed) == (1, 0)
        assert dst.stat("a").metadata == {"v": "2"}


def test_a_corrupt_state_file_warns_once_and_the_sync_goes_on(
    local: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"not a database, " * 512)
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        _fill(local, _objects())
        dst.put("top.json", b'{"a": 2}')
        report = vs.sync(local, dst, state=state)
        again = vs.sync(local, dst, state=state)
        assert _contents(dst) == _contents(local)
    assert (report.copied, report.failed) == (5, 0)
    assert again.skipped == 5
    warnings = [r.getMessage() for r in caplog.records if r.name == "visiona_storage.sync"]
    assert len(warnings) == 2  # one per run
    assert all(w.startswith(f"visiona-storage: sync state {state} unusable (") for w in warnings)


def test_with_state_false_nothing_is_cached(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        _fill(local, _objects())
        vs.sync(local, dst, state=False)
        report = vs.sync(local, dst, state=False)
    assert (report.skipped, report.skipped_as_listed) == (5, 5)  # the localfs listings prove it
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "visiona-storage").exists()


def test_the_default_state_file_is_under_xdg_cache_home(local: Store, tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("k", b"v")
        vs.sync(local, dst)
    state = Path(os.environ["XDG_CACHE_HOME"]) / "visiona-storage" / "sync.sqlite"
    assert state.stat().st_mode & 0o777 == 0o600


def test_sync_command_state_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _config(tmp_path / "a.yaml", tmp_path / "a")
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    with vs.open_store(a) as src:
        _fill(src, _objects())
    state = tmp_path / "kept" / "state.sqlite"
    default = Path(os.environ["XDG_CACHE_HOME"]) / "visiona-storage"
    assert main(["sync", "--from", str(a), "--to", str(b), "--state", str(state)]) == 0
    assert main(["sync", "--from", str(a), "--to", str(b), "--no-state"]) == 0
    assert state.exists()
    assert not default.exists()
    assert "skipped 5" in capsys.readouterr().out
    with vs.open_store(a) as src, vs.open_store(b) as dst:
        report = vs.sync(src, dst, state=state)
    assert report.skipped_as_listed == 5
    with pytest.raises(SystemExit):
        main(["sync", "--from", str(a), "--to", str(b), "--state", str(state), "--no-state"])
    assert "not allowed with" in capsys.readouterr().err


def test_sync_command_with_a_corrupt_default_state_prints_one_warning_line(tmp_path: Path) -> None:
    a = _config(tmp_path / "a.yaml", tmp_path / "a")
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    with vs.open_store(a) as src:
        _fill(src, _objects())
    state = tmp_path / "cache" / "visiona-storage" / "sync.sqlite"
    state.parent.mkdir(parents=True, mode=0o700)
    state.write_bytes(b"\xff" * 4096)
    command = [sys.executable, "-m", "visiona_storage", "sync", "--from", str(a), "--to", str(b)]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"visiona-storage: making the destination root {tmp_path / 'b'}",
        f"visiona-storage: sync state {state} unusable (file is not a database); syncing without it",
    ]
    assert done.stdout.startswith("copied 5 (")


@pytest.mark.parametrize("problem", ["corrupt", "under a file", "others can write"])
def test_sync_command_refuses_a_named_state_file_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    """A state file asked for by name is not quietly done without: exit 2, one line
    saying why, nothing copied."""
    a = _config(tmp_path / "a.yaml", tmp_path / "a")
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    with vs.open_store(a) as src:
        _fill(src, _objects())
    state = tmp_path / "state.sqlite"
    why = {
        "corrupt": "file is not a database",
        "under a file": "is not a folder",
        "others can write": "other users",
    }
    if problem == "corrupt":
        state.write_bytes(b"\xff" * 4096)
    elif problem == "under a file":
        (tmp_path / "file").write_bytes(b"")
        state = tmp_path / "file" / "state.sqlite"
    else:
        state.write_bytes(b"")
        state.chmod(0o666)
    assert main(["sync", "--from", str(a), "--to", str(b), "--state", str(state)]) == 2
    err = capsys.readouterr().err
    assert f"--state {state}: cannot be used (" in err
    assert why[problem] in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("problem", ["locked", "folder is a file"])
def test_a_state_file_that_cannot_be_written_warns_once(
    problem: str,
    local: Store,
    moto: S3Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another run holding the file's write lock past the busy timeout, or a path
    that cannot be made: one warning, and the sync is as without a cache. (S3's
    versions are cached: its listing lacks their SHA-256.)"""
    from visiona_storage import _sync_state  # noqa: PLC0415

    monkeypatch.setattr(_sync_state, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(_sync_state, "BATCH", 2)
    bucket = moto.new_bucket()
    if problem == "locked":
        state = tmp_path / "state.sqlite"
        with vs.LocalFSStore(tmp_path / "warm", fsync=False) as warm:
            vs.sync(local, warm, state=state)  # makes the file
        holder = sqlite3.connect(state, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        (tmp_path / "file").write_bytes(b"")
        state = tmp_path / "file" / "state.sqlite"
    try:
        with moto.store(bucket) as dst:
            _fill(local, _objects())
            report = vs.sync(local, dst, state=state)
            assert _contents(dst) == _contents(local)
    finally:
        if problem == "locked":
            holder.close()
        moto.drop_bucket(bucket)
    assert (report.copied, report.failed) == (5, 0)
    warnings = [r.getMessage() for r in caplog.records if r.name == "visiona_storage.sync"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"visiona-storage: sync state {state} unusable (")


# What the cache must never be fooled by.


@pytest.mark.parametrize("how", ["new inode, same time", "sidecar removed"])
def test_a_localfs_file_replaced_by_hand_is_never_skipped_on_the_cache(
    local: Store, tmp_path: Path, how: str
) -> None:
    """Same bytes and the same modification time, but not the version sync saw: a
    restore, ``cp -p`` then ``mv``, or a sidecar deleted by hand. The store tells
    the file apart (by inode, or finds no record), so must sync: the metadata
    travels again."""
    state = tmp_path / "state.sqlite"
    with vs.LocalFSStore(tmp_path / "dst", fsync=False) as dst:
        local.put("k", b"hello", metadata={"owner": "alice"}, content_type="application/x-model")
        assert vs.sync(local, dst, state=state).copied == 1
        path = tmp_path / "dst" / "k"
        if how == "sidecar removed":
            (tmp_path / "dst" / "k.meta.json").unlink()
        else:
            shutil.copy2(path, tmp_path / "k.copy")
            os.replace(tmp_path / "k.copy", path)
        assert dst.stat("k").metadata == {}
        report = vs.sync(local, dst, state=state)
        assert (report.copied, report.skipped) == (1, 0)
        assert dst.stat("k").metadata == {"owner": "alice"}


def _plant(state: Path, store: Store, listed: ObjectInfo, sha256: str, content_type: str) -> None:
    """Write the row another user could: `listed` said to hold `sha256`, no metadata."""
    from visiona_storage._sync_state import _micros  # noqa: PLC0415

    row = (store.identity, listed.key, listed.etag, listed.size, _micros(listed), sha256, content_type, "{}")
    with contextlib.closing(sqlite3.connect(state, isolation_level=None)) as db:
        db.execute("INSERT OR REPLACE INTO verified VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


@pytest.mark.parametrize("problem", ["writable by others", "another user's"])
def test_a_state_file_others_can_write_is_not_trusted(
    local: Store, moto: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    """Rows another user planted would make sync skip what it must copy: such a file
    gets one warning and the sync proves every pair as without a cache."""
    state = tmp_path / "state.sqlite"
    bucket = moto.new_bucket()
    try:
        with moto.store(bucket) as dst:
            local.put("k", b"hello")
            assert vs.sync(local, dst, state=state).copied == 1
            if problem == "writable by others":
                state.chmod(0o666)
            else:
                os.chown(state, 12345, 12345)
            moto.client().put_object(Bucket=bucket, Key="k", Body=b"HELLO")  # same size, other bytes
            _plant(
                state,
                dst,
                next(dst.list()),
                hashlib.sha256(b"hello").hexdigest(),
                local.stat("k").content_type,
            )
            caplog.clear()
            report = vs.sync(local, dst, state=state)
            assert (report.copied, report.skipped) == (1, 0)
            assert dst.get("k").read() == b"hello"
    finally:
        moto.drop_bucket(bucket)
    warnings = [r.getMessage() for r in caplog.records if r.name == "visiona_storage.sync"]
    assert len(warnings) == 1
    assert "other user" in warnings[0]


@pytest.mark.parametrize("inner", [True, False], ids=["destination inside", "source inside"])
def test_stores_that_overlap_are_refused_before_anything_is_done(tmp_path: Path, inner: bool) -> None:
    """A destination whose root holds the source's would list the source's files as
    its own, and ``delete=True`` would delete them."""
    with (
        vs.LocalFSStore(tmp_path / "d" / "sub", fsync=False) as sub,
        vs.LocalFSStore(tmp_path / "d") as outer,
    ):
        sub.put("x1", b"precious")
        src, dst = (sub, outer) if inner else (outer, sub)
        with pytest.raises(vs.InvalidArgumentError, match="overlap"):
            vs.sync(src, dst, delete=True)
        with pytest.raises(vs.InvalidArgumentError, match="one"):
            vs.sync(sub, sub)
        assert sub.get("x1").read() == b"precious"


def test_a_configuration_file_with_a_mistake_says_so_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"storage": {"backend": "localfs", "localfs": {"rot": "x"}}}))
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    assert main(["sync", "--from", str(bad), "--to", str(b)]) == 2
    err = capsys.readouterr().err
    assert f"--from {bad}: " in err
    assert "rot" in err
    assert "not one of" not in err  # it is a file, not a misspelt backend name
    assert main(["sync", "--from", "s4", "--to", str(b)]) == 2
    assert "--from 's4': not one of localfs, s3" in capsys.readouterr().err


def test_a_source_root_that_does_not_exist_is_refused_not_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped source root would open as an empty store, and ``--delete`` would
    then delete everything at the destination."""
    missing = _config(tmp_path / "typo.yaml", tmp_path / "no-such-root")
    b = _config(tmp_path / "b.yaml", tmp_path / "b")
    with vs.open_store(b) as dst:
        _fill(dst, _objects())
    assert main(["sync", "--from", str(missing), "--to", str(b), "--delete"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "no-such-root" in err
    assert not (tmp_path / "no-such-root").exists()
    with vs.open_store(b) as dst:
        assert len(list(dst.list())) == len(_objects())


@pytest.mark.parametrize("inner", [True, False], ids=["destination inside", "source inside"])
def test_the_command_refuses_overlapping_roots_before_making_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], inner: bool
) -> None:
    """Opening a localfs destination makes its root: a refused sync must not leave
    one behind inside the source (or make the source's root inside it)."""
    outer_root, inner_root = tmp_path / "outer", tmp_path / "outer" / "copy"
    outer_root.mkdir()
    (outer_root / "x1").write_bytes(b"precious")
    source = _config(tmp_path / "src.yaml", outer_root if inner else inner_root)
    target = _config(tmp_path / "dst.yaml", inner_root if inner else outer_root)
    if not inner:
        inner_root.mkdir()
        (inner_root / "y1").write_bytes(b"precious too")
    assert main(["sync", "--from", str(source), "--to", str(target), "--delete"]) == 2
    assert "overlap" in capsys.readouterr().err
    if inner:
        assert sorted(p.name for p in outer_root.iterdir()) == ["x1"]
    else:
        assert sorted(p.name for p in outer_root.iterdir()) == ["copy", "x1"]
        assert sorted(p.name for p in inner_root.iterdir()) == ["y1"]


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_destination_root_that_is_a_file_is_an_error_not_a_new_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    a = _config(tmp_path / "a.yaml", tmp_path / "a")
    with vs.open_store(a) as src:
        src.put("k", b"v")
    (tmp_path / "file").write_bytes(b"not a folder")
    b = _config(tmp_path / "b.yaml", tmp_path / "file")
    assert main(["sync", "--from", str(a), "--to", str(b), *(["--dry-run"] if dry_run else [])]) != 0
    err = capsys.readouterr().err
    assert "does not exist" not in err
    assert "making" not in err
    assert "storage root" in err
    assert (tmp_path / "file").read_bytes() == b"not a folder"


def test_two_stores_on_one_root_are_refused(tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path / "r") as a, vs.LocalFSStore(tmp_path / "r") as b:
        a.put("k", b"v")
        with pytest.raises(vs.InvalidArgumentError, match="one store"):
            vs.sync(a, b, delete=True)
        assert a.get("k").read() == b"v"


def test_the_progress_line_is_redrawn_on_a_terminal_only() -> None:
    from visiona_storage._sync_command import _Output  # noqa: PLC0415

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, out = Terminal(), io.StringIO()
    output = _Output(out, terminal, dry_run=False)
    output.event(vs.SyncEvent("copy", "a", 3))
    output.finish(output.report)
    assert terminal.getvalue().startswith("\rcopied 1 (")
    assert terminal.getvalue().endswith("\r\x1b[K")
    assert out.getvalue().startswith("copied 1 (")


def test_the_summary_says_why_keys_were_skipped_and_sizes_read_for_a_person() -> None:
    from visiona_storage._sync_command import _Output, size_shown  # noqa: PLC0415

    assert [size_shown(n) for n in (0, 900, 4096, 340 * 1024 * 1024 + 209715, 3 << 30)] == [
        "0 B",
        "900 B",
        "4.0 KiB",
        "340.2 MiB",
        "3.0 GiB",
    ]
    out = io.StringIO()
    output = _Output(out, None, dry_run=False)
    output.event(vs.SyncEvent("copy", "a", 900))
    for key in ("b", "c", "d"):
        output.event(vs.SyncEvent("skip", key, 0))
    report = vs.SyncReport(copied=1, skipped=3, bytes_copied=900, skipped_as_listed=2)
    output.finish(report)
    assert out.getvalue().startswith(
        "copied 1 (900 B), skipped 3 (the same bytes, content type and metadata at both ends;"
        " 2 without a request of their own), "
        "deleted 0, failed 0 in "
    )
