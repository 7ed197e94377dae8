"""`AsyncStore`: the `Store` API for asyncio code, over any backend.

Each call hands the wrapped store's blocking work (the disk, the network,
hashing) to a bounded pool of worker threads of the `AsyncStore`'s own, so the
event loop only ever waits on a future, and a flood of storage calls cannot take
the threads the rest of the application uses. Arguments, results and errors are
those of `Store`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar

from ._async_put import push
from ._async_read import MAX_STEP, ReadAhead
from ._body import BytesLike, PutData
from ._config import StorageConfig, open_store
from ._errors import StorageError
from ._keys import check_prefix
from ._models import DEFAULT_CHUNK_SIZE, ObjectInfo, ObjectReader
from ._store import DEFAULT_TTL, Store, start_put
from ._writer import PutWriter

AsyncPutData: TypeAlias = PutData | AsyncIterable[BytesLike]
"""What `AsyncStore.put` accepts: what `Store.put` does, or an async iterable of bytes."""

DEFAULT_THREADS = 16
"""Worker threads of one `AsyncStore`: calls beyond it wait their turn."""

READ_AHEAD = 256 << 10
"""A range up to this size is read whole by the call that opens it, so a small
get costs one trip to a worker thread, not three (open, read, close)."""

LIST_PAGE = 1000
"""Listed objects fetched per trip to a worker thread."""

T = TypeVar("T")


class AsyncStore:
    """The `Store` API with ``async`` methods, over any `Store`.

    ``async with AsyncStore(store) as astore:`` closes the wrapped store at the
    end. Safe to share between tasks of one event loop; at most `max_threads`
    calls run at once, the rest wait their turn.
    """

    def __init__(self, store: Store, *, max_threads: int = DEFAULT_THREADS) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"AsyncStore wraps a Store, not {type(store).__name__}")
        if not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive int, not {max_threads!r}")
        self._store = store
        self._pool: Executor = ThreadPoolExecutor(max_threads, thread_name_prefix="vs-async")
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None  # the close under way, or done
        self._calls: set[concurrent.futures.Future[Any]] = set()  # in flight, for `close`

    @property
    def store(self) -> Store:
        """The wrapped `Store`, for what is not worth a thread (or not async)."""
        return self._store

    async def put(
        self,
        key: str,
        data: AsyncPutData,
        size: int = -1,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """`Store.put`, awaited. `data` may also be an async iterable of bytes (a
        request body, say): its chunks are written as they come, holding about
        6 MiB however large the object. Raises what `Store.put` raises; on any
        error nothing is stored.

        Cancelled, a put from an async iterable stops and stores nothing (unless
        the object is already being published: that finishes). A put of bytes, a
        file or an iterable runs in a worker thread to its end, as a thread cannot
        be stopped from outside; only its result is lost.
        """
        if not isinstance(data, AsyncIterable):
            return await self._run(
                self._store.put,
                key,
                data,
                size,
                metadata,
                content_type,
                if_match=if_match,
                if_none_match=if_none_match,
                sha256=sha256,
            )
        starting = self._run(
            start_put,
            self._store,
            key,
            size,
            metadata,
            content_type,
            if_match=if_match,
            if_none_match=if_none_match,
            sha256=sha256,
        )
        try:
            writer = await asyncio.shield(starting)
        except asyncio.CancelledError:  # the thread still starts it: abort what it starts
            starting.add_done_callback(lambda done: self._settle(done, _abort_writer))
            raise
        return await push(data, size, writer, key, self._run)

    def get(self, key: str, start: int = 0, end: int | None = None) -> ReaderOpening:
        """`Store.get`: use as ``async with astore.get(key) as reader:``, or
        ``reader = await astore.get(key)`` and ``await reader.close()``. Raises
        `NotFoundError`, `InvalidKeyError`, `InvalidArgumentError` or `StorageError`
        when entered or awaited."""
        return ReaderOpening(self, key, start, end)

    async def stat(self, key: str) -> ObjectInfo:
        """`Store.stat`, awaited."""
        return await self._run(self._store.stat, key)

    async def delete(self, key: str) -> None:
        """`Store.delete`, awaited."""
        await self._run(self._store.delete, key)

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """`Store.list` as an async iterator, fetched in pages of `LIST_PAGE`. Raises
        `InvalidKeyError` at once for a prefix that is not text."""
        check_prefix(prefix)
        return self._list(prefix)

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        iterator = await self._run(lambda: iter(self._store.list(prefix)))
        try:
            while page := await self._run(_take, iterator, LIST_PAGE):
                for info in page:
                    yield info
        finally:
            closing = getattr(iterator, "close", None)
            if closing is not None:  # the backend's listing may hold folders open
                self._submit(closing)

    async def presigned_get_url(self, key: str, ttl: timedelta | int | float = DEFAULT_TTL) -> str:
        """`Store.presigned_get_url`, awaited (an S3 signer may first fetch credentials)."""
        return await self._run(self._store.presigned_get_url, key, ttl)

    async def presigned_put_url(
        self,
        key: str,
        ttl: timedelta | int | float = DEFAULT_TTL,
        content_type: str | None = None,
        *,
        max_size: int | None = None,
    ) -> str:
        """`Store.presigned_put_url`, awaited."""
        return await self._run(self._store.presigned_put_url, key, ttl, content_type, max_size=max_size)

    async def close(self) -> None:
        """Refuse new calls (`StorageError`), wait for the calls in flight, then close
        the wrapped store and the worker threads. Readers still open go on working
        where the backend allows (a local file does), on threads of the event loop's
        default executor. A close whose caller is cancelled goes on to the end, and
        a second call waits for it (one made in another event loop does not)."""
        self._closing = True
        loop = asyncio.get_running_loop()
        task = self._close_task
        if task is None or task.cancelled():  # the first, or one its loop ended before it did
            task = self._close_task = loop.create_task(self._close())
        elif task.done() or task.get_loop() is not loop:
            return  # its error, if any, went to the call that started it
        await asyncio.shield(task)

    async def _close(self) -> None:
        try:
            while running := list(self._calls):
                await asyncio.wait([asyncio.wrap_future(call) for call in running])
                for _ in range(3):  # done-callbacks may hand over more: closing what they made
                    await asyncio.sleep(0)
            if not self._store.closed:
                await self._run_late(self._store.close)
        finally:
            self._pool.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        """True once `close` has been called, or the wrapped store closed."""
        return self._closing or self._store.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _run(self, call: Callable[..., T], *arguments: Any, **keywords: Any) -> asyncio.Future[T]:
        """`call` in a worker thread, as a future of the running loop. Raises
        `StorageError` once closed."""
        if self._closing:
            raise StorageError(f"AsyncStore over {type(self._store).__name__} is closed")
        return asyncio.wrap_future(self._track(self._pool.submit(call, *arguments, **keywords)))

    def _run_late(self, call: Callable[..., T], *arguments: Any) -> asyncio.Future[T]:
        """`call` in a worker thread, also once closing: for what outlives `close`
        (readers still open, the close itself), on the loop's default executor then."""
        if not self._closing:
            return self._run(call, *arguments)
        return asyncio.get_running_loop().run_in_executor(None, call, *arguments)

    def _settle(self, done: asyncio.Future[Any], release: Callable[[Any], object]) -> None:
        """Once `done` (a call whose caller was cancelled) ends, `release` what it
        made, if it made anything: no one else will."""
        if not done.cancelled() and done.exception() is None:
            made = done.result()
            self._submit(lambda: release(made))

    def _submit(self, call: Callable[[], object]) -> None:
        """`call` in a worker thread, not waited for; here and now once closed."""
        try:
            self._track(self._pool.submit(call))
        except RuntimeError:  # the pool is shut down
            call()

    def _track(self, running: concurrent.futures.Future[T]) -> concurrent.futures.Future[T]:
        """Keep the thread's own future among the calls `close` waits for, until it
        ends (a cancelled caller's included)."""
        self._calls.add(running)
        running.add_done_callback(self._calls.discard)
        return running

    def __repr__(self) -> str:
        return f"AsyncStore({self._store!r})"


def open_async_store(config: str | StorageConfig | Mapping[str, Any] | None = None) -> AsyncStore:
    """`AsyncStore(open_store(config))`: the store a configuration describes, async.
    Raises what `open_store` raises."""
    return AsyncStore(open_store(config))


def _take(iterator: Iterator[ObjectInfo], count: int) -> list[ObjectInfo]:
    page = []
    for info in iterator:
        page.append(info)
        if len(page) == count:
            break
    return page


class AsyncObjectReader:
    """An object's bytes for async code: ``await reader.read(n)`` and
    ``async for chunk in reader``. `info` describes the whole object, even when
    only a range is read. Close it (``await reader.close()`` or ``async with``).

    Reads are served from chunks one worker-thread trip reads ahead for as long as
    they are taken: at most 2 MiB waits besides the chunk being read, in chunks
    of 1 MiB (or one chunk of the size `read` asks for, up to `MAX_STEP`).
    """

    def __init__(self, store: AsyncStore, reader: ObjectReader, ahead: bytes | None) -> None:
        self._store = store
        self._reader = reader
        self._info = reader.info
        self._parts: deque[bytes] = deque([ahead] if ahead else [])  # read, not yet returned
        self._offset = 0  # of what is returned, in the first part
        self._buffered = len(ahead or b"")
        self._closed = False
        self._reading = asyncio.Lock()  # one read at a time reaches the reader
        self._ahead = ReadAhead(reader, store._run_late)
        self._pending: asyncio.Future[bytes] | None = None
        """A read of the rest, left running in a worker thread by a whole read whose
        task was cancelled. Its bytes are the next ones returned."""

    @property
    def info(self) -> ObjectInfo:
        """The `ObjectInfo` of the object being read (the whole object)."""
        return self._info

    @property
    def closed(self) -> bool:
        """True once `close` has been called."""
        return self._closed

    async def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left if `size` is negative or None); fewer
        only at the end, ``b""`` there. Raises `StorageError` (or the backend's typed
        error) if the backend fails mid-read, and ``ValueError`` once closed. Reads
        from several tasks take turns; the bytes of a read whose task was cancelled
        are returned by the next one."""
        wanted = -1 if size is None or size < 0 else size
        self._check_loop()
        async with self._reading:
            return await self._read(wanted)

    async def _read(self, wanted: int) -> bytes:
        """`read`, its turn taken."""
        if self._closed:
            raise ValueError("I/O operation on a closed object reader")
        if wanted < 0:
            self._keep(await self._ahead.pause())
            self._keep([await self._rest()])
        else:
            self._ahead.step = min(max(wanted, DEFAULT_CHUNK_SIZE), MAX_STEP)
            while self._buffered < wanted:
                chunk = await self._rest() if self._pending is not None else await self._ahead.take()
                if not chunk:
                    break
                self._keep([chunk])
        return self._cut(wanted)

    def _keep(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self._parts.append(chunk)
                self._buffered += len(chunk)

    def _cut(self, size: int) -> bytes:
        """The first `size` bytes kept (all if negative), copied only if they are not
        one whole part."""
        size = self._buffered if size < 0 else min(size, self._buffered)
        parts = self._parts
        if not size:
            return b""
        if not self._offset and len(parts[0]) == size:
            self._buffered -= size
            return parts.popleft()
        out = []
        left = size
        while left:
            view = memoryview(parts[0])[self._offset :]
            if len(view) <= left:
                out.append(view)
                left -= len(view)
                parts.popleft()
                self._offset = 0
            else:
                out.append(view[:left])
                self._offset += left
                left = 0
        self._buffered -= size
        return b"".join(out)

    def _left(self) -> bool:
        return not self._reader.closed and self._reader.remaining > 0

    async def _rest(self) -> bytes:
        """All the reader has left, in one trip (that of a cancelled whole read first)."""
        if self._pending is None:
            if not self._left():
                return b""
            self._pending = self._store._run_late(self._reader.read, -1)
        data = await asyncio.shield(self._pending)  # cancelled, it stays pending
        self._pending = None
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        """Chunks of up to 1 MiB, read ahead in a worker thread while the caller
        handles this one."""
        self._check_loop()
        while True:
            async with self._reading:
                if not self._buffered and self._pending is None and not self._closed:
                    self._ahead.step = DEFAULT_CHUNK_SIZE
                    chunk = await self._ahead.take()  # as it was read: not copied
                else:
                    chunk = await self._read(DEFAULT_CHUNK_SIZE)
            if not chunk:
                return
            yield chunk

    def _check_loop(self) -> None:
        """Raise ``RuntimeError`` unless called in the event loop that opened the
        reader: its reading ahead settles futures of that loop."""
        if asyncio.get_running_loop() is not self._ahead.loop:
            raise RuntimeError("an AsyncObjectReader is used only in the event loop that opened it")

    async def _settled(self) -> None:
        """Wait for a read still running in a worker thread."""
        if self._pending is not None:
            await asyncio.wait([self._pending])
            self._pending = None

    async def close(self) -> None:
        """Free the backend's handle, once a read in flight ends. Raises only
        ``RuntimeError`` if called in another event loop than the one that opened
        the reader while a read of that loop's is in flight (it would wait for that
        loop forever); closing twice does nothing."""
        if not self._closed:
            elsewhere = asyncio.get_running_loop() is not self._ahead.loop
            if elsewhere and self._ahead.idle and self._pending is None:
                self._closed = True  # nothing of the other loop's to wait for
                self._reader.close()
                return
            self._check_loop()
            self._closed = True
            self._parts.clear()
            self._buffered = 0
            await self._ahead.close()
            await self._settled()
            if self._reader.closed:
                return
            if self._store._closing:  # its threads are gone; closing a handle is quick
                self._reader.close()
            else:
                await asyncio.gather(self._store._run(self._reader.close), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncObjectReader {self._info.key!r}{' closed' if self._closed else ''}>"


class ReaderOpening:
    """What `AsyncStore.get` returns: awaited, an `AsyncObjectReader`; as an
    ``async with``, the same, closed at the end of the block."""

    def __init__(self, store: AsyncStore, key: str, start: int, end: int | None) -> None:
        self._store = store
        self._key = key
        self._range = (start, end)
        self._reader: AsyncObjectReader | None = None

    def __await__(self) -> Generator[Any, None, AsyncObjectReader]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncObjectReader:
        self._reader = await self._open()
        return self._reader

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            await self._reader.close()

    async def _open(self) -> AsyncObjectReader:
        store = self._store
        opening = store._run(_open, store.store, self._key, *self._range)
        try:
            reader, ahead = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread still opens it: close what it opens, no one will read it.
            opening.add_done_callback(lambda done: store._settle(done, _close_reader))
            raise
        return AsyncObjectReader(store, reader, ahead)


def _open(store: Store, key: str, start: int, end: int | None) -> tuple[ObjectReader, bytes | None]:
    """Open the range, and read it whole (closing the reader) if it is small."""
    reader = store.get(key, start, end)
    if reader.remaining > READ_AHEAD:
        return reader, None
    with reader:
        return reader, reader.read()


def _abort_writer(writer: PutWriter) -> None:
    writer.abort()


def _close_reader(opened: tuple[ObjectReader, bytes | None]) -> None:
    opened[0].close()
