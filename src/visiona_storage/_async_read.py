"""Reading ahead for `AsyncObjectReader`: one worker-thread trip reads the next
chunks of a sync `ObjectReader` into a short queue for as long as the event loop
keeps taking them, so a steady read costs a trip per run of chunks, not one per
chunk. A trip ends once `AHEAD` MiB wait (the loop starts another when half of
that is taken), at the end of the object, at an error, or when paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._models import DEFAULT_CHUNK_SIZE as CHUNK
from ._models import ObjectReader

AHEAD = 2
"""MiB read and not yet taken, at most (two 1 MiB chunks, or one larger chunk a
`read(n)` asked for): what a reader holds besides the chunk being read and the one
the caller has. Two, not more: the chunks are allocated in a worker thread's
malloc arena and freed by the event loop, and with four waiting, glibc's arena
often finds a freed run at its top above its trim threshold and returns its
pages, so that the chunks after it fault their pages in again (for a 256 MiB
get, about 40 times the page faults and 4 times the time)."""

MAX_STEP = 4 * CHUNK
"""The largest chunk read ahead, for reads that ask for more than 1 MiB at once."""

Run = Callable[..., "asyncio.Future[Any]"]


class ReadAhead:
    """The chunks of `reader` read ahead in worker threads (started by `run`).

    Only the event loop calls the ``async`` methods, one at a time (the owner
    holds a lock); `_fill` runs in a worker thread.
    """

    def __init__(self, reader: ObjectReader, run: Run) -> None:
        self._reader = reader
        self._run = run
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._failure: Exception | None = None
        self._paused = False  # the trip ends after its chunk
        self._filling = False  # a trip reads, or is about to
        self._ended = False  # the reader returned b"" before its declared end
        self._closed = False  # no more trips: the reader is being closed
        self._waiter: asyncio.Future[None] | None = None  # the loop waits for a chunk
        self._queued = 0  # bytes in `_chunks`
        self._trip: asyncio.Future[None] | None = None  # a trip running, or its end not seen
        self.step = 0
        """Bytes each read of the trip asks for; set by the caller before `take`."""

    async def take(self) -> bytes:
        """The next chunk, or ``b""`` at the end. Raises what the reader raised, once
        the chunks read before the error are taken. Cancelled, the chunk it waited
        for is kept for the next `take`."""
        while True:
            with self._lock:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._queued -= len(chunk)
                    if self._queued <= AHEAD // 2 * CHUNK:
                        with contextlib.suppress(RuntimeError):  # no thread: the next take says so
                            self._start()
                    return chunk
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                if not self._filling:  # else the trip may have read the end, not yet queued it
                    if self._closed or not self._left():
                        return b""
                    self._start()
                waiter = self._waiter = self._loop.create_future()
            await waiter

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop that made it: the one whose futures its trips settle."""
        return self._loop

    @property
    def idle(self) -> bool:
        """True if no trip runs: nothing to wait for before closing the reader."""
        with self._lock:
            return not self._filling

    def _start(self) -> None:
        """Start a trip unless one runs, the end is reached or an error waits (the
        lock is held)."""
        if self._filling or self._closed or self._failure is not None or not self._left():
            return
        self._paused = False
        self._filling = True
        try:
            self._trip = self._run(self._fill)
        except BaseException:  # no thread to run it on (the loop is shutting down)
            self._filling = False
            raise

    def _left(self) -> bool:
        return not self._ended and not self._reader.closed and self._reader.remaining > 0

    def _fill(self) -> None:
        """Read chunks until `AHEAD` MiB wait, the end, an error or a pause (in a worker
        thread). The loop is woken with the lock released: a wake is a system call."""
        while True:
            with self._lock:
                if self._paused or self._queued >= AHEAD * CHUNK or not self._left():
                    self._filling = False
                    waiter = self._waker()
                    break
                step = self.step
            try:
                chunk = self._reader.read(step)
            except Exception as exc:  # raised by `take` once the chunks before it are taken
                with self._lock:
                    self._failure = exc
                    self._filling = False
                    waiter = self._waker()
                break
            with self._lock:
                if chunk:
                    self._chunks.append(chunk)
                    self._queued += len(chunk)
                    waiter = self._waker()  # a loop waiting for a chunk
                else:
                    self._ended = True
                    waiter = self._waker()
            if waiter is not None:
                self._loop.call_soon_threadsafe(_settle, waiter)
        if waiter is not None:
            self._loop.call_soon_threadsafe(_settle, waiter)

    def _waker(self) -> asyncio.Future[None] | None:
        """The loop's future to settle if it waits for a chunk (the lock is held)."""
        waiter, self._waiter = self._waiter, None
        return waiter

    async def close(self) -> None:
        """End reading ahead for good, once the trip's chunk is read: a `take` waiting
        meanwhile returns ``b""``. Never raises."""
        self._closed = True
        with contextlib.suppress(Exception):
            await self.pause()

    async def pause(self) -> list[bytes]:
        """End the trip (after the chunk it reads) and wait for it; take the chunks it
        read. Cancelled, they stay for the next call."""
        with self._lock:
            self._paused = True
        if self._trip is not None:
            await asyncio.wait([self._trip])
        with self._lock:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._queued = 0
            if self._failure is not None and not chunks:
                failure, self._failure = self._failure, None
                raise failure
        return chunks


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
