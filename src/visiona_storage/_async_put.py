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
    writing: asyncio.Future[Any] | None = None

    async def hand_over(piece: list[bytes]) -> asyncio.Future[Any]:
        """Write `piece` once the one before it is written (a writer takes one call at
        a time); each wait is shielded, so a cancelled put goes on to `_abort`, which
        waits for the call in its worker thread to end before aborting."""
        if writing is not None:
            await asyncio.shield(writing)
        return run(writer.write_pieces, piece)

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
                writing = await hand_over(piece)
        if 0 <= size != total:
            raise size_mismatch(key, size, total)
        piece = gathered.take()
        if piece:
            writing = await hand_over(piece)
        if writing is not None:
            await asyncio.shield(writing)
        writing = run(writer.commit)
        info: ObjectInfo = await asyncio.shield(writing)
        return info
    except BaseException:
        await _abort(writer, writing, run)
        raise


async def _abort(writer: PutWriter, writing: asyncio.Future[Any] | None, run: Run) -> None:
    """Abort `writer` once the call in flight (a piece, the commit) ends: a writer
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
