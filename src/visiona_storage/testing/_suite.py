"""`StoreConformance`: behaviour-named tests of every promise calling code can see."""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from .._arguments import MAX_METADATA_BYTES
from .._errors import (
    ChecksumMismatchError,
    DataReadError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyConflictError,
    NotFoundError,
    PreconditionFailedError,
    SizeMismatchError,
    StorageError,
    UnsupportedError,
)
from .._keys import RESERVED_NAME, RESERVED_SUFFIXES, check_foreign_key
from .._models import ObjectInfo, ObjectReader
from .._store import Store
from ._async_suite import AsyncConformance
from ._http import http_request as _http

MiB = 1 << 20

BAD_KEYS: list[Any] = [
    "",
    "a" * 1025,
    "x/" + "a" * 201,
    "..",
    "a/../b",
    "a/./b",
    ".",
    "a//b",
    "a/",
    "/abs",
    "a\\b",
    "a\x00b",
    "a\nb",
    "tab\there",
    "del\x7f",
    "c1\x85control",
    "lone\ud800surrogate",
    "model" + RESERVED_SUFFIXES[0],
    "a/b" + RESERVED_SUFFIXES[0] + "/c",
    "x" + RESERVED_SUFFIXES[1],
    RESERVED_NAME + "/signing-key",
    b"bytes",
    None,
    42,
]
"""Keys every backend must refuse with `InvalidKeyError`."""

ODD_KEYS: list[str] = [
    "with space",
    " leading and trailing ",
    "unicode/模型/yolov5 v2.nef",
    "emoji/🤖.onnx",
    "specials/% & $ ' \" < >",
    "specials/_ - + = ; : , @ ! ( ) [ ] { } ~ ^ `",
    "query?x=1#frag",
    "percent/%2F%2e%2e%00",
    ".hidden/.file",
    "...",
    "a.meta",
    "meta.json",
    "é/e\u0301",
    "/".join(["x" * 200] * 4 + ["y" * 196]),
    "z" * 200,
]
"""Unusual keys every backend must accept and round-trip byte for byte."""


def _tampered(url: str) -> Iterator[str]:
    """Single-field changes of a presigned URL: the path, each query value, no signature."""
    parts = urllib.parse.urlsplit(url)
    yield urllib.parse.urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/y"))
    yield urllib.parse.urlunsplit(parts._replace(path=parts.path + "x"))
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    for index, (name, value) in enumerate(query):
        changed = list(query)
        if value.isdigit():
            changed[index] = (name, str(int(value) + 1))
        elif value:
            changed[index] = (name, value[:-1] + ("0" if value[-1] != "0" else "1"))
        else:
            changed[index] = (name, "x")
        yield urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(changed)))
    unsigned = [item for item in query if "signature" not in item[0].lower()]
    yield urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(unsigned)))


class FailingFile(io.RawIOBase):
    """A binary file whose reads fail with EIO after `good` bytes, as on a failing disk."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left == 0:
            raise OSError(errno.EIO, "Input/output error")
        count = min(len(buffer), self._left, MiB)
        buffer[:count] = b"d" * count
        self._left -= count
        return count


class _FailingReadOnly:
    """A file-like object with only ``read``, failing with EIO after `good` bytes."""

    def __init__(self, good: int) -> None:
        self._file = FailingFile(good)

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(min(size, MiB) if size >= 0 else MiB)
        return bytes(buffer[: self._file.readinto(buffer)])


def _failing_chunks(good: int) -> Iterator[bytes]:
    """Chunks of `good` bytes in all, then EIO, as from a pipe whose writer broke."""
    while good > 0:
        count = min(good, 64 * 1024)
        good -= count
        yield b"c" * count
    raise OSError(errno.EIO, "Input/output error")


def _failing_data(kind: str, good: int) -> tuple[Any, int]:
    """(data that fails after `good` bytes, the size to declare) for each way of reading it."""
    if kind == "readinto":
        return FailingFile(good), good + 4096
    if kind == "read":
        return _FailingReadOnly(good), -1
    return _failing_chunks(good), -1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pattern(size: int) -> bytes:
    """`size` bytes in which every 8-byte word differs from its neighbours, so a
    piece stored twice, out of place or overwritten shows."""
    words = (size + 7) // 8
    return b"".join(n.to_bytes(8, "little") for n in range(words))[:size]


def _is_storable(key: object) -> bool:
    """Whether an S3 service could hold an object at `key` (`check_foreign_key`)."""
    try:
        check_foreign_key(key)
    except InvalidKeyError:
        return False
    return True


def _read_all(reader: ObjectReader) -> bytes:
    with reader:
        return reader.read()


class StoreConformance(AsyncConformance):
    """Mix into a ``Test...`` class that provides a ``store`` fixture (a fresh empty store).
    It checks the `AsyncStore` API over the same store too.

        Capability flags: set one to ``False`` where the backend lacks it, and the
        tests that need it are skipped with a reason saying so.
    """

    supports_presigned_urls: ClassVar[bool] = True
    """The backend makes presigned GET and PUT URLs."""

    supports_conditional_writes: ClassVar[bool] = True
    """``put(if_none_match="*")`` and ``put(if_match=etag)`` are enforced by the backend."""

    allows_object_as_prefix: ClassVar[bool] = True
    """``a/b`` and ``a/b/c`` may both be objects; if not, the second put must raise
    `KeyConflictError` and change nothing (a filesystem)."""

    supports_large_conditional_writes: ClassVar[bool] = True
    """Conditional puts are enforced for objects of `large_object_size` too; if not,
    such a put must raise `UnsupportedError` and store nothing."""

    verifies_presigned_urls: ClassVar[bool] = True
    """The server answers 403 to a presigned URL that is expired, tampered with, or
    used with another method, key or content type."""

    large_object_size: ClassVar[int] = 12 * MiB
    """Size of the object used to exercise streaming (and multipart) puts."""

    def _require(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__} declares {flag} = False")

    # Round trips.

    def test_put_then_get_returns_the_same_bytes(self, store: Store) -> None:
        store.put("models/u1/yolov5.nef", b"weights")
        assert _read_all(store.get("models/u1/yolov5.nef")) == b"weights"

    def test_put_returns_what_stat_returns(self, store: Store) -> None:
        info = store.put("a/b.json", b"{}", metadata={"Owner": "u1"})
        assert store.stat("a/b.json") == info
        assert info.key == "a/b.json"
        assert info.size == 2
        assert info.content_type == "application/json"
        assert info.metadata == {"owner": "u1"}

    def test_put_accepts_a_binary_file_object(self, store: Store) -> None:
        data = bytes(range(256)) * 5000
        info = store.put("file-object", io.BytesIO(data))
        assert info.size == len(data)
        assert _read_all(store.get("file-object")) == data

    def test_put_accepts_a_file_object_with_its_size(self, store: Store) -> None:
        data = b"0123456789" * 1000
        assert store.put("sized", io.BytesIO(data), size=len(data)).size == len(data)
        assert _read_all(store.get("sized")) == data

    def test_put_accepts_an_iterable_of_bytes(self, store: Store) -> None:
        chunks: list[bytes | bytearray | memoryview] = [
            b"a" * 1000,
            bytearray(b"b" * 10),
            memoryview(b"c" * 5),
            b"",
        ]
        store.put("iterable", iter(chunks))
        assert _read_all(store.get("iterable")) == b"a" * 1000 + b"b" * 10 + b"c" * 5

    def test_put_accepts_bytearray_and_memoryview(self, store: Store) -> None:
        store.put("bytearray", bytearray(b"xyz"))
        store.put("memoryview", memoryview(b"uvw"))
        store.put("strided", memoryview(b"abcdef")[::2])  # not contiguous: its bytes, in order
        store.put("strided-chunks", iter([memoryview(b"abcdef")[::2], memoryview(b"123456")[1::2]]))
        assert _read_all(store.get("bytearray")) == b"xyz"
        assert _read_all(store.get("memoryview")) == b"uvw"
        assert _read_all(store.get("strided")) == b"ace"
        assert _read_all(store.get("strided-chunks")) == b"ace246"

    def test_large_stream_of_unknown_size_round_trips(self, store: Store) -> None:
        size = self.large_object_size
        block = bytes(range(256)) * 256  # 64 KiB
        count = size // len(block)
        info = store.put("large/stream.bin", (block for _ in range(count)))
        assert info.size == count * len(block)
        digest = hashlib.sha256()
        with store.get("large/stream.bin") as reader:
            for chunk in reader.iter_chunks(MiB):
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(block * count).hexdigest()
        assert store.stat("large/stream.bin").size == count * len(block)

    @pytest.mark.parametrize("buffer_size", [64 * 1024, MiB, 4 * MiB], ids=["64KiB", "1MiB", "4MiB"])
    @pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
    def test_put_stores_what_a_reused_buffer_held_when_yielded(
        self, store: Store, buffer_size: int, large: bool
    ) -> None:
        total = self.large_object_size + 12345 if large else 3 * buffer_size + 7
        source = io.BytesIO(_pattern(total))
        yielded = hashlib.sha256()

        def refilled() -> Iterator[memoryview]:
            buffer = bytearray(buffer_size)
            view = memoryview(buffer)
            while count := source.readinto(buffer):
                yielded.update(view[:count])
                yield view[:count]

        info = store.put("reused/buffer.bin", refilled())
        assert info.size == total
        assert _sha(_read_all(store.get("reused/buffer.bin"))) == yielded.hexdigest() == _sha(_pattern(total))
        assert store.stat("reused/buffer.bin") == info

    def test_large_object_of_known_size_round_trips(self, store: Store) -> None:
        data = (bytes(range(251)) * (self.large_object_size // 251 + 1))[: self.large_object_size]
        store.put("large/known.bin", io.BytesIO(data), size=len(data))
        assert _sha(_read_all(store.get("large/known.bin"))) == _sha(data)

    def test_empty_object_round_trips(self, store: Store) -> None:
        info = store.put("empty", b"")
        assert info.size == 0
        assert _read_all(store.get("empty")) == b""
        assert store.stat("empty").size == 0

    def test_overwrite_replaces_data_and_metadata(self, store: Store) -> None:
        store.put("k", b"old", metadata={"v": "1"}, content_type="text/plain")
        info = store.put("k", b"new data", metadata={"v": "2"})
        assert _read_all(store.get("k")) == b"new data"
        assert store.stat("k") == info
        assert info.metadata == {"v": "2"}
        assert info.content_type == "application/octet-stream"

    def test_overwrite_without_metadata_leaves_none(self, store: Store) -> None:
        store.put("k", b"old", metadata={"framework": "onnx"})
        store.put("k", b"new")
        assert store.stat("k").metadata == {}

    # Missing keys and deletes.

    def test_stat_of_missing_key_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError) as caught:
            store.stat("missing/key")
        assert isinstance(caught.value, FileNotFoundError)
        assert isinstance(caught.value, StorageError)
        assert caught.value.key == "missing/key"

    def test_get_of_missing_key_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError) as caught:
            store.get("missing")
        assert caught.value.key == "missing"

    def test_a_prefix_of_objects_is_not_an_object(self, store: Store) -> None:
        store.put("folder/inside", b"x")
        with pytest.raises(NotFoundError):
            store.stat("folder")
        with pytest.raises(NotFoundError):
            store.get("folder")

    def test_delete_removes_the_object(self, store: Store) -> None:
        store.put("gone", b"x")
        store.delete("gone")
        with pytest.raises(NotFoundError):
            store.stat("gone")
        with pytest.raises(NotFoundError):
            store.get("gone")
        assert [i.key for i in store.list()] == []

    def test_delete_of_missing_key_is_not_an_error(self, store: Store) -> None:
        store.delete("never/was")
        store.put("once", b"x")
        store.delete("once")
        store.delete("once")

    def test_delete_leaves_other_keys(self, store: Store) -> None:
        store.put("d/a", b"a")
        store.put("d/b", b"b")
        store.delete("d/a")
        assert [i.key for i in store.list()] == ["d/b"]

    def test_key_can_be_reused_as_a_prefix_after_delete(self, store: Store) -> None:
        store.put("x/y", b"1")
        store.delete("x/y")
        store.put("x", b"2")
        store.delete("x")
        store.put("x/y/z", b"3")
        assert [i.key for i in store.list()] == ["x/y/z"]

    # ETag and last_modified.

    def test_etag_changes_when_content_changes(self, store: Store) -> None:
        first = store.put("e", b"one").etag
        second = store.put("e", b"two").etag
        assert first != second
        assert store.stat("e").etag == second

    def test_etag_has_no_quotes(self, store: Store) -> None:
        etag = store.put("e", b"data").etag
        assert etag
        assert '"' not in etag

    def test_last_modified_is_utc_and_recent(self, store: Store) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        info = store.put("t", b"x")
        after = datetime.now(UTC) + timedelta(minutes=5)
        assert info.last_modified.tzinfo is not None
        assert info.last_modified.utcoffset() == timedelta(0)
        assert before <= info.last_modified <= after

    # Metadata.

    def test_metadata_round_trips_unicode_values(self, store: Store) -> None:
        metadata = {
            "title": "模型 v2",
            "emoji": "🤖 ok",
            "spaces": "  padded  ",
            "quotes": "\"'<>&%",
            "empty": "",
            "newline": "line1\nline2",
            "encoded-looking": "=?UTF-8?B?5qih5Z6L?=",
        }
        store.put("m", b"x", metadata=metadata)
        assert store.stat("m").metadata == metadata
        with store.get("m") as reader:
            assert reader.info.metadata == metadata

    def test_metadata_keys_are_stored_lowercase(self, store: Store) -> None:
        info = store.put("m", b"x", metadata={"Framework": "ONNX", "X-Trace-ID": "7", "v2": "8"})
        assert info.metadata == {"framework": "ONNX", "x-trace-id": "7", "v2": "8"}
        assert store.stat("m").metadata == info.metadata

    def test_metadata_of_exactly_2kb_is_accepted(self, store: Store) -> None:
        metadata = {"k": "v" * (MAX_METADATA_BYTES - 1)}
        assert store.put("m", b"x", metadata=metadata).metadata == metadata
        assert store.stat("m").metadata == metadata

    @pytest.mark.parametrize(
        "metadata",
        [
            {"k": "v" * MAX_METADATA_BYTES},
            {"k": "模" * 700},
            {"bad key": "v"},
            {"bad:key": "v"},
            {"snake_case": "v"},
            {"dotted.key": "v"},
            {"tilde~": "v"},
            {"": "v"},
            {"ключ": "v"},
            {"Same": "1", "same": "2"},
            {"k": 1},
            {1: "v"},
            {"k": None},
            {"k": "lone\ud800"},
        ],
        ids=lambda m: repr(m)[:40],
    )
    def test_bad_metadata_is_rejected_and_nothing_stored(self, store: Store, metadata: Any) -> None:
        store.put("m", b"before", metadata={"v": "1"})
        with pytest.raises(InvalidArgumentError) as caught:
            store.put("m", b"after", metadata=metadata)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, StorageError)
        assert _read_all(store.get("m")) == b"before"
        assert store.stat("m").metadata == {"v": "1"}

    # Content types.

    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            ("models/yolov5.nef", "application/octet-stream"),
            ("models/resnet.ONNX", "application/octet-stream"),
            ("models/weights.bin", "application/octet-stream"),
            ("models/meta.json", "application/json"),
            ("snap/frame.png", "image/png"),
            ("no-extension", "application/octet-stream"),
            ("odd.unknown-ext", "application/octet-stream"),
            (".hidden", "application/octet-stream"),
        ],
    )
    def test_content_type_is_guessed_from_the_extension(self, store: Store, key: str, expected: str) -> None:
        assert store.put(key, b"x").content_type == expected
        assert store.stat(key).content_type == expected

    def test_explicit_content_type_is_kept(self, store: Store) -> None:
        info = store.put("model.nef", b"x", content_type="application/x-kneron-nef")
        assert info.content_type == "application/x-kneron-nef"
        assert store.stat("model.nef").content_type == "application/x-kneron-nef"
        with store.get("model.nef") as reader:
            assert reader.info.content_type == "application/x-kneron-nef"

    @pytest.mark.parametrize("content_type", ["text/plain\r\nX-Evil: 1", "", "模型/x", 5])
    def test_bad_content_type_is_rejected(self, store: Store, content_type: Any) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("ct", b"x", content_type=content_type)
        with pytest.raises(NotFoundError):
            store.stat("ct")

    # Sizes and broken data.

    @pytest.mark.parametrize("kind", ["bytes", "file", "iterable"])
    @pytest.mark.parametrize("declared", [5, 7], ids=["shorter", "longer"])
    def test_data_not_matching_its_size_stores_nothing(self, store: Store, kind: str, declared: int) -> None:
        store.put("sized", b"old version", metadata={"v": "old"})
        data = b"123456"
        body: Any = {"bytes": data, "file": io.BytesIO(data), "iterable": iter([data[:3], data[3:]])}[kind]
        with pytest.raises(SizeMismatchError) as caught:
            store.put("sized", body, size=declared, metadata={"v": "new"})
        assert isinstance(caught.value, StorageError)
        assert _read_all(store.get("sized")) == b"old version"
        assert store.stat("sized").metadata == {"v": "old"}

    # Declared SHA-256.

    @pytest.mark.parametrize("kind", ["bytes", "file", "iterable", "large-file", "large-stream"])
    def test_data_not_matching_its_sha256_stores_nothing(self, store: Store, kind: str) -> None:
        store.put("hashed", b"old version", metadata={"v": "old"})
        large = kind.startswith("large")
        data = _pattern(self.large_object_size + 12345 if large else 6)
        wrong = _sha(data[:-1] + b"!")
        body: Any = {
            "bytes": data,
            "file": io.BytesIO(data),
            "iterable": iter([data[:3], data[3:]]),
            "large-file": io.BytesIO(data),
            "large-stream": (data[i : i + MiB] for i in range(0, len(data), MiB)),
        }[kind]
        with pytest.raises(ChecksumMismatchError) as caught:
            store.put("hashed", body, metadata={"v": "new"}, sha256=wrong)
        assert isinstance(caught.value, InvalidArgumentError)
        assert caught.value.key == "hashed"
        assert _read_all(store.get("hashed")) == b"old version"
        assert store.stat("hashed").metadata == {"v": "old"}
        with pytest.raises(ChecksumMismatchError):
            store.put("fresh.bin", iter([data]), sha256=wrong)
        assert [info.key for info in store.list()] == ["hashed"]

    @pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
    def test_data_matching_its_sha256_is_stored_with_it(self, store: Store, large: bool) -> None:
        data = _pattern(self.large_object_size + 12345 if large else 1000)
        digest = _sha(data)
        info = store.put("hashed.bin", io.BytesIO(data), sha256=digest.upper(), metadata={"a": "b"})
        assert info.sha256 == digest
        assert store.stat("hashed.bin") == info
        assert info.metadata == {"a": "b"}
        with store.get("hashed.bin") as reader:
            assert reader.info.sha256 == digest
            assert _sha(reader.read()) == digest

    def test_a_recorded_sha256_is_the_contents(self, store: Store) -> None:
        info = store.put("small.bin", b"some bytes")
        assert info.sha256 in (None, _sha(b"some bytes"))
        assert store.stat("small.bin").sha256 == info.sha256
        for listed in store.list():
            assert listed.sha256 in (None, info.sha256)

    @pytest.mark.parametrize("sha256", ["", "abc", "g" * 64, "0" * 63, 5], ids=repr)
    def test_bad_sha256_is_rejected(self, store: Store, sha256: Any) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("k", b"data", sha256=sha256)
        assert list(store.list()) == []

    def test_the_recorded_sha256_name_is_not_user_metadata(self, store: Store) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("k", b"data", metadata={"Visiona-SHA256": "0" * 64})
        assert list(store.list()) == []

    def test_size_mismatch_on_a_new_key_leaves_no_object(self, store: Store) -> None:
        with pytest.raises(SizeMismatchError):
            store.put("new/key", iter([b"abc"]), size=10)
        with pytest.raises(NotFoundError):
            store.stat("new/key")
        assert list(store.list()) == []

    def test_error_raised_by_the_callers_data_stores_nothing(self, store: Store) -> None:
        store.put("k", b"intact")

        class UploadAbortedError(Exception):
            pass

        def broken() -> Iterator[bytes]:
            yield b"x" * MiB
            raise UploadAbortedError

        with pytest.raises(UploadAbortedError):
            store.put("k", broken())
        assert _read_all(store.get("k")) == b"intact"
        with pytest.raises(UploadAbortedError):
            store.put("other", broken())
        assert [i.key for i in store.list()] == ["k"]

    @pytest.mark.parametrize("kind", ["readinto", "read", "iterable"])
    @pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
    def test_an_oserror_reading_the_data_is_a_data_read_error(
        self, store: Store, kind: str, large: bool
    ) -> None:
        store.put("k", b"intact", metadata={"v": "old"})
        good = self.large_object_size if large else 1000
        data, size = _failing_data(kind, good)
        with pytest.raises(DataReadError) as caught:
            store.put("k", data, size=size, metadata={"v": "new"})
        error = caught.value
        assert isinstance(error, StorageError)
        assert isinstance(error, OSError)
        assert error.key == "k"
        assert error.errno == errno.EIO
        assert type(error.__cause__) is OSError
        assert _read_all(store.get("k")) == b"intact"
        assert store.stat("k").metadata == {"v": "old"}
        data, size = _failing_data(kind, good)
        with pytest.raises(DataReadError):
            store.put("new", data, size=size)
        assert [i.key for i in store.list()] == ["k"]

    @pytest.mark.parametrize("data", ["text", 12, object(), [1, 2]], ids=["str", "int", "object", "ints"])
    def test_data_that_is_not_bytes_is_rejected(self, store: Store, data: Any) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("k", data)
        with pytest.raises(NotFoundError):
            store.stat("k")

    @pytest.mark.parametrize("size", [-2, 1.5, "3", True])
    def test_bad_size_is_rejected(self, store: Store, size: Any) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("k", b"abc", size=size)

    # Readers and ranges.

    def test_get_nowait_opens_what_get_opens_or_nothing(self, store: Store) -> None:
        info = store.put("n/w.bin", b"0123456789", metadata={"m": "v"})
        reader = store.get_nowait("n/w.bin", 2, 5)
        if reader is not None:  # a backend that would wait answers None instead
            with reader:
                assert reader.info == info
                assert reader.read() == b"234"
        with pytest.raises(InvalidKeyError):
            store.get_nowait("")
        with pytest.raises(InvalidArgumentError):
            store.get_nowait("n/w.bin", -1)
        try:
            missing = store.get_nowait("n/missing")
        except NotFoundError:
            missing = None
        assert missing is None

    def test_reader_reads_in_chunks(self, store: Store) -> None:
        data = bytes(range(256)) * 100
        store.put("r", data)
        with store.get("r") as reader:
            parts = []
            while chunk := reader.read(1000):
                assert len(chunk) <= 1000
                parts.append(chunk)
            assert reader.read(10) == b""
        assert b"".join(parts) == data

    def test_reader_readinto_fills_a_buffer(self, store: Store) -> None:
        store.put("r", b"abcdefghij")
        buffer = bytearray(4)
        with store.get("r") as reader:
            got = b""
            while count := reader.readinto(buffer):
                got += bytes(buffer[:count])
        assert got == b"abcdefghij"

    def test_reader_is_a_binary_file_object(self, store: Store) -> None:
        store.put("r", b"line1\nline2\n")
        with store.get("r") as reader:
            assert reader.readable()
            assert isinstance(reader, io.IOBase)
            assert reader.readline() == b"line1\n"
            assert reader.read() == b"line2\n"
        assert reader.closed

    def test_reader_iter_chunks_yields_everything(self, store: Store) -> None:
        data = b"z" * (3 * MiB + 17)
        store.put("r", data)
        with store.get("r") as reader:
            chunks = list(reader.iter_chunks(MiB))
        assert [len(c) for c in chunks] == [MiB, MiB, MiB, 17]

    def test_reader_info_describes_the_whole_object(self, store: Store) -> None:
        info = store.put("r", b"0123456789", metadata={"a": "b"})
        with store.get("r", start=2, end=4) as reader:
            assert reader.info == info
            assert reader.read() == b"23"

    @pytest.mark.parametrize(
        ("start", "end"),
        [(0, None), (0, 10), (3, 7), (0, 1), (9, 10), (5, 5), (0, 0), (4, None)],
    )
    def test_range_reads_a_slice(self, store: Store, start: int, end: int | None) -> None:
        data = b"0123456789"
        store.put("r", data)
        assert _read_all(store.get("r", start=start, end=end)) == data[start:end]

    def test_range_end_past_the_object_is_clamped(self, store: Store) -> None:
        store.put("r", b"0123456789")
        assert _read_all(store.get("r", start=7, end=1000)) == b"789"
        assert _read_all(store.get("r", 2, 11)) == b"23456789"

    @pytest.mark.parametrize("start", [10, 11, 10_000])
    def test_range_starting_at_or_past_the_end_reads_nothing(self, store: Store, start: int) -> None:
        store.put("r", b"0123456789")
        assert _read_all(store.get("r", start=start)) == b""
        assert _read_all(store.get("r", start=start, end=start + 5)) == b""

    def test_range_of_an_empty_object_reads_nothing(self, store: Store) -> None:
        store.put("r", b"")
        assert _read_all(store.get("r", start=0, end=10)) == b""

    def test_range_in_a_large_object(self, store: Store) -> None:
        data = bytes(range(256)) * (4 * 4096)  # 4 MiB
        store.put("r", data)
        assert _read_all(store.get("r", start=MiB - 3, end=3 * MiB + 5)) == data[MiB - 3 : 3 * MiB + 5]

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (0, -1), (1.0, None), ("0", None)])
    def test_bad_range_is_rejected(self, store: Store, start: Any, end: Any) -> None:
        store.put("r", b"0123456789")
        with pytest.raises(InvalidArgumentError):
            store.get("r", start=start, end=end)

    # Listing.

    def test_list_yields_keys_in_utf8_byte_order(self, store: Store) -> None:
        keys = ["a0", "a/b", "a-c", "b", "b-c", "é", "z", "Z", "a b", "~", "模型", "🤖", "a.", "a/a", "a/b0"]
        if self.allows_object_as_prefix:
            keys += ["a", "a/b/c"]
        for key in keys:
            store.put(key, key.encode())
        listed = [info.key for info in store.list()]
        assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))

    def test_list_puts_a_dash_before_a_slash_before_a_zero(self, store: Store) -> None:
        for key in ["a0", "a/b", "a-c"]:
            store.put(key, b"x")
        assert [info.key for info in store.list()] == ["a-c", "a/b", "a0"]

    def test_list_filters_by_prefix(self, store: Store) -> None:
        for key in ["models/u1/a.nef", "models/u1/b.onnx", "models/u10/c", "models/u2/d", "modelsx", "other"]:
            store.put(key, b"x")
        assert [i.key for i in store.list("models/u1/")] == ["models/u1/a.nef", "models/u1/b.onnx"]
        assert [i.key for i in store.list("models/u1")] == [
            "models/u1/a.nef",
            "models/u1/b.onnx",
            "models/u10/c",
        ]
        assert [i.key for i in store.list("models/u1/b")] == ["models/u1/b.onnx"]
        assert [i.key for i in store.list("models")] == [
            "models/u1/a.nef",
            "models/u1/b.onnx",
            "models/u10/c",
            "models/u2/d",
            "modelsx",
        ]
        assert [i.key for i in store.list("nothing/here/")] == []
        assert [i.key for i in store.list("models/u1/a.nef")] == ["models/u1/a.nef"]

    @pytest.mark.parametrize("prefix", ["../", "a//", "/", "\\", "x\x00", ".", RESERVED_NAME + "/"])
    def test_list_with_a_prefix_no_key_can_have_is_empty(self, store: Store, prefix: str) -> None:
        store.put("a/b", b"x")
        assert list(store.list(prefix)) == []

    def test_list_sets_key_size_etag_and_last_modified(self, store: Store) -> None:
        info = store.put("l/x.json", b"12345", metadata={"k": "v"})
        (listed,) = list(store.list("l/"))
        assert isinstance(listed, ObjectInfo)
        assert listed.key == info.key
        assert listed.size == 5
        assert listed.etag == info.etag
        assert abs(listed.last_modified - info.last_modified) < timedelta(seconds=2)
        assert listed.last_modified.utcoffset() == timedelta(0)
        assert listed.content_type in ("", info.content_type)
        assert listed.metadata in ({}, info.metadata)

    def test_identity_is_a_stable_name_or_none(self, store: Store) -> None:
        identity = store.identity
        assert identity is None or (isinstance(identity, str) and identity)
        assert store.identity == identity

    def test_a_store_that_lists_details_lists_what_stat_reports(self, store: Store) -> None:
        """`Store.lists_details`: `sync`'s state cache keys on the listed ETag, size
        and Last-Modified (to the second), so they must be the version's own."""
        if not store.lists_details:
            pytest.skip(f"{type(store).__name__}.lists_details is False")
        store.put("d/a", b"one")
        store.put("d/b", b"two, longer", metadata={"k": "v"})
        store.put("d/a", b"uno")
        for listed in store.list("d/"):
            info = store.stat(listed.key)
            assert (listed.etag, listed.size) == (info.etag, info.size)
            assert listed.last_modified.replace(microsecond=0) == info.last_modified.replace(microsecond=0)
            assert listed.last_modified.utcoffset() == timedelta(0)

    def test_a_store_that_lists_metadata_lists_what_stat_reports(self, store: Store) -> None:
        """`Store.lists_metadata`: `sync` skips on the listed SHA-256, content type and
        metadata alone, so they must be the listed version's own."""
        if not store.lists_metadata:
            pytest.skip(f"{type(store).__name__}.lists_metadata is False")
        store.put("m/a", b"one", metadata={"k": "v", "model": "模型 ü"}, content_type="text/plain")
        store.put("m/b", b"two")
        store.put("m/a", b"uno", metadata={"k": "w"}, content_type="application/x-model")
        for listed in store.list("m/"):
            info = store.stat(listed.key)
            assert (listed.content_type, listed.metadata, listed.sha256) == (
                info.content_type,
                info.metadata,
                info.sha256,
            )

    def test_list_is_lazy(self, store: Store) -> None:
        for i in range(5):
            store.put(f"lazy/{i}", b"x")
        listing = store.list("lazy/")
        assert iter(listing) is listing
        assert next(listing).key == "lazy/0"
        assert [i.key for i in itertools.islice(listing, 2)] == ["lazy/1", "lazy/2"]

    def test_list_of_an_empty_store_is_empty(self, store: Store) -> None:
        assert list(store.list()) == []

    def test_list_of_many_keys_is_complete_and_ordered(self, store: Store) -> None:
        keys = [f"many/{i % 7}/{i:04d}" for i in range(300)] + [f"many/{i}" for i in range(10, 40)]
        for key in keys:
            store.put(key, key.encode())
        listed = [info.key for info in store.list("many/")]
        assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))

    @pytest.mark.parametrize("prefix", [b"bytes", None, 3, "lone\ud800"])
    def test_list_with_a_prefix_that_is_not_text_is_rejected(self, store: Store, prefix: Any) -> None:
        with pytest.raises(InvalidKeyError):
            store.list(prefix)

    # Keys.

    @pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:30])
    def test_invalid_keys_are_rejected_by_every_method(self, store: Store, key: Any) -> None:
        """Every method refuses a key that breaks the rules; where the backend reads
        foreign keys, reads take one its service can hold (and find nothing)."""
        writes: list[Callable[[], object]] = [
            lambda: store.put(key, b"x"),
            lambda: store.presigned_put_url(key),
        ]
        reads: list[Callable[[], object]] = [
            lambda: store.get(key),
            lambda: store.stat(key),
            lambda: store.delete(key),
            lambda: store.presigned_get_url(key),
        ]
        readable = store.reads_foreign_keys and _is_storable(key)
        for call in writes if readable else writes + reads:
            with pytest.raises(InvalidKeyError) as caught:
                call()
            assert isinstance(caught.value, ValueError)
        if readable:
            for call in reads[:2]:
                with pytest.raises(NotFoundError):
                    call()
            store.delete(key)
        assert list(store.list()) == []

    @pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:30])
    def test_odd_but_valid_keys_round_trip(self, store: Store, key: str) -> None:
        data = key.encode("utf-8")
        info = store.put(key, data, metadata={"key": key})
        assert info.key == key
        assert store.stat(key).key == key
        with store.get(key) as reader:
            assert reader.read() == data
            assert reader.info.key == key
        assert [i.key for i in store.list()] == [key]
        assert [i.key for i in store.list(key)] == [key]
        store.delete(key)
        assert list(store.list()) == []

    def test_object_and_prefix_with_the_same_name(self, store: Store) -> None:
        store.put("p/q", b"object")
        if self.allows_object_as_prefix:
            store.put("p/q/r", b"below")
            store.put("s/t/u", b"below")
            store.put("s/t", b"object")
            assert [i.key for i in store.list()] == ["p/q", "p/q/r", "s/t", "s/t/u"]
            return
        with pytest.raises(KeyConflictError) as caught:
            store.put("p/q/r", b"below")
        assert caught.value.key == "p/q/r"
        store.put("s/t/u", b"below")
        with pytest.raises(KeyConflictError):
            store.put("s/t", b"object")
        assert [i.key for i in store.list()] == ["p/q", "s/t/u"]
        assert _read_all(store.get("p/q")) == b"object"

    # Conditional writes.

    def test_if_none_match_creates_only_once(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        first = store.put("c", b"first", if_none_match="*")
        with pytest.raises(PreconditionFailedError) as caught:
            store.put("c", b"second", if_none_match="*")
        assert caught.value.key == "c"
        assert store.stat("c") == first
        assert _read_all(store.get("c")) == b"first"

    def test_if_match_replaces_only_that_version(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        v1 = store.put("c", b"v1")
        v2 = store.put("c", b"v2", if_match=v1.etag)
        with pytest.raises(PreconditionFailedError):
            store.put("c", b"v3", if_match=v1.etag)
        assert _read_all(store.get("c")) == b"v2"
        assert store.put("c", b"v4", if_match=f'"{v2.etag}"').size == 2

    def test_if_match_on_a_missing_key_fails(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        with pytest.raises(PreconditionFailedError):
            store.put("c", b"x", if_match="0" * 64)
        with pytest.raises(NotFoundError):
            store.stat("c")

    def test_if_match_star_replaces_any_version_but_creates_nothing(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        with pytest.raises(PreconditionFailedError):
            store.put("c", b"x", if_match="*")
        with pytest.raises(NotFoundError):
            store.stat("c")
        store.put("c", b"v1")
        replaced = store.put("c", b"v2", metadata={"v": "2"}, if_match="*")
        assert store.stat("c") == replaced
        assert _read_all(store.get("c")) == b"v2"

    def test_if_none_match_after_delete_creates_again(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        store.put("c", b"x", if_none_match="*")
        store.delete("c")
        assert store.put("c", b"y", if_none_match="*").size == 1

    def test_conditions_hold_for_large_objects(self, store: Store) -> None:
        self._require("supports_conditional_writes")
        self._require("supports_large_conditional_writes")
        big = b"L" * self.large_object_size
        first = store.put("c/big", iter([big]), if_none_match="*")
        with pytest.raises(PreconditionFailedError):
            store.put("c/big", iter([big + b"2"]), if_none_match="*")
        with pytest.raises(PreconditionFailedError):
            store.put("c/big", iter([big + b"3"]), if_match="0" * 32)
        assert store.stat("c/big") == first
        second = store.put("c/big", iter([big + b"4"]), if_match=first.etag)
        assert store.stat("c/big") == second
        assert second.size == len(big) + 1

    def test_large_conditional_puts_unsupported_say_so(self, store: Store) -> None:
        if self.supports_large_conditional_writes:
            pytest.skip(f"{type(self).__name__} supports large conditional writes")
        big = b"L" * self.large_object_size
        with pytest.raises(UnsupportedError):
            store.put("c/big", iter([big]), if_none_match="*")
        with pytest.raises(NotFoundError):
            store.stat("c/big")
        small = store.put("c/big", b"small")
        with pytest.raises(UnsupportedError):
            store.put("c/big", iter([big]), if_match=small.etag)
        assert store.stat("c/big") == small

    def test_large_objects_keep_metadata_and_content_type(self, store: Store) -> None:
        metadata = {"title": "模型 v2", "framework": "onnx"}
        info = store.put("m/big.json", iter([b"{" * self.large_object_size]), metadata=metadata)
        assert info.metadata == metadata
        assert info.content_type == "application/json"
        assert store.stat("m/big.json") == info

    @pytest.mark.parametrize(
        "conditions",
        [
            {"if_none_match": "etag"},
            {"if_match": "", "if_none_match": None},
            {"if_match": "x", "if_none_match": "*"},
        ],
    )
    def test_bad_conditions_are_rejected(self, store: Store, conditions: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgumentError):
            store.put("c", b"x", **conditions)

    # Presigned URLs.

    def test_presigned_urls_are_urls(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        get_url = store.presigned_get_url("p/model.nef", ttl=timedelta(minutes=15))
        put_url = store.presigned_put_url("p/model.nef", ttl=900, content_type="application/octet-stream")
        assert get_url.startswith(("http://", "https://"))
        assert put_url.startswith(("http://", "https://"))
        assert get_url != put_url

    def test_presigned_get_url_downloads_the_object_over_http(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        data = bytes(range(256)) * 64
        store.put("p/model file.nef", data)
        status, body = _http("GET", store.presigned_get_url("p/model file.nef", ttl=60))
        assert (status, body) == (200, data)

    def test_presigned_put_url_uploads_an_object_over_http(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        url = store.presigned_put_url("p/up load.onnx", ttl=60, content_type="application/x-onnx")
        status, _ = _http("PUT", url, b"uploaded bytes", {"Content-Type": "application/x-onnx"})
        assert status == 200
        info = store.stat("p/up load.onnx")
        assert info.content_type == "application/x-onnx"
        assert info.size == len(b"uploaded bytes")
        assert _read_all(store.get("p/up load.onnx")) == b"uploaded bytes"

    def test_presigned_urls_work_for_odd_keys(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        for key in ("specials/% & $ ' \" < >", "unicode/模型/v2.nef", "query?x=1#frag"):
            put_url = store.presigned_put_url(key, ttl=60)
            status, _ = _http("PUT", put_url, key.encode(), {"Content-Type": "application/octet-stream"})
            assert status == 200, key
            assert _http("GET", store.presigned_get_url(key, ttl=60)) == (200, key.encode())

    def test_expired_presigned_url_is_refused(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        self._require("verifies_presigned_urls")
        store.put("p/x", b"secret")
        url = store.presigned_get_url("p/x", ttl=1)
        time.sleep(2.5)
        assert _http("GET", url)[0] == 403

    def test_tampered_presigned_url_is_refused(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        self._require("verifies_presigned_urls")
        store.put("p/x", b"secret")
        store.put("p/y", b"other")
        url = store.presigned_get_url("p/x", ttl=60)
        assert _http("GET", url)[0] == 200
        for forged in _tampered(url):
            assert _http("GET", forged)[0] in (400, 403), forged

    def test_presigned_url_used_with_another_method_is_refused(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        self._require("verifies_presigned_urls")
        store.put("p/x", b"keep me")
        get_url = store.presigned_get_url("p/x", ttl=60)
        assert _http("PUT", get_url, b"overwrite", {"Content-Type": "application/octet-stream"})[0] == 403
        put_url = store.presigned_put_url("p/x", ttl=60, content_type="application/octet-stream")
        assert _http("GET", put_url)[0] == 403
        assert _read_all(store.get("p/x")) == b"keep me"

    def test_presigned_put_with_another_content_type_is_refused(self, store: Store) -> None:
        self._require("supports_presigned_urls")
        self._require("verifies_presigned_urls")
        url = store.presigned_put_url("p/typed", ttl=60, content_type="application/x-onnx")
        assert _http("PUT", url, b"x", {"Content-Type": "text/html"})[0] == 403
        with pytest.raises(NotFoundError):
            store.stat("p/typed")

    def test_presigned_urls_unsupported_say_so(self, store: Store) -> None:
        if self.supports_presigned_urls:
            pytest.skip(f"{type(self).__name__} supports presigned URLs")
        with pytest.raises(UnsupportedError):
            store.presigned_get_url("p/x")
        with pytest.raises(UnsupportedError):
            store.presigned_put_url("p/x")

    @pytest.mark.parametrize(
        "ttl", [0, -5, timedelta(days=7, seconds=1), 7 * 24 * 3600 + 1, timedelta(0), "60", None]
    )
    def test_presigned_ttl_must_be_positive_and_at_most_7_days(self, store: Store, ttl: Any) -> None:
        with pytest.raises(InvalidArgumentError):
            store.presigned_get_url("p/x", ttl=ttl)
        with pytest.raises(InvalidArgumentError):
            store.presigned_put_url("p/x", ttl=ttl)

    # Lifecycle.

    def test_store_is_a_context_manager(self, store: Store) -> None:
        with store as same:
            assert same is store
            same.put("k", b"x")
        assert store.closed
        with pytest.raises(StorageError):
            store.stat("k")
        with pytest.raises(StorageError):
            store.put("k", b"y")
        store.close()
