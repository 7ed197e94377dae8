"""An HTTP request's body as a binary file that any thread may read."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable

import anyio.from_thread
from anyio.lowlevel import EventLoopToken


class RequestBody(io.RawIOBase):
    """The body of an ASGI request, read as a file from threads outside the event loop.

    Each `read` enters the event loop once, with the loop's token (so any thread
    may call it, not only anyio's workers), and gathers the ASGI messages (often
    64 KiB each) until it has the bytes asked for or the body ends. Raises what
    `too_large` returns once more than `limit` bytes have arrived, and whatever
    the stream raises (a client that disconnects).
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
        self._left = b""
        self._received = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left if negative); ``b""`` at the end."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        if len(self._left) < size and not self._ended:
            self._left += anyio.from_thread.run(self._gather, size - len(self._left), token=self._token)
        data, self._left = self._left[:size], self._left[size:]
        return data

    async def _gather(self, wanted: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < wanted:
            try:
                part = await self._stream.__anext__()
            except StopAsyncIteration:
                self._ended = True
                break
            parts.append(part)
            got += len(part)
        self._received += got
        if self._limit is not None and self._received > self._limit:
            raise self._too_large()
        return parts[0] if len(parts) == 1 else b"".join(parts)
