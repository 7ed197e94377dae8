"""`sync`: make a destination store hold what a source store holds under a prefix.

Both listings are walked together in key order (each store lists in ascending
UTF-8 byte order), so memory does not grow with the number of objects. For each
key:

- only at the source: copied, created only if the destination still has nothing
  there (``if_none_match="*"``);
- at both: skipped only if both hold provably the same bytes (equal SHA-256, from
  what each store records or, failing that, from reading and hashing the object)
  with the same content type and metadata; else copied, replacing only the version
  that was listed (``if_match``). A pair whose two listed versions are known to
  hold equal SHA-256, content type and metadata is skipped without a request:
  known from the listing itself where the store lists them
  (`Store.lists_metadata`), else from the state cache (`_sync_state`), which
  holds what this proof (or a verified copy) established before;
- only at the destination, with ``delete=True``: deleted, if it is still the
  version that was listed.

Every copy is verified: the destination is handed the source's SHA-256 and stores
nothing unless the bytes it read hash to it, and a destination that reports the
hash of what it stored must report the same one. A source object whose store
records no SHA-256 is read twice: once to hash it, once to copy it.

Copies run in parallel threads, at most `LARGE_COPIES` of them over `LARGE` bytes,
so memory stays bounded whatever the objects' number and size.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from ._errors import (
    ChecksumMismatchError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedError,
)
from ._keys import check_key, check_prefix
from ._models import ObjectInfo
from ._store import Store
from ._sync_state import SyncState, Verified, as_listed, open_state

DEFAULT_WORKERS = 8
LARGE = 8 << 20
"""Objects over this many bytes count as large: each copy may hold several parts."""
LARGE_COPIES = 2
"""The most large objects copied at once."""

Action = Literal["copy", "skip", "delete", "fail"]


@dataclass(frozen=True)
class SyncEvent:
    """One key's outcome, as `sync` reports it to its `progress` callback.

    `action` is what was done, or with ``dry_run`` what would be: ``"copy"``,
    ``"skip"``, ``"delete"`` or ``"fail"`` (then `error` says why). `size` is the
    bytes copied (0 for the others).
    """

    action: Action
    key: str
    size: int = 0
    error: str = ""


@dataclass
class SyncReport:
    """What a `sync` did (or, with `dry_run`, would do)."""

    copied: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    bytes_copied: int = 0
    failures: list[SyncEvent] = field(default_factory=list)
    """One ``"fail"`` event per key that failed, in the order they failed."""
    dry_run: bool = False
    skipped_as_listed: int = 0
    """Of `skipped`, the keys skipped on the two listings alone, without a request
    per key: each side's listing carried its SHA-256, content type and metadata
    (`Store.lists_metadata`), or the state cache knew the listed version."""

    @property
    def ok(self) -> bool:
        """True if no key failed."""
        return self.failed == 0

    def _add(self, event: SyncEvent) -> None:
        if event.action == "copy":
            self.copied += 1
            self.bytes_copied += event.size
        elif event.action == "skip":
            self.skipped += 1
        elif event.action == "delete":
            self.deleted += 1
        else:
            self.failed += 1
            self.failures.append(event)


def sync(
    src: Store,
    dst: Store,
    prefix: str = "",
    *,
    delete: bool = False,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    progress: Callable[[SyncEvent], None] | None = None,
    state: bool | str | os.PathLike[str] = True,
) -> SyncReport:
    """Copy to `dst` every object of `src` under `prefix` that `dst` does not hold
    byte for byte (with its content type and metadata); with `delete`, delete the
    objects under `prefix` that only `dst` has. With `dry_run` nothing is written;
    the report says what would be.

    A key that fails (a destination that refuses the key, an object changed at the
    destination during the sync, a read or write error) is counted in `failed` and
    the others go on; `progress` is called once per key, from worker threads (or,
    for a key skipped on the state cache, the calling thread), one call at a time.
    Raises `InvalidKeyError` for a bad prefix and `StorageError` if either listing
    fails (copies started before it finish; nothing past it is deleted).

    `state` is the state cache: True (the default) the file
    ``$XDG_CACHE_HOME/visiona-storage/sync.sqlite``, a path another file, False
    none. It records the SHA-256, content type and metadata that this proof
    established for each listed version (ETag, size, Last-Modified) of a store
    with an `identity` and `lists_details` whose listing lacks them (S3); a key
    whose two listed versions are both known to agree is skipped without reading
    or stat-ing either. A cache that cannot be used logs one warning line and the
    sync goes on without it.

    Raises `InvalidArgumentError`, before anything is done, if `src` and `dst` are
    the same store or one's `identity` lies inside the other's (a localfs root
    within the other's): the destination would list the source's own objects.
    """
    check_prefix(prefix)
    _check_apart(src, dst)
    cache = open_state(state)
    run = _SyncRun(src, dst, delete=delete, dry_run=dry_run, progress=progress, state=cache)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vs-sync") as pool:
            waiting = threading.BoundedSemaphore(2 * max(1, workers))
            large = threading.BoundedSemaphore(LARGE_COPIES)
            try:
                for source, target in _pairs(src.list(prefix), dst.list(prefix)):
                    if source is None and not delete:
                        continue
                    if run.skip_as_listed(source, target):
                        continue
                    waiting.acquire()
                    gate = large if source is not None and source.size > LARGE else None
                    task = pool.submit(run.settle, source, target, gate)
                    task.add_done_callback(lambda _: waiting.release())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        if cache is not None:
            cache.close()
    return run.report


def _check_apart(src: Store, dst: Store) -> None:
    """Raise `InvalidArgumentError` if `src` and `dst` are one store or nest."""
    if src is dst:
        raise InvalidArgumentError("sync needs two stores: the source and the destination are one")
    check_identities_apart(src.identity, dst.identity)


def check_identities_apart(a: str | None, b: str | None) -> None:
    """Raise `InvalidArgumentError` if the stores of identities `a` and `b` (see
    `Store.identity`; None: unknown) are one store or nest."""
    if a is None or b is None:
        return
    if a == b:
        raise InvalidArgumentError(f"the source and the destination are one store ({a})")
    if b.startswith(a.rstrip("/") + "/") or a.startswith(b.rstrip("/") + "/"):
        raise InvalidArgumentError(
            f"the source ({a}) and the destination ({b}) overlap: each would list the "
            f"other's objects as its own; sync between stores apart"
        )


def _pairs(
    source: Iterator[ObjectInfo], target: Iterator[ObjectInfo]
) -> Iterator[tuple[ObjectInfo | None, ObjectInfo | None]]:
    """The two listings side by side: (source's, destination's) for each key, None
    where a side has no object. Both come in ascending key order (for valid keys,
    code-point order is UTF-8 byte order)."""
    s = next(source, None)
    t = next(target, None)
    while s is not None or t is not None:
        if t is None or (s is not None and s.key < t.key):
            yield s, None
            s = next(source, None)
        elif s is None or t.key < s.key:
            yield None, t
            t = next(target, None)
        else:
            yield s, t
            s = next(source, None)
            t = next(target, None)


class _SyncRun:
    """One `sync`: the decision and the work for each key, and the report."""

    def __init__(
        self,
        src: Store,
        dst: Store,
        *,
        delete: bool,
        dry_run: bool,
        progress: Callable[[SyncEvent], None] | None,
        state: SyncState | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.state = state
        self.delete = delete
        self.dry_run = dry_run
        self.progress = progress
        self.report = SyncReport(dry_run=dry_run)
        self._lock = threading.Lock()
        self._unconditional_from: int | None = None
        """The smallest size at which `dst` refused a conditional put (`UnsupportedError`);
        from there on the condition is checked just before an unconditional put."""

    def skip_as_listed(self, source: ObjectInfo | None, target: ObjectInfo | None) -> bool:
        """Report the pair skipped and return True if both listed versions are known
        to hold the same SHA-256, content type and metadata (`_known`)."""
        if source is None or target is None or source.size != target.size:
            return False
        known = self._known(self.src, source)
        if known is None or known != self._known(self.dst, target):
            return False
        with self._lock:
            self.report.skipped_as_listed += 1
        self._report(SyncEvent("skip", source.key))
        return True

    def _known(self, store: Store, listed: ObjectInfo) -> Verified | None:
        """The SHA-256, content type and metadata of the version `listed`: from the
        listing where the store lists them, else from the state cache, else None."""
        if store.lists_metadata and listed.sha256 is not None:
            return as_listed(listed)
        return None if self.state is None else self.state.verified(store, listed)

    def settle(
        self, source: ObjectInfo | None, target: ObjectInfo | None, gate: threading.BoundedSemaphore | None
    ) -> None:
        """Bring one key in line and report its outcome; never raises."""
        listed = source if source is not None else target
        assert listed is not None
        key = listed.key
        try:
            if gate is None:
                event = self._settle(source, target)
            else:
                with gate:
                    event = self._settle(source, target)
        except PreconditionFailedError:
            event = SyncEvent("fail", key, error="changed at the destination during the sync; left as it is")
        except ChecksumMismatchError:
            event = SyncEvent("fail", key, error="changed at the source during the sync; nothing copied")
        except StorageError as exc:
            event = SyncEvent("fail", key, error=str(exc))
        except Exception as exc:  # a key's failure must not end the others
            event = SyncEvent("fail", key, error=f"{type(exc).__name__}: {exc}")
        self._report(event)

    def _report(self, event: SyncEvent) -> None:
        with self._lock:
            self.report._add(event)
            if self.progress is not None:
                self.progress(event)

    def _settle(self, source: ObjectInfo | None, target: ObjectInfo | None) -> SyncEvent:
        if source is None:
            assert target is not None
            return self._delete(target)
        if target is None:
            return self._copy(source, None, None)
        if source.size == target.size:
            # A listing may leave out content type, metadata and SHA-256.
            full_source = self.src.stat(source.key)
            full_target = self.dst.stat(target.key)
            sha256, hashed_source = _sha256_of(self.src, full_source)
            target_sha256, hashed_target = _sha256_of(self.dst, full_target)
            self._record(self.src, hashed_source, sha256)
            self._record(self.dst, hashed_target, target_sha256)
            if (
                full_source.content_type == full_target.content_type
                and full_source.metadata == full_target.metadata
                and sha256 == target_sha256
            ):
                return SyncEvent("skip", source.key)
            return self._copy(full_source, target, sha256)
        return self._copy(source, target, None)

    def _copy(self, source: ObjectInfo, target: ObjectInfo | None, sha256: str | None) -> SyncEvent:
        """Copy `source` over `target` (the destination's listed version, or None)."""
        if self.dry_run:
            check_key(source.key)  # a key another client wrote may break the rules puts keep
            return SyncEvent("copy", source.key, source.size)
        sha256 = sha256 or source.sha256 or _sha256_of(self.src, source)[0]
        condition = {"if_match": target.etag} if target is not None else {"if_none_match": "*"}
        checked_first = self._unconditional_from is not None and source.size >= self._unconditional_from
        if not checked_first:
            try:
                return self._put(source.key, sha256, condition)
            except UnsupportedError:
                with self._lock:
                    if self._unconditional_from is None or source.size < self._unconditional_from:
                        self._unconditional_from = source.size
        self._check_unchanged(source.key, target)
        return self._put(source.key, sha256, {})

    def _put(self, key: str, sha256: str, condition: dict[str, str]) -> SyncEvent:
        with self.src.get(key) as reader:
            info = reader.info
            if info.sha256 is not None and info.sha256 != sha256:
                raise ChecksumMismatchError(f"{key!r} changed at the source", key)
            stored = self.dst.put(
                key,
                reader,
                size=info.size,
                metadata=info.metadata,
                content_type=info.content_type,
                sha256=sha256,
                **condition,
            )
        if stored.sha256 is not None and stored.sha256 != sha256:
            raise StorageError(
                f"the destination reports SHA-256 {stored.sha256} for {key!r}, not {sha256}", key
            )
        # The destination stored only bytes of `sha256`, so they are what was read.
        self._record(self.src, info, sha256)
        if stored.sha256 is not None:  # else `stored` may describe a version we did not see
            self._record(self.dst, stored, sha256)
        return SyncEvent("copy", key, stored.size)

    def _record(self, store: Store, info: ObjectInfo, sha256: str) -> None:
        if self.state is not None:
            self.state.record(store, info, sha256)

    def _check_unchanged(self, key: str, target: ObjectInfo | None) -> None:
        """Raise `PreconditionFailedError` unless the destination still holds what was
        listed at `key` (`target`, or nothing): the check a destination that cannot
        enforce a conditional put gets instead, just before the put."""
        try:
            current: str | None = self.dst.stat(key).etag
        except NotFoundError:
            current = None
        if current != (target.etag if target is not None else None):
            raise PreconditionFailedError(f"{key!r} changed at the destination", key)

    def _delete(self, target: ObjectInfo) -> SyncEvent:
        if self.dry_run:
            return SyncEvent("delete", target.key)
        self._check_unchanged(target.key, target)
        self.dst.delete(target.key)
        if self.state is not None:
            self.state.forget(self.dst, target.key)
        return SyncEvent("delete", target.key)


def _sha256_of(store: Store, info: ObjectInfo) -> tuple[str, ObjectInfo]:
    """The object's SHA-256 and the version it is of: as the store records it for
    `info`, else by reading the object through (the version read)."""
    if info.sha256 is not None:
        return info.sha256, info
    digest = hashlib.sha256()
    with store.get(info.key) as reader:
        for chunk in reader.iter_chunks():
            digest.update(chunk)
        read = reader.info
    return digest.hexdigest(), read
