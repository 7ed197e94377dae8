"""Streaming a put's body into its temp file while computing its ETag (SHA-256)."""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..._body import Body, BytesLike
from ..._models import DEFAULT_CHUNK_SIZE
from ._tempfile import TempFile

FILE_PIECE = 4 << 20
"""A file body is read in pieces of 4 MiB into reused buffers: larger system calls
and no allocation per piece (1 MiB pieces in fresh bytes objects ran at 0.88 of
SHA-256 alone, these at 0.99)."""
FILE_BUFFERS = 2
"""Two are enough while hashing is the slower side: the helper reads and writes one
while the other is hashed. 8 MiB per put, whatever its size."""


def write_body(temp: TempFile, body: Body, *, fsync: bool) -> str:
    """Write the body to `temp` (and fsync it if asked); return its hex SHA-256.

    Large bodies run in two threads, both of which release the GIL, so a put
    costs about the slower of the two rather than their sum. A file body is read
    and written by a helper through `FILE_BUFFERS` reused buffers of `FILE_PIECE`
    bytes while this thread hashes. Bytes and iterables are sliced or read on
    this thread (a generator may be tied to it), which hashes each chunk while a
    helper writes the one before. Raises whatever reading or writing raised.
    """
    digest = hashlib.sha256()
    if body.is_file:
        _write_file_body(body, temp, digest)
    else:
        _write_chunks(iter(body), temp, digest)
    if fsync:
        temp.sync()
    return digest.hexdigest()


def write_behind(temp: TempFile, pieces: Sequence[bytes]) -> Future[None]:
    """Start writing `pieces` to `temp` in a helper thread, so that the caller can hash
    them, and take in the next ones, meanwhile; the write, to wait for before the
    next one to `temp` and before publishing it."""
    return _WRITER.pool().submit(temp.write_pieces, pieces)


class _SharedWriter:
    """The helper threads of `write_behind`, shared by every put: a piece takes about a
    millisecond to write, and each put has at most one in writing. Made on first use,
    and made anew in a forked child (whose copy has no threads)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vs-write")
            return self._pool

    def forget(self) -> None:
        self._pool = None
        self._lock = threading.Lock()


_WRITER = _SharedWriter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WRITER.forget)


def _write_chunks(chunks: Iterator[BytesLike], temp: TempFile, digest: Any) -> None:
    """Small chunks are hashed and written here; from the first full one on, a
    helper writes each chunk while this thread hashes it."""
    for chunk in chunks:
        if len(chunk) < DEFAULT_CHUNK_SIZE:
            digest.update(chunk)
            temp.write(chunk)
            continue
        _hash_while_helper_writes(itertools.chain([chunk], chunks), temp, digest)
        return


def _hash_while_helper_writes(chunks: Iterator[BytesLike], temp: TempFile, digest: Any) -> None:
    """A helper thread writes each chunk while this one hashes it.

    A chunk that is not ``bytes`` may be a buffer the caller refills (a
    ``memoryview`` of a ``bytearray`` read into again): it is written in full
    before the next one is asked for. Immutable ``bytes`` may still be in
    writing while the caller makes the next chunk.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vs-write") as writer:
        written: Future[None] | None = None
        for item in chunks:
            if written is not None:
                written.result()
            written = writer.submit(temp.write, item)
            digest.update(item)
            if type(item) is not bytes:
                written.result()
                written = None
        if written is not None:
            written.result()


def _write_file_body(body: Body, temp: TempFile, digest: Any) -> None:
    """Fill a first buffer here; a body that fits is hashed and written here too.

    Otherwise a helper thread fills each buffer, hands it here, and writes it
    while this thread hashes it. This thread frees a buffer once hashed; the
    helper takes a free one only after its last write is done. So a buffer is
    never refilled while it is still being hashed or written.
    """
    size = FILE_PIECE if body.size < 0 else max(1, min(FILE_PIECE, body.size))
    first = memoryview(bytearray(size))
    filled = body.read_into(first)
    if filled < size or body.size == size:
        digest.update(first[:filled])
        temp.write(first[:filled])
        if filled == size:  # a body of exactly `size` bytes: still check there is no more
            body.read_into(first[:1])
        return
    free: queue.Queue[memoryview | None] = queue.Queue()
    for _ in range(FILE_BUFFERS - 1):
        free.put(memoryview(bytearray(FILE_PIECE)))
    handed: queue.Queue[tuple[memoryview, memoryview] | BaseException | None] = queue.Queue()

    def fill_and_write() -> None:
        try:
            buffer, view = first, first
            while True:
                handed.put((buffer, view))
                temp.write(view)
                next_buffer = free.get()
                if next_buffer is None:  # the hashing thread stopped
                    return
                buffer = next_buffer
                got = body.read_into(buffer)
                if got == 0:
                    break
                view = buffer[:got]
            handed.put(None)
        except BaseException as exc:  # handed to the hashing thread, which raises it
            handed.put(exc)

    helper = threading.Thread(target=fill_and_write, name="vs-read-write", daemon=True)
    helper.start()
    try:
        while (item := handed.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            buffer, view = item
            digest.update(view)
            free.put(buffer)
    finally:
        free.put(None)
        helper.join()
