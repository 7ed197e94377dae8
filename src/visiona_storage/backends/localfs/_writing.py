"""Streaming a put's body into its temp file while computing its ETag (SHA-256)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..._body import Body, BytesLike
from ..._models import DEFAULT_CHUNK_SIZE
from ._tempfile import TempFile


def write_body(temp: TempFile, body: Body, *, fsync: bool) -> str:
    """Write the body to `temp` (and fsync it if asked); return its hex SHA-256.

    Large bodies run in two threads, both of which release the GIL: the hash on
    this one, reading and writing on a helper, so a put costs about the slower
    of the two rather than their sum. At most four chunks are alive at a time.
    A generator is read on this thread (it may be tied to it); then the helper
    only writes. Raises whatever reading or writing raised.
    """
    digest = hashlib.sha256()
    chunks = iter(body)
    for chunk in chunks:
        if len(chunk) < DEFAULT_CHUNK_SIZE:
            digest.update(chunk)
            temp.write(chunk)
            continue
        rest = itertools.chain([chunk], chunks)
        if body.readable_from_any_thread:
            _hash_while_helper_reads_and_writes(rest, temp, digest)
        else:
            _hash_and_read_while_helper_writes(rest, temp, digest)
        break
    if fsync:
        temp.sync()
    return digest.hexdigest()


def _hash_and_read_while_helper_writes(chunks: Iterator[BytesLike], temp: TempFile, digest: Any) -> None:
    """A helper thread writes chunk N while this one reads and hashes chunk N+1."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vs-write") as writer:
        written: Future[None] | None = None
        for item in chunks:
            digest.update(item)
            if written is not None:
                written.result()
            written = writer.submit(temp.write, item)
        if written is not None:
            written.result()


_DONE = object()


def _hash_while_helper_reads_and_writes(chunks: Iterator[BytesLike], temp: TempFile, digest: Any) -> None:
    """A helper thread reads each chunk, queues it for hashing here, then writes it."""
    handed: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read_and_write() -> None:
        try:
            for item in chunks:
                if stop.is_set():
                    return
                handed.put(item)
                temp.write(item)
            handed.put(_DONE)
        except BaseException as exc:  # handed to the hashing thread, which raises it
            handed.put(exc)

    helper = threading.Thread(target=read_and_write, name="vs-read-write", daemon=True)
    helper.start()
    try:
        while (item := handed.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            digest.update(item)
    finally:
        stop.set()
        while helper.is_alive():  # unblock a helper waiting to hand over a chunk
            with contextlib.suppress(queue.Empty):
                handed.get(timeout=0.05)
        helper.join()
