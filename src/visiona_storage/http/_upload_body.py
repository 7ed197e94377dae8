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

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
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


Wake = Callable[[Callable[[], object]], object]
"""Runs a function in an event loop, called from another thread."""


class PieceBudget:
    """Room for `size` pieces, shared by every upload of an app: taken in the event
    loop (waiting while there is none), given back from any thread. A piece waiting
    or being written holds one unit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._lock = threading.Lock()
        self._waiting: deque[tuple[anyio.Event, Wake]] = deque()

    @property
    def value(self) -> int:
        """Units free now."""
        return self._free

    def take_nowait(self) -> bool:
        """Take a unit if one is free, without waiting."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            return False

    async def take(self, wake: Wake) -> None:
        """Take a unit, waiting in turn for one; `wake` runs a function in this loop
        from another thread."""
        if self.take_nowait():
            return
        handed = anyio.Event()
        entry = (handed, wake)
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            self._waiting.append(entry)
        try:
            await handed.wait()
        except BaseException:
            with self._lock:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    raise
            self.give_back(1)  # handed over as this was cancelled: pass it on
            raise

    def give_back(self, count: int) -> None:
        """Give back `count` units, each to the first upload waiting if any; from any thread."""
        woken = []
        with self._lock:
            for _ in range(count):
                if self._waiting:
                    woken.append(self._waiting.popleft())
                else:
                    self._free += 1
        for handed, wake in woken:
            wake(handed.set)


def _waker() -> Wake:
    """A function that runs a function in the current event loop from another
    thread: the loop's ``call_soon_threadsafe`` under asyncio, else anyio's portal."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another async library's loop (trio)
        token = anyio.lowlevel.current_token()
        return partial(anyio.from_thread.run_sync, token=token)
    return loop.call_soon_threadsafe


async def push_body(
    chunks: AsyncIterator[bytes],
    writer: PutWriter,
    limiter: anyio.CapacityLimiter,
    idle: IdleWatch,
    budget: PieceBudget,
) -> None:
    """Hand `chunks` to `writer` in pieces of `PIECE` bytes, written in a worker thread
    (at most `limiter`'s tokens at once across uploads) while the next are received.
    Each piece waiting or being written holds one unit of `budget`, shared by every
    upload, so however many uploads come at once the pieces they hold are bounded.
    `idle` is paused while a piece waits for room and once the body has all come:
    the client is not to blame for the server's pace.

    Raises the first error of the writer, else of the body; in either case no
    write is still running when this returns or raises, and pieces not yet written
    when the body fails are dropped.
    """
    queue = _PieceQueue(writer, budget, _waker())
    receiving: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            try:
                try:
                    await _split(chunks, queue, group, limiter, idle)
                except BaseException:
                    queue.abandon()  # what is queued is not to be written
                    raise
                idle.stop()  # all of it came: what is left is the server's writing
            except Exception as exc:  # raised below, once the writes in flight are done
                receiving = exc
    finally:
        # No write runs now. Pieces whose drain never started (it was cancelled while
        # waiting for a thread) give their room back, cancelled or not.
        queue.drop_rest()
    if queue.failures:
        raise queue.failures[0]
    if receiving is not None:
        raise receiving


class _PieceQueue:
    """One upload's pieces waiting or being written, in order. The event loop adds
    them; a worker thread writes them one after another for as long as there are
    some (`drain`), so a steady upload costs one thread hop per run of pieces, not
    one per piece, and a stalled one's thread goes back once its queue is empty."""

    def __init__(self, writer: PutWriter, budget: PieceBudget, wake: Wake) -> None:
        self.writer = writer
        self.budget = budget
        self.wake = wake
        self.failures: list[BaseException] = []
        self._pieces: deque[list[bytes]] = deque()
        self._lock = threading.Lock()
        self._draining = False
        self._abandoned = False
        self._room: anyio.Event | None = None  # set once the queue has room again

    def stopped(self) -> bool:
        """Whether the writer failed: nothing more is to be queued."""
        return bool(self.failures)

    async def add(self, piece: list[bytes], idle: IdleWatch) -> bool:
        """Queue `piece` once there is room (in the budget and within `AHEAD` here);
        True if a drain is to be started for it."""
        if not self.budget.take_nowait():
            with idle.paused():
                await self.budget.take(self.wake)
        while True:
            with self._lock:
                if len(self._pieces) <= AHEAD:
                    self._pieces.append(piece)
                    start = not self._draining
                    self._draining = True
                    return start
                room = self._room = anyio.Event()
            try:
                with idle.paused():
                    await room.wait()
            except BaseException:
                self.budget.give_back(1)
                raise

    def drain(self) -> None:
        """Write the queued pieces until none is left (run in a worker thread). After
        a failure or once abandoned, the rest are dropped."""
        while True:
            with self._lock:
                if not self._pieces or self._abandoned or self.failures:
                    self._draining = False
                    dropped = len(self._pieces) if (self._abandoned or self.failures) else 0
                    if dropped:
                        self._pieces.clear()
                    self._wake_room()
                    break
                piece = self._pieces[0]
            try:
                self.writer.write_pieces(piece)
            except Exception as exc:  # kept for push_body, which raises it
                self.failures.append(exc)
            with self._lock:
                self._pieces.popleft()
                self._wake_room()
            self.budget.give_back(1)
        if dropped:
            self.budget.give_back(dropped)

    def _wake_room(self) -> None:
        """Wake the receiver if it waits for room (the lock is held)."""
        if self._room is not None:
            self.wake(self._room.set)
            self._room = None

    def abandon(self) -> None:
        """The body failed: pieces not yet written are dropped."""
        with self._lock:
            self._abandoned = True

    def drop_rest(self) -> None:
        """Give back the room of pieces still queued (once no drain runs)."""
        with self._lock:
            dropped = len(self._pieces)
            self._pieces.clear()
            self._draining = False
        if dropped:
            self.budget.give_back(dropped)


async def _split(
    chunks: AsyncIterator[bytes],
    queue: _PieceQueue,
    group: anyio.abc.TaskGroup,
    limiter: anyio.CapacityLimiter,
    idle: IdleWatch,
) -> None:
    gathered = PieceGatherer(PIECE)
    async for chunk in chunks:
        piece = gathered.add(chunk)
        if piece is not None:
            if queue.stopped():
                return
            if await queue.add(piece, idle):
                group.start_soon(_drain, queue, limiter)
    piece = gathered.take()
    if piece and not queue.stopped() and await queue.add(piece, idle):
        group.start_soon(_drain, queue, limiter)


async def _drain(queue: _PieceQueue, limiter: anyio.CapacityLimiter) -> None:
    await anyio.to_thread.run_sync(queue.drain, limiter=limiter)
