"""`AsyncConformance`: the promises of `AsyncStore` over a backend, part of every
`StoreConformance`. Each test runs its own event loop (``asyncio.run``), so the
suite needs no pytest plugin."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import pytest

from .._async_store import AsyncStore
from .._errors import (
    ChecksumMismatchError,
    DataReadError,
    InvalidArgumentError,
    InvalidKeyError,
    NotFoundError,
    PreconditionFailedError,
    SizeMismatchError,
    StorageError,
)
from .._store import Store
from ._http import http_request

MiB = 1 << 20
T = TypeVar("T")


def _run(test: Callable[[AsyncStore], Coroutine[Any, Any, T]], store: Store) -> T:
    """Run `test` on an `AsyncStore` over `store` in a new event loop, closing both after."""

    async def main() -> T:
        async with AsyncStore(store) as astore:
            return await test(astore)

    return asyncio.run(main())


async def _chunks(*parts: bytes | bytearray | memoryview) -> AsyncIterator[bytes | bytearray | memoryview]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


async def _read(astore: AsyncStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with astore.get(key, start, end) as reader:
        return await reader.read()


def _pattern(size: int) -> bytes:
    block = hashlib.sha256(b"async").digest() * 2048  # 64 KiB, no period of a power of two
    return (block * (size // len(block) + 1))[:size]


class _BoomError(Exception):
    """Raised by a test's data source."""


class AsyncConformance:
    """The `AsyncStore` half of the conformance suite (mixed into `StoreConformance`)."""

    large_object_size: ClassVar[int] = 12 * MiB
    supports_presigned_urls: ClassVar[bool] = True

    def _require(self, flag: str) -> None:
        raise NotImplementedError  # StoreConformance's

    def test_async_put_then_get_returns_the_same_bytes(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            info = await astore.put("async/a.json", b'{"a": 1}', metadata={"Owner": "u1"})
            assert info == await astore.stat("async/a.json")
            assert info.content_type == "application/json"
            assert info.metadata == {"owner": "u1"}
            assert await _read(astore, "async/a.json") == b'{"a": 1}'

        _run(test, store)

    def test_async_put_accepts_bytes_files_and_iterables(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            await astore.put("k/bytes", bytearray(b"xyz"))
            await astore.put("k/file", io.BytesIO(b"file" * 1000), size=4000)
            parts: list[bytes | bytearray | memoryview] = [b"a", memoryview(b"b"), bytearray(b"c")]
            await astore.put("k/iterable", iter(parts))
            await astore.put(
                "k/async",
                _chunks(b"a" * 1000, bytearray(b"b" * 10), memoryview(b"c"), b"", memoryview(b"xyz!")[::2]),
            )
            assert await _read(astore, "k/bytes") == b"xyz"
            assert await _read(astore, "k/file") == b"file" * 1000
            assert await _read(astore, "k/iterable") == b"abc"
            assert await _read(astore, "k/async") == b"a" * 1000 + b"b" * 10 + b"c" + b"xz"

        _run(test, store)

    @pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
    def test_async_put_stores_what_a_reused_buffer_held_when_yielded(self, store: Store, large: bool) -> None:
        total = self.large_object_size + 12345 if large else 3 * 65536 + 7
        expected = _pattern(total)

        async def refilled() -> AsyncIterator[memoryview]:
            source = io.BytesIO(expected)
            buffer = bytearray(65536)
            view = memoryview(buffer)
            while count := source.readinto(buffer):
                await asyncio.sleep(0)
                yield view[:count]

        async def test(astore: AsyncStore) -> None:
            info = await astore.put("reused/async.bin", refilled())
            assert info.size == total
            assert info == await astore.stat("reused/async.bin")
            digest = hashlib.sha256()
            async with astore.get("reused/async.bin") as reader:
                async for chunk in reader:
                    digest.update(chunk)
            assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()

        _run(test, store)

    @pytest.mark.parametrize("declared", [9, 11], ids=["longer", "shorter"])
    def test_async_iterable_not_of_its_size_stores_nothing(self, store: Store, declared: int) -> None:
        async def test(astore: AsyncStore) -> None:
            old = await astore.put("sized/old", b"previous")
            for key in ("sized/old", "sized/new"):
                with pytest.raises(SizeMismatchError):
                    await astore.put(key, _chunks(b"01234", b"56789"), size=declared)
            assert await _read(astore, "sized/old") == b"previous"
            assert await astore.stat("sized/old") == old
            with pytest.raises(NotFoundError):
                await astore.stat("sized/new")

        _run(test, store)

    @pytest.mark.parametrize("source", ["async", "bytes"])
    def test_async_put_checks_a_declared_sha256(self, store: Store, source: str) -> None:
        data = _pattern(3 * 65536 + 7)
        good = hashlib.sha256(data).hexdigest()
        wrong = hashlib.sha256(data + b"!").hexdigest()

        def body() -> Any:
            if source == "bytes":
                return data
            return _chunks(*(data[i : i + 65536] for i in range(0, len(data), 65536)))

        async def test(astore: AsyncStore) -> None:
            await astore.put("hashed", b"old", metadata={"v": "old"})
            with pytest.raises(ChecksumMismatchError):
                await astore.put("hashed", body(), metadata={"v": "new"}, sha256=wrong)
            assert await _read(astore, "hashed") == b"old"
            assert (await astore.stat("hashed")).metadata == {"v": "old"}
            info = await astore.put("hashed", body(), sha256=good)
            assert info.size == len(data)
            assert await _read(astore, "hashed") == data

        _run(test, store)

    def test_async_source_errors_store_nothing(self, store: Store) -> None:
        async def failing(error: BaseException) -> AsyncIterator[bytes]:
            yield b"x" * MiB
            yield b"y" * MiB
            raise error

        async def not_bytes() -> AsyncIterator[Any]:
            yield b"fine"
            yield "text"

        async def test(astore: AsyncStore) -> None:
            await astore.put("failing", b"previous")
            with pytest.raises(_BoomError):
                await astore.put("failing", failing(_BoomError()))
            with pytest.raises(DataReadError):
                await astore.put("failing", failing(OSError(5, "Input/output error")))
            with pytest.raises(InvalidArgumentError):
                await astore.put("failing", not_bytes())
            assert await _read(astore, "failing") == b"previous"
            assert [info.key async for info in astore.list()] == ["failing"]

        _run(test, store)

    def test_a_cancelled_async_put_stores_nothing(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            await astore.put("cancelled", b"previous")
            sent = asyncio.Event()

            async def stalls() -> AsyncIterator[bytes]:
                yield b"z" * (3 * MiB)
                sent.set()
                await asyncio.Event().wait()  # a client that went quiet
                yield b"never"

            put = asyncio.ensure_future(astore.put("cancelled", stalls()))
            await sent.wait()
            put.cancel()
            with pytest.raises(asyncio.CancelledError):
                await put
            assert await _read(astore, "cancelled") == b"previous"
            assert [info.key async for info in astore.list()] == ["cancelled"]

        _run(test, store)

    def test_async_calls_refuse_invalid_keys(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            too_long = "k" * 1025  # beyond what any backend holds
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: astore.put("a//b", b"x"),
                lambda: astore.put("a//b", _chunks(b"x")),
                lambda: astore.presigned_put_url("a//b"),
                lambda: _read(astore, too_long),
                lambda: astore.stat(too_long),
                lambda: astore.delete(""),
                lambda: astore.presigned_get_url(""),
            ]
            for call in calls:
                with pytest.raises(InvalidKeyError):
                    await call()
            with pytest.raises(InvalidKeyError):
                astore.list(b"bytes")  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                await _read(astore, "k", 5, 2)

        _run(test, store)

    def test_async_reader_reads_in_chunks_ranges_and_to_the_end(self, store: Store) -> None:
        data = _pattern(2 * MiB + 3)

        async def test(astore: AsyncStore) -> None:
            await astore.put("r/big", data)
            await astore.put("r/small", b"0123456789")
            reader = await astore.get("r/big")
            assert reader.info.size == len(data)
            parts = [await reader.read(1000), await reader.read(MiB)]
            parts.append(await reader.read())
            assert b"".join(parts) == data
            assert await reader.read() == b""
            await reader.close()
            await reader.close()
            with pytest.raises(ValueError, match="closed"):
                await reader.read()
            async with astore.get("r/small", 2, 5) as small:
                assert small.info.size == 10
                assert await small.read(1) == b"2"
                assert await small.read() == b"34"
                assert await small.read() == b""
            assert await _read(astore, "r/small", 8, 100) == b"89"
            assert await _read(astore, "r/small", 10) == b""
            assert await _read(astore, "r/big", MiB - 1, MiB + 1) == data[MiB - 1 : MiB + 1]

        _run(test, store)

    def test_async_missing_keys(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            with pytest.raises(NotFoundError):
                await astore.stat("missing")
            with pytest.raises(NotFoundError):
                await _read(astore, "missing")
            await astore.delete("missing")
            await astore.put("present", b"x")
            await astore.delete("present")
            with pytest.raises(NotFoundError):
                await astore.stat("present")

        _run(test, store)

    def test_async_list_is_ordered_filtered_and_paged(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from .. import _async_store  # noqa: PLC0415 - to shrink its page

        monkeypatch.setattr(_async_store, "LIST_PAGE", 3)
        keys = ["l/a-b", "l/a/b", "l/a/c", "l/a0", "l/b", "l/é", "other"]

        async def test(astore: AsyncStore) -> None:
            for key in reversed(keys):
                await astore.put(key, key.encode())
            listed = [info async for info in astore.list("l/")]
            assert [info.key for info in listed] == keys[:-1]
            assert all(info.size == len(info.key.encode()) and info.etag for info in listed)
            assert [info.key async for info in astore.list("l/a/")] == ["l/a/b", "l/a/c"]
            assert [info.key async for info in astore.list("none/")] == []
            async for info in astore.list():  # leaving early releases the listing
                assert info.key == "l/a-b"
                break
            assert len([info async for info in astore.list()]) == len(keys)

        _run(test, store)

    def test_async_conditional_puts(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            first = await astore.put("c/k", b"1", if_none_match="*")
            with pytest.raises(PreconditionFailedError):
                await astore.put("c/k", b"2", if_none_match="*")
            with pytest.raises(PreconditionFailedError):
                await astore.put("c/k", _chunks(b"2"), if_none_match="*")
            second = await astore.put("c/k", _chunks(b"2"), if_match=first.etag)
            with pytest.raises(PreconditionFailedError):
                await astore.put("c/k", b"3", if_match=first.etag)
            assert await astore.stat("c/k") == second
            assert await _read(astore, "c/k") == b"2"

        _run(test, store)

    def test_async_concurrent_puts_and_gets_keep_every_object_whole(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            async def one(n: int) -> None:
                data = _pattern(1000 + 997 * n)
                await astore.put(f"many/{n:03}", _chunks(data[:500], data[500:]) if n % 2 else data)
                assert await _read(astore, f"many/{n:03}") == data

            await asyncio.gather(*(one(n) for n in range(40)))
            assert len([info async for info in astore.list("many/")]) == 40

        _run(test, store)

    def test_async_presigned_urls_work_over_http(self, store: Store) -> None:
        self._require("supports_presigned_urls")

        async def test(astore: AsyncStore) -> None:
            await astore.put("p/get.bin", b"presigned")
            get_url = await astore.presigned_get_url("p/get.bin", 60)
            put_url = await astore.presigned_put_url("p/put.bin", 60, "application/octet-stream")
            assert http_request("GET", get_url) == (200, b"presigned")
            uploaded = http_request("PUT", put_url, b"uploaded", {"Content-Type": "application/octet-stream"})
            assert uploaded[0] == 200, uploaded
            assert await _read(astore, "p/put.bin") == b"uploaded"

        _run(test, store)

    def test_async_store_closes_its_store(self, store: Store) -> None:
        async def test(astore: AsyncStore) -> None:
            async with astore as same:
                assert same is astore
                await astore.put("k", b"x")
                reader = await astore.get("k")
            assert astore.closed
            assert store.closed
            assert await reader.read() == b"x"  # a small object was read while opening
            await reader.close()
            with pytest.raises(StorageError):
                await astore.stat("k")

        _run(test, store)
