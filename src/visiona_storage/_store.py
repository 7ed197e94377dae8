"""`Store`: the one interface calling code uses, with S3 semantics.

Public methods validate every argument once (keys, metadata, ranges, sizes,
TTLs), then call the backend's hook (`_put`, `_get`, ...). A backend therefore
never sees an invalid key and implements only the hooks; each hook's docstring
states the errors it must raise.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import ClassVar, NamedTuple, Self

from . import _arguments as args
from ._body import Body, PutData
from ._content_types import guess_content_type
from ._errors import NotFoundError, StorageError, UnsupportedError
from ._keys import check_foreign_key, check_key, check_prefix, prefix_can_match
from ._models import ObjectInfo, ObjectReader
from ._signing import URLSigner
from ._writer import PutWriter, ThreadedPutWriter, VerifyingPutWriter

DEFAULT_TTL = timedelta(minutes=15)


class Store(abc.ABC):
    """An object store with S3 semantics; backends subclass it.

    Instances are safe to share between threads. Use as a context manager, or
    call `close` when done.
    """

    _closed: bool = False

    reads_foreign_keys: ClassVar[bool] = False
    """True where the backend's service may hold objects at keys that break the key
    rules, written by other clients (``a//b``, ``folder/``, ``x.meta.json`` on S3):
    `list` yields them, and `get`, `stat`, `delete` and `presigned_get_url` take
    them, so that no object is out of reach. Writes always keep the rules."""

    lists_details: ClassVar[bool] = False
    """True where every `list` entry carries the listed version's real `etag`,
    `size` and `last_modified` (to the second), as `stat` would report them at that
    moment. `sync` keys its state cache on those three, so a backend that lists
    placeholders must leave this False (the default), and `sync` then proves every
    listed pair as if there were no cache."""

    lists_metadata: ClassVar[bool] = False
    """True where every `list` entry also carries the listed version's real
    `content_type`, `metadata` and `sha256` (or None where the store records no
    SHA-256), as `stat` would report them at that moment. `sync` then compares
    such entries as listed, with no stat and no state cache: the store's own
    listing is the proof. Leave False (the default) where a listing leaves any
    of them out."""

    @property
    def identity(self) -> str | None:
        """A name for the objects this store reaches, the same in every process that
        opens the same place (``localfs:/srv/data``, ``s3:https://host/bucket``), or
        None (the default): `sync` records what it verified under this name, and
        does not cache what a store without one holds."""
        return None

    def put(
        self,
        key: str,
        data: PutData,
        size: int = -1,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """Store `data` at `key`, replacing any object there, and return what `stat` would.

        `data` is bytes, a binary file object (read in chunks) or an iterable of
        bytes; `size` is its length, or -1 if unknown. `content_type` defaults to
        a guess from the key's extension. With ``if_none_match="*"`` the put only
        creates; with ``if_match=etag`` it only replaces that version. With
        `sha256` (hex), the data must hash to it or nothing is stored, and the
        store records it where it can (`ObjectInfo.sha256`).

        Raises `InvalidKeyError`, `InvalidArgumentError` (bad metadata, content
        type or size), `SizeMismatchError` (data not of `size` bytes),
        `ChecksumMismatchError` (data not of `sha256`),
        `PreconditionFailedError`, `KeyConflictError`, `StorageFullError`, or
        `StorageError`; on any error nothing is stored and the previous version
        is intact.
        """
        self._check_open()
        put = _PutArguments.check(
            key,
            size,
            metadata=metadata,
            content_type=content_type,
            if_match=if_match,
            if_none_match=if_none_match,
        )
        body = Body(data, put.size, put.key, sha256=args.check_sha256(sha256, put.key))
        return self._put(
            put.key,
            body,
            put.metadata,
            put.content_type,
            if_match=put.if_match,
            if_none_match=put.if_none_match,
        )

    def get(self, key: str, start: int = 0, end: int | None = None) -> ObjectReader:
        """Open the object at `key` for reading, bytes ``[start, end)`` like a slice.

        An `end` past the object is clamped; a `start` at or past its end reads
        nothing. The reader's `info` describes the whole object. Raises
        `NotFoundError`, `InvalidKeyError`, `InvalidArgumentError` or `StorageError`.
        """
        self._check_open()
        key = self._key_to_read(key)
        start, end = args.check_range(start, end, key)
        return self._get(key, start, end)

    def get_nowait(self, key: str, start: int = 0, end: int | None = None) -> ObjectReader | None:
        """`get`, if the backend can open the object without waiting on a network or
        on hashing a large file (memory; a local file the store has a version of);
        else None, and the caller calls `get`, off its event loop if it has one.

        Made for event loops: an async server answers small local reads on its loop
        and pays a hop to a worker thread only when it must. Raises as `get` does.
        """
        self._check_open()
        key = self._key_to_read(key)
        start, end = args.check_range(start, end, key)
        return self._get_nowait(key, start, end)

    def stat(self, key: str) -> ObjectInfo:
        """Return the `ObjectInfo` of `key` without reading its data.

        Raises `NotFoundError`, `InvalidKeyError` or `StorageError`.
        """
        self._check_open()
        return self._stat(self._key_to_read(key))

    def delete(self, key: str) -> None:
        """Delete the object at `key`; deleting a missing key is not an error.

        Raises `InvalidKeyError` or `StorageError`.
        """
        self._check_open()
        self._delete(self._key_to_read(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Iterate lazily over the objects whose key starts with `prefix`.

        Keys come in ascending UTF-8 byte order, as S3 lists them. `key`, `size`,
        `etag` and `last_modified` are always set; `content_type` and `metadata`
        may be empty. Raises `InvalidKeyError` for a prefix that is not text.
        """
        self._check_open()
        if not prefix_can_match(check_prefix(prefix), foreign=self.reads_foreign_keys):
            return iter(())
        return self._list(prefix)

    def presigned_get_url(self, key: str, ttl: timedelta | int | float = DEFAULT_TTL) -> str:
        """Return a URL that lets anyone holding it GET `key` for `ttl` (at most 7 days).

        Raises `InvalidKeyError`, `InvalidArgumentError`, `UnsupportedError`.
        """
        self._check_open()
        key = self._key_to_read(key)
        return self._presigned_url("GET", key, args.check_ttl(ttl, key), None, None)

    def presigned_put_url(
        self,
        key: str,
        ttl: timedelta | int | float = DEFAULT_TTL,
        content_type: str | None = None,
        *,
        max_size: int | None = None,
    ) -> str:
        """Return a URL that lets anyone holding it PUT `key` for `ttl` (at most 7 days).

        The upload must carry `content_type` (default: the guess from the key) and,
        where the backend supports it, be at most `max_size` bytes (0 or more). Raises
        `InvalidKeyError`, `InvalidArgumentError`, `UnsupportedError`.
        """
        self._check_open()
        key = check_key(key)
        content_type = args.check_content_type(content_type, key) or guess_content_type(key)
        if max_size is not None:
            max_size = args.check_max_size(max_size, key)
        return self._presigned_url("PUT", key, args.check_ttl(ttl, key), content_type, max_size)

    def close(self) -> None:
        """Release the backend's resources; further calls raise `StorageError`."""
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        """True once `close` has been called."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _key_to_read(self, key: object) -> str:
        return check_foreign_key(key) if self.reads_foreign_keys else check_key(key)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{type(self).__name__} is closed")

    # Backend hooks: arguments arrive validated.

    @abc.abstractmethod
    def _put(
        self,
        key: str,
        body: Body,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> ObjectInfo:
        """Store the body atomically. Must raise `SizeMismatchError` and
        `ChecksumMismatchError` (from `body`; `body.sha256` is the declared hash),
        `PreconditionFailedError`, `KeyConflictError`, `StorageFullError` or
        `StorageError`, storing nothing. An exception raised by the caller's data
        propagates unchanged, also storing nothing."""

    @abc.abstractmethod
    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        """Open a reader of ``[start, min(end, size))``. Must raise `NotFoundError`."""

    def _open_writer(
        self,
        key: str,
        size: int,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> PutWriter:
        """Start a put whose body will be pushed in pieces (arguments validated, as for
        `_put`). The default checks the condition against `_stat` at once, then runs
        `_put` in a thread of its own, which checks it again; a backend that can
        take pieces directly returns its own writer. Raises what `_put` raises
        about the key and conditions, before any data."""
        if if_match is not None or if_none_match is not None:
            try:
                current: str | None = self._stat(key).etag
            except NotFoundError:
                current = None
            args.check_precondition(key, current, if_match, if_none_match, exists=current is not None)

        def put(chunks: Iterator[bytes]) -> ObjectInfo:
            body = Body(chunks, size, key)
            return self._put(
                key, body, metadata, content_type, if_match=if_match, if_none_match=if_none_match
            )

        return ThreadedPutWriter(put)

    def _get_nowait(self, key: str, start: int, end: int | None) -> ObjectReader | None:
        """`_get` if it needs no waiting on a network or on hashing; else None (the
        default: a backend opts in)."""
        return None

    @abc.abstractmethod
    def _stat(self, key: str) -> ObjectInfo:
        """Must raise `NotFoundError` for a missing key."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Delete if present; a missing key is not an error."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield objects under `prefix` in ascending UTF-8 byte order of keys. The
        prefix is text that some valid key could start with."""

    def _presigned_url(
        self, method: str, key: str, ttl_seconds: int, content_type: str | None, max_size: int | None
    ) -> str:
        """Return a presigned URL for `method` ("GET" or "PUT"). Must raise
        `UnsupportedError` if the backend cannot presign."""
        raise UnsupportedError(f"{type(self).__name__} cannot make presigned URLs", key)

    @property
    def url_signer(self) -> URLSigner | None:
        """The signer that verifies this store's presigned URLs where the HTTP
        endpoint (`visiona_storage.http.create_app`) serves them; None (the default)
        where the backend's own service verifies them, as S3 does."""
        return None

    def _close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release resources; called once."""


def start_put(
    store: Store,
    key: str,
    size: int = -1,
    metadata: Mapping[str, str] | None = None,
    content_type: str | None = None,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    sha256: str | None = None,
) -> PutWriter:
    """A `PutWriter` for a put of `key` whose data the caller pushes in pieces, with
    the arguments of `Store.put` and the same validation (a declared `sha256` is
    checked at `commit`). Raises what `Store.put` raises about its arguments, and
    may raise `PreconditionFailedError` or `KeyConflictError` at once."""
    store._check_open()
    put = _PutArguments.check(
        key,
        size,
        metadata=metadata,
        content_type=content_type,
        if_match=if_match,
        if_none_match=if_none_match,
    )
    sha256 = args.check_sha256(sha256, put.key)
    writer = store._open_writer(
        put.key,
        put.size,
        put.metadata,
        put.content_type,
        if_match=put.if_match,
        if_none_match=put.if_none_match,
    )
    return writer if sha256 is None else VerifyingPutWriter(writer, sha256, put.key)


class _PutArguments(NamedTuple):
    key: str
    size: int
    metadata: dict[str, str]
    content_type: str
    if_match: str | None
    if_none_match: str | None

    @classmethod
    def check(
        cls,
        key: str,
        size: int,
        *,
        metadata: Mapping[str, str] | None,
        content_type: str | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> _PutArguments:
        """The arguments of a put, validated once for every backend."""
        key = check_key(key)
        clean_metadata = args.check_metadata(metadata, key)
        content_type = args.check_content_type(content_type, key) or guess_content_type(key)
        size = args.check_size(size, key)
        if_match, if_none_match = args.check_conditions(if_match, if_none_match, key)
        return cls(key, size, clean_metadata, content_type, if_match, if_none_match)
