"""An upload's body, received in the event loop and pushed to a `PutWriter`.

The event loop receives the body; each piece of `PIECE` bytes goes to the writer
in a worker thread (hashing and writing) while the loop receives the next. An
upload holds at most `AHEAD` pieces waiting, one being written and the one it is
filling; a stalled upload's queue drains, so it holds no thread and at most the
piece it is filling. A client that sends less than `MIN_PROGRESS` bytes within
the idle timeout is cut off; time the server spends waiting on its own writes
does not count.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from .._pieces import PieceGatherer
from .._writer import PutWriter

PIECE = 1 << 20
"""What one worker-thread hop writes: large enough that the hop costs little
(tens of microseconds per MiB), small enough to hold per stalled upload."""
AHEAD = 4
"""Pieces an upload may receive while earlier ones wait to be written: the network
keeps flowing while the disk catches up, and a stalled upload's queue drains, so
it holds only the piece it is filling."""


MIN_PROGRESS = 16 << 10
"""Bytes an upload must send within each idle timeout (30 s by default: about
550 bytes a second) to keep going."""


class BodyTimeoutError(Exception):
    """The client sent no byte of its body for the idle timeout."""


class BodyTooLargeError(Exception):
    """The body grew past the size its URL allows."""


class IdleWatch:
    """When the body last moved; `cut_off_when_idle` cancels the upload once it has
    not moved for `timeout` seconds. Marking a move costs a clock read, where a
    timeout around every receive would cost a cancel scope per message."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last = time.monotonic()
        self.expired = False
        self._progress = 0
        self._pauses = 0
        self._watching = anyio.CancelScope()

    def moved(self, size: int = MIN_PROGRESS) -> None:
        """`size` more bytes came; the timeout restarts once `MIN_PROGRESS` have come
        since it last did, so a client cannot hold an upload open with a byte now
        and then."""
        self._progress += size
        if self._progress >= MIN_PROGRESS:
            self._progress = 0
            self.last = time.monotonic()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The block's time does not count: the upload waits on the server, not the client."""
        self._pauses += 1
        try:
            yield
        finally:
            self._pauses -= 1
            self.moved()

    async def watch(self, upload: anyio.CancelScope) -> None:
        with self._watching:
            while self._pauses or (left := self.last + self.timeout - time.monotonic()) > 0:
                await anyio.sleep(self.timeout if self._pauses else left)
            self.expired = True
            upload.cancel()

    def stop(self) -> None:
        self._watching.cancel()  # also before `watch` has started


@asynccontextmanager
async def cut_off_when_idle(timeout: float) -> AsyncIterator[IdleWatch]:
    """Run the body of the ``async with`` as long as the upload moves (`IdleWatch.moved`)
    at least every `timeout` seconds; else cancel it and raise `BodyTimeoutError`."""
    idle = IdleWatch(timeout)
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(idle.watch, group.cancel_scope)
        try:
            yield idle
        except Exception as exc:  # raised below, outside the task group (no ExceptionGroup)
            failure = exc
        finally:
            idle.stop()
    if idle.expired:
        raise BodyTimeoutError
    if failure is not None:
        raise failure


async def receive_body(receive: Receive, *, limit: int | None, idle: IdleWatch) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive, each marked on `idle`.

    Raises `BodyTooLargeError` as soon as more than `limit` bytes came, and
    ``ClientDisconnect`` if the client left.
    """
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        idle.moved(len(chunk))
        received += len(chunk)
        if limit is not None and received > limit:
            raise BodyTooLargeError
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def receive_all(chunks: AsyncIterator[bytes]) -> bytes:
    """The whole body (for one the caller knows to be small)."""
    return b"".join([chunk async for chunk in chunks])


async def push_body(
    chunks: AsyncIterator[bytes],
    writer: PutWriter,
    limiter: anyio.CapacityLimiter,
    idle: IdleWatch,
    budget: anyio.Semaphore,
) -> None:
    """Hand `chunks` to `writer` in pieces of `PIECE` bytes, written in a worker thread
    (at most `limiter`'s tokens at once across uploads) while the next are received.
    Each piece waiting or being written holds one of `budget`'s tokens, shared by
    every upload, so however many uploads come at once the pieces they hold are
    bounded. `idle` is paused while a piece waits for room and once the body has
    all come: the client is not to blame for the server's pace.

    Raises the first error of the writer, else of the body; in either case no
    write is still running when this returns or raises, and pieces not yet written
    when the body fails are dropped.
    """
    failures: list[BaseException] = []
    abandoned: list[bool] = []
    receiving: Exception | None = None
    pieces_in, pieces_out = anyio.create_memory_object_stream[list[bytes]](AHEAD)
    async with anyio.create_task_group() as group:
        write_all = partial(_write_all, failures=failures, abandoned=abandoned, budget=budget)
        group.start_soon(write_all, pieces_out, writer, limiter)
        try:
            async with pieces_in:
                try:
                    await _split(chunks, pieces_in, failures, idle, budget)
                except BaseException:
                    abandoned.append(True)  # what is queued is not to be written
                    raise
            idle.stop()  # all of it came: what is left is the server's writing
        except Exception as exc:  # raised below, once the writes in flight are done
            receiving = exc
    if failures:
        raise failures[0]
    if receiving is not None:
        raise receiving


async def _split(
    chunks: AsyncIterator[bytes],
    pieces: MemoryObjectSendStream[list[bytes]],
    failures: list[BaseException],
    idle: IdleWatch,
    budget: anyio.Semaphore,
) -> None:
    gathered = PieceGatherer(PIECE)
    async for chunk in chunks:
        piece = gathered.add(chunk)
        if piece is not None:
            if failures:
                return
            await _hand_over(piece, pieces, idle, budget)
    piece = gathered.take()
    if piece:
        await _hand_over(piece, pieces, idle, budget)


async def _hand_over(
    piece: list[bytes], pieces: MemoryObjectSendStream[list[bytes]], idle: IdleWatch, budget: anyio.Semaphore
) -> None:
    """Queue `piece` once the budget has room for it; `_write_all` gives the room back."""
    with idle.paused():
        await budget.acquire()
        try:
            await pieces.send(piece)
        except BaseException:
            budget.release()
            raise


async def _write_all(
    pieces: MemoryObjectReceiveStream[list[bytes]],
    writer: PutWriter,
    limiter: anyio.CapacityLimiter,
    *,
    failures: list[BaseException],
    abandoned: list[bool],
    budget: anyio.Semaphore,
) -> None:
    async with pieces:
        try:
            async for piece in pieces:
                try:
                    if failures or abandoned:
                        continue  # drop what is queued: the put has failed
                    await anyio.to_thread.run_sync(writer.write_pieces, piece, limiter=limiter)
                except Exception as exc:  # kept for push_body, which raises it
                    failures.append(exc)
                finally:
                    budget.release()
        finally:  # cancelled: the pieces still queued give their room back too
            while True:
                try:
                    pieces.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                budget.release()
