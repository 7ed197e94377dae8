"""The records a `Store` hands out: `ObjectInfo` and the `ObjectReader` of a `get`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ._errors import StorageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

DEFAULT_CHUNK_SIZE = 1 << 20
"""Chunk size for streaming reads and writes: 1 MiB."""


@dataclass(frozen=True, kw_only=True)
class ObjectInfo:
    """What a store knows about one object.

    `etag` carries no quotes and is opaque: it changes when the content changes.
    `last_modified` is timezone-aware UTC. In `Store.list` results,
    `content_type` may be ``""`` and `metadata` empty (S3 listings carry neither).
    `sha256` is the hex SHA-256 of the content where the store knows it without
    reading the data (localfs and memory always; S3 when the object was written
    with it recorded, and not in listings), else ``None``.
    """

    key: str
    size: int
    content_type: str
    last_modified: datetime
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)
    sha256: str | None = None


def object_info(
    *,
    key: str,
    size: int,
    content_type: str,
    last_modified: datetime,
    etag: str,
    metadata: dict[str, str],
    sha256: str | None = None,
) -> ObjectInfo:
    """The same `ObjectInfo` as the constructor makes, at a third of its cost.

    A frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; a local store builds one per stat and per listed
    key, so this fills the instance's ``__dict__`` directly. The instance is as
    frozen as any other (``__setattr__`` is the class's).
    """
    info = _new_object(ObjectInfo)
    fields = info.__dict__
    fields["key"] = key
    fields["size"] = size
    fields["content_type"] = content_type
    fields["last_modified"] = last_modified
    fields["etag"] = etag
    fields["metadata"] = metadata
    fields["sha256"] = sha256
    return info


_new_object = object.__new__


class ObjectReader(io.RawIOBase):
    """A binary, read-only, forward-only file object over an object's bytes.

    `info` describes the whole object, even when only a range is read. Reading
    past the range returns ``b""``. Close it (or use ``with``) to free the
    backend's handle. A backend subclasses it and implements `_read`, and
    `_readinto` / `_release` where it can do better than the defaults.
    """

    def __init__(self, info: ObjectInfo, length: int) -> None:
        super().__init__()
        self._info = info
        self._remaining = length

    @property
    def info(self) -> ObjectInfo:
        """The `ObjectInfo` of the object being read (the whole object)."""
        return self._info

    @property
    def remaining(self) -> int:
        """How many bytes of the range are left to read."""
        return self._remaining

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to `size` bytes (all that is left if `size` is negative or None)."""
        self._check_open()
        if size is None or size < 0:
            return self.readall()
        size = min(size, self._remaining)
        if size == 0:
            return b""
        data = self._read(size)
        self._consumed(len(data))
        return data

    def readall(self) -> bytes:
        """Read everything that is left of the range."""
        parts = []
        while self._remaining > 0:
            parts.append(self.read(min(self._remaining, 8 * DEFAULT_CHUNK_SIZE)))
        return b"".join(parts)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into `buffer`; return the number of bytes read (0 at the end)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        size = min(len(view), self._remaining)
        if size == 0:
            return 0
        count = self._readinto(view[:size])
        self._consumed(count)
        return count

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the rest of the range in chunks of at most `chunk_size` bytes."""
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if not self.closed:
            try:
                self._release()
            finally:
                super().close()

    def _consumed(self, count: int) -> None:
        if count == 0:
            raise StorageError(
                f"object {self._info.key!r} ended {self._remaining} bytes early while being read",
                self._info.key,
            )
        self._remaining -= count

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed object reader")

    # Backend hooks.

    def _read(self, size: int) -> bytes:
        """Return 1 to `size` bytes; ``b""`` only if the object ended early."""
        raise NotImplementedError

    def _readinto(self, view: memoryview) -> int:
        data = self._read(len(view))
        view[: len(data)] = data
        return len(data)

    def _release(self) -> None:
        """Free the backend's handle; called once by `close`."""
