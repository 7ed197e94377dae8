"""A put from an async iterable: its chunks are gathered into pieces on the event
loop and each piece is handed to the store's `PutWriter` in a worker thread while
the next one is gathered.

What is held at once is the piece being written and the one being filled, so a
put of any size takes about two pieces of memory. A chunk that is not ``bytes``
(a `memoryview` of a buffer the source refills, say) is copied before the
source is asked for the next one, so what is stored is exactly what it yielded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Callable
from typing import Any, TypeAlias

from ._body import BytesLike, ReadingData, check_chunk, size_mismatch
from ._errors import StorageError
from ._models import ObjectInfo
from ._pieces import PieceGatherer
from ._writer import PutWriter

PIECE = 1 << 20
"""What one worker-thread hop writes: large enough that the hop costs little,
small enough that two of them are all a put holds."""


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
    turns = _Turns(writer, run)
    committing: asyncio.Future[Any] | None = None
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
            if piece is not None:
                await turns.write(piece)
        if 0 <= size != total:
            raise size_mismatch(key, size, total)
        piece = gathered.take()
        if piece:
            await turns.write(piece)
        await turns.finish()
        # Each call is shielded: cancelled, the task goes on to `_abort`, which waits
        # for the calls in their worker threads to end before aborting.
        committing = run(writer.commit)
        info: ObjectInfo = await asyncio.shield(committing)
        return info
    except BaseException:
        await _abort(writer, [*turns.calls, *([committing] if committing else [])], run)
        raise


class _Turns:
    """A put's pieces written in order, each in a worker-thread trip of its own; the
    next one is handed over before the one before it returns, and waits in its
    thread for that one to end, so the writer is never idle for a trip back to the
    event loop. At most two are handed over at once; the writer takes one call at
    a time, and none after a failed one."""

    def __init__(self, writer: PutWriter, run: Run) -> None:
        self._writer = writer
        self._run = run
        self.calls: list[asyncio.Future[Any]] = []  # handed over and not yet waited for
        self._last: threading.Event | None = None
        self._failed = False

    async def write(self, piece: list[bytes]) -> None:
        """Hand `piece` over; raise the error of an earlier piece, if any."""
        if len(self.calls) == 2:
            await asyncio.shield(self.calls.pop(0))
        before, done = self._last, threading.Event()
        self.calls.append(self._run(self._write_in_turn, piece, before, done))
        self._last = done

    async def finish(self) -> None:
        """Wait for every piece handed over; raise the first error."""
        while self.calls:
            await asyncio.shield(self.calls.pop(0))

    def _write_in_turn(
        self, piece: list[bytes], before: threading.Event | None, done: threading.Event
    ) -> None:
        try:
            if before is not None:
                before.wait()
            if self._failed:
                return  # the earlier piece's error is the one raised
            try:
                self._writer.write_pieces(piece)
            except BaseException:
                self._failed = True
                raise
        finally:
            done.set()


async def _abort(writer: PutWriter, calls: list[asyncio.Future[Any]], run: Run) -> None:
    """Abort `writer` once the calls in flight (pieces, the commit) end: a writer
    takes one call at a time. Runs to the end even if the task is cancelled meanwhile."""

    async def finish() -> None:
        await asyncio.gather(*calls, return_exceptions=True)
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
