"""An HTTP request's body as a binary file that any thread may read."""

from __future__ import annotations

import collections
import io
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
from anyio.lowlevel import EventLoopToken

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

AHEAD = 8 << 20
"""How many bytes `RequestBody.pump` may receive ahead of the reader: two of the
store's 4 MiB pieces, so the socket keeps draining while the reader writes one
(4 MiB gave PUT through serve 0.63 of store.put, 8 MiB 0.65 to 0.84)."""
FILL = AHEAD // 2
"""A read waits for up to this many bytes before it returns. Waking the reader
once per 4 MiB instead of once per message (about 256 KiB) took PUT through
serve from 0.63 to 0.66 of store.put in three A/B runs. It is at most half of
`AHEAD`, so the pump always wakes the reader before it stops for room."""


class UploadCancelledError(Exception):
    """The request ended (server shutdown, cancelled task) before its body was read."""


class RequestBody(io.RawIOBase):
    """The body of an ASGI request, read as a file from threads outside the event loop.

    `pump` runs in the event loop, beside the reader, and receives the body's
    messages ahead of it, up to `AHEAD` bytes, so the network keeps flowing while
    the reader is busy writing what it got. `read` and `readinto` block until
    they can fill what they were asked for (up to `FILL` bytes) or the body
    ends, so a reader wakes once per buffer, not once per message. They raise
    what `too_large` returns once more than `limit` bytes have arrived,
    whatever the stream raised (a client that disconnects), or
    `UploadCancelledError` if the pump was cancelled.
    """

    def __init__(
        self,
        stream: AsyncIterator[bytes],
        token: EventLoopToken,
        limit: int | None,
        too_large: Callable[[], Exception],
    ) -> None:
        super().__init__()
        self._stream = stream
        self._token = token
        self._limit = limit
        self._too_large = too_large
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._queued = 0
        self._wanted = 1  # how many queued bytes the waiting reader needs
        self._ended = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._space: anyio.Event | None = None  # set while the pump waits for the reader

    def readable(self) -> bool:
        return True

    async def pump(self) -> None:
        """Receive the body into the queue the readers take from; run it in the event loop.

        Never raises but cancellation: an error is kept for the reader.
        """
        received = 0
        error: BaseException | None = None
        try:
            async for chunk in self._stream:
                received += len(chunk)
                if self._limit is not None and received > self._limit:
                    raise self._too_large()
                if not chunk:
                    continue
                with self._changed:
                    self._chunks.append(memoryview(chunk))
                    self._queued += len(chunk)
                    if self._queued >= self._wanted:
                        self._changed.notify()
                    room = self._space = anyio.Event() if self._queued >= AHEAD else None
                if room is not None:
                    await room.wait()
        except Exception as exc:
            error = exc
        except BaseException:
            error = UploadCancelledError("the upload was cancelled before its body was read")
            raise
        finally:
            with self._changed:
                self._ended, self._error = True, error
                self._changed.notify_all()

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill `buffer` with the next bytes, waiting until there are enough for it
        (or `FILL`) or the body ends; 0 at the end."""
        view = memoryview(buffer).cast("B")
        filled = 0
        with self._changed:
            self._wanted = max(1, min(len(view), FILL))
            while self._queued < self._wanted and not self._ended:
                self._changed.wait()
            self._wanted = 1
            while self._chunks and filled < len(view):
                chunk = self._chunks[0]
                take = min(len(chunk), len(view) - filled)
                view[filled : filled + take] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._queued -= filled
            if filled == 0 and self._error is not None:
                raise self._error
            room = self._space if self._queued < AHEAD // 2 else None
            if room is not None:
                self._space = None
        if room is not None:  # the pump waits for room: wake it in its event loop
            anyio.from_thread.run_sync(room.set, token=self._token)
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left if negative); ``b""`` at the end."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        buffer = bytearray(size)
        del buffer[self.readinto(buffer) :]
        return bytes(buffer)
