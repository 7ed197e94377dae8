"""The data of a `put`, as a stream of chunks checked against its declared size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, TypeAlias

from ._errors import InvalidArgumentError, SizeMismatchError
from ._models import DEFAULT_CHUNK_SIZE

BytesLike: TypeAlias = bytes | bytearray | memoryview
PutData: TypeAlias = BytesLike | IO[bytes] | Iterable[BytesLike]
"""What `Store.put` accepts: bytes, a binary file object, or an iterable of bytes."""


class Body:
    """The data of one `put`, read once as chunks of at most `chunk_size` bytes.

    Iterating raises `SizeMismatchError` as soon as the data proves longer than
    the declared size, or at its end if it was shorter; a backend that stops on
    that error stores nothing. `size` is the declared size, or -1 if unknown;
    for bytes it is always their length.
    """

    def __init__(self, data: PutData, size: int, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.key = key
        self.chunk_size = chunk_size
        self._bytes: memoryview | None = None
        self._file: IO[bytes] | None = None
        self._iterable: Iterable[BytesLike] | None = None
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")
            if size not in (-1, len(view)):
                raise self._mismatch(size, len(view))
            self._bytes = view
            size = len(view)
        elif isinstance(data, str):
            raise InvalidArgumentError("data must be bytes, not str: encode it first", key)
        elif callable(getattr(data, "read", None)):
            self._file = data  # type: ignore[assignment]
        elif isinstance(data, Iterable):
            self._iterable = data
        else:
            raise InvalidArgumentError(
                f"data must be bytes, a binary file object or an iterable of bytes, "
                f"not {type(data).__name__}",
                key,
            )
        self.size = size

    @property
    def readable_from_any_thread(self) -> bool:
        """True for bytes and file objects, which a helper thread may read; an
        iterable may be a generator tied to the caller's thread."""
        return self._iterable is None

    def __iter__(self) -> Iterator[BytesLike]:
        if self._bytes is not None:
            return self._iter_bytes(self._bytes)
        if self._file is not None:
            return self._iter_file(self._file)
        assert self._iterable is not None
        return self._iter_chunks(self._iterable)

    def _iter_bytes(self, view: memoryview) -> Iterator[BytesLike]:
        for offset in range(0, len(view), self.chunk_size):
            yield view[offset : offset + self.chunk_size]

    def _iter_file(self, file: IO[bytes]) -> Iterator[BytesLike]:
        total = 0
        while self.size < 0 or total < self.size:
            want = self.chunk_size if self.size < 0 else min(self.chunk_size, self.size - total)
            chunk = self._check_chunk(file.read(want))
            if not chunk:
                break
            total += len(chunk)
            yield chunk
        if self.size >= 0:
            if total < self.size:
                raise self._mismatch(self.size, total)
            if file.read(1):
                raise self._mismatch(self.size, f"more than {self.size}")

    def _iter_chunks(self, chunks: Iterable[BytesLike]) -> Iterator[BytesLike]:
        total = 0
        for item in chunks:
            chunk = self._check_chunk(item)
            total += len(chunk)
            if 0 <= self.size < total:
                raise self._mismatch(self.size, f"more than {self.size}")
            if chunk:
                yield chunk
        if 0 <= self.size != total:
            raise self._mismatch(self.size, total)

    def _check_chunk(self, chunk: object) -> BytesLike:
        if isinstance(chunk, memoryview):
            return chunk.cast("B")
        if isinstance(chunk, (bytes, bytearray)):
            return chunk
        raise InvalidArgumentError(
            f"data must yield bytes, not {type(chunk).__name__} (is the file open in binary mode?)",
            self.key,
        )

    def _mismatch(self, declared: int, actual: int | str) -> SizeMismatchError:
        return SizeMismatchError(
            f"data for {self.key!r} is {actual} bytes, not the declared {declared}; nothing was stored",
            self.key,
        )
