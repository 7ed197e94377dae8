"""`SyncState`: what `sync` verified about listed versions, kept between runs.

A row says: in the store named `Store.identity`, the version of `key` listed with
this ETag, size and Last-Modified has this SHA-256, content type and metadata, as
`sync` itself established (from the store's recorded SHA-256, by hashing the
bytes, or because the copy it verified put them there). One row per store and
key: a newer verified version replaces it, a `sync` delete removes it.

A re-run that finds both sides of a key listed exactly as recorded, with the same
SHA-256, content type and metadata, skips the key without a request. Any other
listing misses and `sync` proves the pair as it would without the cache.
Last-Modified is compared to the microsecond, or to the second where either time
is a whole second: S3 lists it in milliseconds but HEAD says it in seconds.

The cache is an SQLite file in WAL mode (busy timeout 5 s), written in batches of
`BATCH` rows. It never fails a sync: the first problem with it (unreadable,
corrupt, locked, read-only folder) logs one warning line on the
``visiona_storage.sync`` logger and the run goes on without it.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import json
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import NamedTuple

from ._models import ObjectInfo
from ._store import Store

log = logging.getLogger("visiona_storage.sync")

BATCH = 500
"""Rows written per transaction."""
BUSY_TIMEOUT_MS = 5000
SCHEMA_VERSION = 1
SECOND = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verified (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified INTEGER NOT NULL,  -- microseconds since the epoch
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID
"""
_LOOKUP = (
    "SELECT etag, size, modified, sha256, content_type, metadata FROM verified WHERE store = ? AND key = ?"
)
_RECORD = "INSERT OR REPLACE INTO verified VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_FORGET = "DELETE FROM verified WHERE store = ? AND key = ?"


class Verified(NamedTuple):
    """What `sync` verified about one listed version."""

    sha256: str
    content_type: str
    metadata: str
    """The metadata as JSON with sorted keys: equal strings, equal metadata."""


def default_path() -> Path:
    """``$XDG_CACHE_HOME/visiona-storage/sync.sqlite``, or under ``~/.cache`` where
    ``XDG_CACHE_HOME`` is unset or not an absolute path."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "visiona-storage" / "sync.sqlite"


def open_state(state: bool | str | os.PathLike[str]) -> SyncState | None:
    """The cache `state` asks for: True the default file, False none (None), else the
    file at that path. Never raises: a file that cannot be opened logs one warning
    and gives None."""
    if state is False:
        return None
    try:
        path = default_path() if state is True else Path(os.fspath(state))
    except RuntimeError as exc:  # no home folder to find ~/.cache in
        _warn(Path("~/.cache/visiona-storage/sync.sqlite"), exc)
        return None
    try:
        return SyncState(path)
    except (sqlite3.Error, OSError) as exc:
        _warn(path, exc)
        return None


def usable(store: Store) -> str | None:
    """The name under which `store`'s versions are cached, or None if they are not:
    a store without an `identity`, whose listings lack real details, or whose
    listings carry all the cache would (`Store.lists_metadata`: its own listing,
    which tells versions apart as the store does, is the proof)."""
    if store.lists_metadata or not store.lists_details:
        return None
    return store.identity


def as_listed(listed: ObjectInfo) -> Verified:
    """What a listing that carries them says of a version (`Store.lists_metadata`)."""
    assert listed.sha256 is not None
    return Verified(listed.sha256, listed.content_type, _json(listed.metadata))


class SyncState:
    """An open cache file; safe to share between threads. Raises `sqlite3.Error` or
    `OSError` from the constructor only; afterwards, the first error disables it
    (one warning) and lookups miss."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: list[tuple[str, str, str, int, int, str, str, str]] = []
        self._forgets: list[tuple[str, str]] = []
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder of the path should be
            raise NotADirectoryError(errno.ENOTDIR, f"{path.parent} is not a folder") from None
        _check_private(path.parent, os.stat(path.parent), folder=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            _check_private(path, os.fstat(fd))
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm", "-journal"):  # SQLite's own files beside it
            with contextlib.suppress(FileNotFoundError):
                _check_private(Path(f"{path}{suffix}"), os.lstat(f"{path}{suffix}"))
        db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, not {SCHEMA_VERSION}")
            if version == 0:  # a new file: the only write before the first batch
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self._db: sqlite3.Connection | None = db

    def verified(self, store: Store, listed: ObjectInfo) -> Verified | None:
        """What was verified about the version `listed` of `store`, or None if that
        exact version (ETag, size, Last-Modified) has no row."""
        name = usable(store)
        if name is None:
            return None
        with self._lock:
            if self._db is None:
                return None
            try:
                row = self._db.execute(_LOOKUP, (name, listed.key)).fetchone()
            except sqlite3.Error as exc:
                self._disable(exc)
                return None
        if row is None or (row[0], row[1]) != (listed.etag, listed.size) or not _same_time(row[2], listed):
            return None
        return Verified(row[3], row[4], row[5])

    def record(self, store: Store, info: ObjectInfo, sha256: str) -> None:
        """Note that the version `info` of `store` (as `stat` or a read reports it:
        content type and metadata included) holds bytes of SHA-256 `sha256`."""
        name = usable(store)
        if name is None:
            return
        row = (
            name,
            info.key,
            info.etag,
            info.size,
            _micros(info),
            sha256,
            info.content_type,
            _json(info.metadata),
        )
        with self._lock:
            if self._db is not None:
                self._records.append(row)
                if len(self._records) >= BATCH:
                    self._flush()

    def forget(self, store: Store, key: str) -> None:
        """Drop the row of `key` in `store` (deleted)."""
        name = usable(store)
        if name is None:
            return
        with self._lock:
            if self._db is not None:
                self._forgets.append((name, key))
                if len(self._forgets) >= BATCH:
                    self._flush()

    def close(self) -> None:
        """Write what is pending and close the file."""
        with self._lock:
            if self._db is None:
                return
            self._flush()
            if self._db is not None:
                self._db.close()
                self._db = None

    def _flush(self) -> None:
        assert self._db is not None
        records, self._records = self._records, []
        forgets, self._forgets = self._forgets, []
        if not records and not forgets:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_RECORD, records)
                self._db.executemany(_FORGET, forgets)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._disable(exc)

    def _disable(self, exc: sqlite3.Error) -> None:
        """Stop using the file after its first error (the lock is held)."""
        _warn(self.path, exc)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._records.clear()
        self._forgets.clear()


def _check_private(path: Path, st: os.stat_result, *, folder: bool = False) -> None:
    """Raise `PermissionError` unless only this user (or root) can change `path`:
    rows another user could write would make `sync` skip what it must copy. A
    folder writable by others passes only with its sticky bit (``/tmp``), which
    keeps them from replacing this user's files."""
    kind = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
    if not kind:
        raise PermissionError(errno.EPERM, f"{path} is not a {'folder' if folder else 'regular file'}")
    if st.st_uid not in (os.geteuid(), 0):
        raise PermissionError(errno.EPERM, f"{path} belongs to another user")
    if st.st_mode & 0o022 and not (folder and st.st_mode & stat.S_ISVTX):
        raise PermissionError(errno.EPERM, f"{path} can be written by other users")


def _json(metadata: dict[str, str]) -> str:
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)


def _micros(info: ObjectInfo) -> int:
    """`last_modified` in microseconds since the epoch."""
    when = info.last_modified
    return calendar.timegm(when.utctimetuple()) * SECOND + when.microsecond


def _same_time(recorded: int, listed: ObjectInfo) -> bool:
    """Equal to the microsecond, or to the second where either is a whole second
    (an S3 listing says milliseconds, its HEAD seconds, of the same version)."""
    micros = _micros(listed)
    if recorded % SECOND and micros % SECOND:
        return recorded == micros
    return recorded // SECOND == micros // SECOND


def reason(exc: BaseException) -> str:
    """Why a state file cannot be used, in a few words."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _warn(path: Path, exc: BaseException) -> None:
    log.warning("visiona-storage: sync state %s unusable (%s); syncing without it", path, reason(exc))
