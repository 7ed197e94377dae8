"""A put whose body is handed over piece by piece as it arrives (push), not read by
the store (pull): what a server receiving an upload needs, so that an upload that
stalls holds no thread and only the piece it is filling.

A backend that can take pieces directly (localfs) makes its own `PutWriter`;
any other gets a `ThreadedPutWriter`, which runs its ordinary `put` in a thread
of its own fed with the pieces.
"""

from __future__ import annotations

import abc
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

from ._errors import ChecksumMismatchError, StorageError
from ._models import ObjectInfo


class PutWriter(abc.ABC):
    """One put in progress: `write` its data in order, then `commit` or `abort`.

    Nothing is visible at the key until `commit` returns. Every method blocks (on
    the disk, the network or hashing): an event loop calls them in a worker
    thread, one call at a time.
    """

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append `data` to the object being written (a writer may go on reading it
        after this returns: anything but ``bytes`` is copied first). Raises
        `SizeMismatchError` once more than its declared size arrives,
        `StorageFullError` or `StorageError`; after an error, only `abort` may
        follow."""

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        """`write` each of `pieces` in order, as one call (a server hands over the
        chunks it received this way, unjoined). The default joins them; a writer
        that can write them as they are overrides it. Raises what `write` raises."""
        self.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    @abc.abstractmethod
    def commit(self) -> ObjectInfo:
        """Publish the object and return what `stat` would. Raises
        `SizeMismatchError` if fewer bytes than declared were written,
        `PreconditionFailedError`, `KeyConflictError` or `StorageError`, storing
        nothing."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Give up: nothing is stored and the previous version stays. Never raises;
        does nothing after `commit`."""


_END = object()
_ABORT = object()


class _AbortedError(Exception):
    """Raised inside the put of an aborted `ThreadedPutWriter`, so it stores nothing."""


class ThreadedPutWriter(PutWriter):
    """A `PutWriter` over a store's own pull-based `put`, which runs in a thread of its
    own and reads the pieces from a queue of one: `write` returns once its piece is
    queued, at most one piece behind the put. The put's thread lives as long as the
    put does, a stalled upload's included (the local backend writes pieces directly
    instead); `abort` ends it."""

    def __init__(self, put: Callable[[Iterator[bytes]], ObjectInfo]) -> None:
        self._pieces: queue.Queue[object] = queue.Queue(maxsize=1)
        self._outcome: ObjectInfo | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(put,), name="vs-put", daemon=True)
        self._thread.start()

    def _run(self, put: Callable[[Iterator[bytes]], ObjectInfo]) -> None:
        try:
            self._outcome = put(self._chunks())
        except BaseException as exc:  # handed to commit, which raises it
            self._outcome = exc

    def _chunks(self) -> Iterator[bytes]:
        while True:
            piece = self._pieces.get()
            if piece is _END:
                return
            if piece is _ABORT:
                raise _AbortedError
            if isinstance(piece, list):
                yield from piece
            else:
                assert isinstance(piece, bytes)
                yield piece

    def write(self, data: bytes) -> None:
        if type(data) is not bytes:
            data = bytes(data)  # the put may read it after this returns
        self._hand_over(data)

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        # the put may read them after this returns
        self._hand_over([piece if type(piece) is bytes else bytes(piece) for piece in pieces])

    def _hand_over(self, piece: bytes | list[bytes]) -> None:
        while self._thread.is_alive():
            try:
                self._pieces.put(piece, timeout=0.1)
                return
            except queue.Full:
                continue
        self._raise_outcome()

    def commit(self) -> ObjectInfo:
        self._hand(_END)
        return self._raise_outcome()

    def abort(self) -> None:
        self._hand(_ABORT)

    def _hand(self, last: object) -> None:
        while self._thread.is_alive():
            try:
                self._pieces.put(last, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _raise_outcome(self) -> ObjectInfo:
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, ObjectInfo):
            return outcome
        if isinstance(outcome, BaseException):
            raise outcome
        raise StorageError("the put ended without a result")


class VerifyingPutWriter(PutWriter):
    """A `PutWriter` that hashes what passes through it and commits only data whose
    SHA-256 is `sha256`; any other is aborted at `commit`, which raises
    `ChecksumMismatchError` having stored nothing."""

    def __init__(self, writer: PutWriter, sha256: str, key: str) -> None:
        self._writer = writer
        self._sha256 = sha256
        self._key = key
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._writer.write(data)

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        for piece in pieces:
            self._digest.update(piece)
        self._writer.write_pieces(pieces)

    def commit(self) -> ObjectInfo:
        actual = self._digest.hexdigest()
        if actual != self._sha256:
            self._writer.abort()
            raise ChecksumMismatchError(
                f"data for {self._key!r} has SHA-256 {actual}, not the declared {self._sha256}; "
                f"nothing was stored",
                self._key,
            )
        return self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()
