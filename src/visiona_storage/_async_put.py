"""A put from an async iterable: its chunks are gathered into pieces on the event
loop and queued; one worker-thread trip writes the queued pieces to the store's
`PutWriter` for as long as they keep coming, and a new trip starts only once a
trip has run dry. A steady put thus costs a trip per run of pieces, not one per
piece, and a put whose source stalls holds no thread.

At most `AHEAD` pieces wait besides the one being written and the one being
filled, so a put of any size holds about six pieces of memory. A chunk that is
not ``bytes`` (a `memoryview` of a buffer the source refills, say) is copied
before the source is asked for the next one, so what is stored is exactly what
it yielded.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable
from typing import Any, TypeAlias

from ._body import BytesLike, ReadingData, check_chunk, size_mismatch
from ._errors import StorageError
from ._models import ObjectInfo
from ._pieces import PieceGatherer
from ._writer import PutWriter

PIECE = 1 << 20
"""What is handed to the writer in one call: large enough that the call costs
little, small enough that a few of them are all a put holds."""

AHEAD = 4
"""Pieces that may wait while one is written: the source runs on while the disk
or the network is briefly slower."""


Run: TypeAlias = Callable[..., "asyncio.Future[Any]"]
"""Runs a call in a worker thread, as a future; raises `StorageError` once closed."""


async def push(
    chunks: AsyncIterable[BytesLike], size: int, writer: PutWriter, key: str, run: Run
) -> ObjectInfo:
    """Write `chunks` through `writer` and commit; on any error or cancellation,
    abort (nothing is stored) and raise it. A cancellation that comes while the
    object is being published lets that finish.

    Raises `SizeMismatchError` as soon as the chunks exceed `size` (-1: unknown)
    or, at their end, fall short of it; `InvalidArgumentError` for a chunk that is
    not bytes-like; `DataReadError` for an ``OSError`` the source raised; what the
    writer raises; and any other exception of the source unchanged.
    """
    queue = _PieceQueue(writer, asyncio.get_running_loop())
    writing: asyncio.Future[Any] | None = None
    try:
        gathered = PieceGatherer(PIECE)
        total = 0
        reading = ReadingData(key)
        iterator = aiter(chunks)
        while True:
            with reading:
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
            chunk = check_chunk(item, key)
            total += len(chunk)
            if 0 <= size < total:
                raise size_mismatch(key, size, f"more than {size}")
            piece = gathered.add(chunk)
            if piece is not None and await queue.add(piece):
                writing = run(queue.drain)
        if 0 <= size != total:
            raise size_mismatch(key, size, total)
        piece = gathered.take()
        if piece and await queue.add(piece):
            writing = run(queue.drain)
        if writing is not None:
            await asyncio.shield(writing)
        queue.check()
        writing = run(writer.commit)
        info: ObjectInfo = await asyncio.shield(writing)
        return info
    except BaseException:
        queue.abandon()  # what is queued is not to be written
        await _abort(writer, writing, run)
        raise


class _PieceQueue:
    """One put's pieces waiting or being written, in order. The event loop adds
    them; `drain`, in a worker thread, writes them one after another until none is
    left. After a failure of the writer, or once abandoned, the rest are dropped."""

    def __init__(self, writer: PutWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop
        self._pieces: deque[list[bytes]] = deque()  # the first is being written
        self._lock = threading.Lock()
        self._draining = False
        self._stopped = False
        self._failure: Exception | None = None
        self._room: asyncio.Future[None] | None = None  # the loop waits for room

    async def add(self, piece: list[bytes]) -> bool:
        """Queue `piece` once fewer than `AHEAD` wait; True if a `drain` is to be
        started for it. Raises the writer's error if it failed."""
        while True:
            self.check()
            with self._lock:
                if len(self._pieces) <= AHEAD:
                    self._pieces.append(piece)
                    start = not self._draining
                    self._draining = True
                    return start
                room = self._room = self._loop.create_future()
            await room

    def check(self) -> None:
        """Raise the writer's error, if it failed."""
        if self._failure is not None:
            raise self._failure

    def drain(self) -> None:
        """Write the queued pieces until none is left (in a worker thread). The loop
        is woken with the lock released: a wake is a system call."""
        while True:
            with self._lock:
                if not self._pieces or self._stopped:
                    self._pieces.clear()
                    self._draining = False
                    room = self._waker()
                    break
                piece = self._pieces[0]
            try:
                self._writer.write_pieces(piece)
            except Exception as exc:  # raised by the loop's next `add` or `check`
                self._failure = exc
                self._stopped = True
            with self._lock:
                if self._pieces:
                    self._pieces.popleft()
                room = self._waker()
            if room is not None:
                self._loop.call_soon_threadsafe(_settle, room)
        if room is not None:
            self._loop.call_soon_threadsafe(_settle, room)

    def abandon(self) -> None:
        """Drop what is queued: the put failed. A piece being written finishes."""
        with self._lock:
            self._stopped = True
            self._pieces.clear()

    def _waker(self) -> asyncio.Future[None] | None:
        """The loop's future to settle if it waits for room (the lock is held)."""
        room, self._room = self._room, None
        return room


def _settle(room: asyncio.Future[None]) -> None:
    if not room.done():
        room.set_result(None)


async def _abort(writer: PutWriter, writing: asyncio.Future[Any] | None, run: Run) -> None:
    """Abort `writer` once the call in flight (a drain, the commit) ends: a writer
    takes one call at a time. Runs to the end even if the task is cancelled meanwhile."""

    async def finish() -> None:
        if writing is not None:
            await asyncio.gather(writing, return_exceptions=True)
        try:
            aborting = run(writer.abort)
        except StorageError:  # closed: no worker thread left, and aborting is quick
            writer.abort()
            return
        await aborting

    ending = asyncio.ensure_future(finish())
    cancelled = False
    while not ending.done():
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # noqa: S112 - abort never raises; the put's own error is raised
            continue
    if cancelled:
        raise asyncio.CancelledError
