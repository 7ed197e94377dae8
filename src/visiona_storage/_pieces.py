"""Gathering a stream of chunks (a request body, an async iterable) into the pieces
handed to a `PutWriter`, without joining large chunks and without keeping tiny
ones apart."""

from __future__ import annotations

from ._body import BytesLike

SMALL_CHUNK = 64 << 10
"""Chunks below this size are copied into one buffer: a stream of 1-byte chunks
then takes about its own size in memory, not fifty times that in bytes objects."""


class PieceGatherer:
    """Chunks in, in order; pieces of at least `size` bytes out, as lists of bytes.

    A chunk of `SMALL_CHUNK` bytes or more is kept as it is (a ``bytes`` chunk is
    not copied; anything else is, since its source may refill it); smaller ones
    are copied together into one buffer.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[bytes] = []
        self._small = bytearray()
        self.filled = 0
        """Bytes gathered and not yet taken."""

    def add(self, chunk: BytesLike) -> list[bytes] | None:
        """Gather `chunk`; return a piece once `size` bytes are gathered, else None."""
        if len(chunk) < SMALL_CHUNK:
            self._small += chunk
        else:
            self._keep_small()
            self._parts.append(chunk if type(chunk) is bytes else bytes(chunk))
        self.filled += len(chunk)
        return self.take() if self.filled >= self.size else None

    def take(self) -> list[bytes]:
        """What is gathered so far (an empty list if nothing), as one piece."""
        self._keep_small()
        parts, self._parts, self.filled = self._parts, [], 0
        return parts

    def _keep_small(self) -> None:
        if self._small:
            self._parts.append(bytes(self._small))
            self._small.clear()
