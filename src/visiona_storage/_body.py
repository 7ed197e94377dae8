"""The data of a `put`, as a stream of chunks checked against its declared size."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import IO, TypeAlias

from ._errors import (
    ChecksumMismatchError,
    DataReadError,
    InvalidArgumentError,
    SizeMismatchError,
    StorageError,
)
from ._models import DEFAULT_CHUNK_SIZE

BytesLike: TypeAlias = bytes | bytearray | memoryview
PutData: TypeAlias = BytesLike | IO[bytes] | Iterable[BytesLike]
"""What `Store.put` accepts: bytes, a binary file object, or an iterable of bytes."""


class Body:
    """The data of one `put`, read once as chunks of at most `chunk_size` bytes.

    Iterating raises `SizeMismatchError` as soon as the data proves longer than
    the declared size, or at its end if it was shorter, and `DataReadError` if
    reading the data raised an ``OSError``; a backend that stops on either error
    stores nothing. `size` is the declared size, or -1 if unknown; for bytes it
    is always their length.

    With `sha256` (lowercase hex) declared, the data is hashed as it is read, and
    the read that finds its end raises `ChecksumMismatchError` instead if the
    data hashed to anything else: a backend sees the error before it could
    publish the object.
    """

    def __init__(
        self,
        data: PutData,
        size: int,
        key: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        sha256: str | None = None,
    ) -> None:
        self.key = key
        self.chunk_size = chunk_size
        self.sha256 = sha256
        """The SHA-256 the data was declared to have, or None."""
        self._digest = hashlib.sha256() if sha256 is not None else None
        self._bytes: memoryview | None = None
        self._file: IO[bytes] | None = None
        self._iterable: Iterable[BytesLike] | None = None
        self._filled = 0  # bytes `read_into` has read so far
        self._can_readinto = True
        self._reading = ReadingData(key)
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = flat(memoryview(data))
            if size not in (-1, len(view)):
                raise self._mismatch(size, len(view))
            self._bytes = view
            size = len(view)
            self._hash(view)
            self._check_digest()
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
    def is_file(self) -> bool:
        """True for a file object: then `read_into` may be used instead of iterating."""
        return self._file is not None

    def read_into(self, buffer: memoryview) -> int:
        """Fill `buffer` with the next bytes of a file body, or with what is left of
        it; return how many (0 at the end).

        Uses the file's ``readinto`` where it has one, else ``read`` and a copy.
        Raises `SizeMismatchError` and `DataReadError` as iterating does, and
        `InvalidArgumentError` for a file that does not return bytes.
        """
        filled = 0
        with self._reading:
            while filled < len(buffer) and (got := self._read_some(buffer[filled:])):
                filled += got
        return filled

    def _read_some(self, buffer: memoryview) -> int:
        """One read into `buffer` (0 at the end, after checking the declared size)."""
        file = self._file
        assert file is not None, "read_into is for file bodies"
        want = len(buffer) if self.size < 0 else min(len(buffer), self.size - self._filled)
        got = self._read_raw(file, buffer[:want]) if want else 0
        if got == 0:
            if self.size >= 0:
                if self._filled < self.size:
                    raise self._mismatch(self.size, self._filled)
                if file.read(1):
                    raise self._mismatch(self.size, f"more than {self.size}")
            self._check_digest()
        self._filled += got
        self._hash(buffer[:got])
        return got

    def _read_raw(self, file: IO[bytes], view: memoryview) -> int:
        if self._can_readinto:
            try:
                got = file.readinto(view)  # type: ignore[attr-defined]
            except (AttributeError, NotImplementedError, io.UnsupportedOperation):
                self._can_readinto = False  # io.RawIOBase's default, or no readinto at all
            else:
                if not isinstance(got, int) or not 0 <= got <= len(view):
                    raise InvalidArgumentError(f"the file's readinto returned {got!r}", self.key)
                return got
        chunk = self._check_chunk(file.read(len(view)))
        if len(chunk) > len(view):
            raise InvalidArgumentError(
                f"the file's read returned more than the {len(view)} bytes asked", self.key
            )
        view[: len(chunk)] = chunk
        return len(chunk)

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
        with self._reading:
            while self.size < 0 or total < self.size:
                want = self.chunk_size if self.size < 0 else min(self.chunk_size, self.size - total)
                chunk = self._check_chunk(file.read(want))
                if not chunk:
                    break
                total += len(chunk)
                self._hash(chunk)
                yield chunk
            if self.size >= 0:
                if total < self.size:
                    raise self._mismatch(self.size, total)
                if file.read(1):
                    raise self._mismatch(self.size, f"more than {self.size}")
            self._check_digest()

    def _iter_chunks(self, chunks: Iterable[BytesLike]) -> Iterator[BytesLike]:
        total = 0
        with self._reading:
            for item in chunks:
                chunk = self._check_chunk(item)
                total += len(chunk)
                if 0 <= self.size < total:
                    raise self._mismatch(self.size, f"more than {self.size}")
                if chunk:
                    self._hash(chunk)
                    yield chunk
            if 0 <= self.size != total:
                raise self._mismatch(self.size, total)
            self._check_digest()

    def _hash(self, data: BytesLike) -> None:
        if self._digest is not None:
            self._digest.update(data)

    def _check_digest(self) -> None:
        """At the data's end: `ChecksumMismatchError` unless it hashed to `sha256`."""
        if self._digest is not None and (actual := self._digest.hexdigest()) != self.sha256:
            raise ChecksumMismatchError(
                f"data for {self.key!r} has SHA-256 {actual}, not the declared {self.sha256}; "
                f"nothing was stored",
                self.key,
            )

    def _check_chunk(self, chunk: object) -> BytesLike:
        return check_chunk(chunk, self.key)

    def _mismatch(self, declared: int, actual: int | str) -> SizeMismatchError:
        return size_mismatch(self.key, declared, actual)


def flat(view: memoryview) -> memoryview:
    """`view` as one run of bytes: cast to bytes if contiguous, else copied (a
    strided view, ``memoryview(b"abcdef")[::2]``, holds ``b"ace"``)."""
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


def check_chunk(chunk: object, key: str) -> BytesLike:
    """`chunk` as a flat bytes-like object; `InvalidArgumentError` if it is not one."""
    if isinstance(chunk, memoryview):
        return flat(chunk)
    if isinstance(chunk, (bytes, bytearray)):
        return chunk
    raise InvalidArgumentError(
        f"data must yield bytes, not {type(chunk).__name__} (is the file open in binary mode?)", key
    )


def size_mismatch(key: str, declared: int, actual: int | str) -> SizeMismatchError:
    """The error for data of `actual` bytes where `declared` were promised."""
    return SizeMismatchError(
        f"data for {key!r} is {actual} bytes, not the declared {declared}; nothing was stored", key
    )


class ReadingData:
    """``with`` it around reads of the caller's data: an ``OSError`` they raise
    becomes a `DataReadError` (a raw ``OSError`` never reaches the caller, and is
    not mistaken for the backend's own). Errors of this package pass unchanged.

    A class rather than a generator context manager: it wraps every read.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise DataReadError(
                f"cannot read the data for {self.key!r}: {exc.strerror or exc}; nothing was stored",
                self.key,
                exc,
            ) from exc
