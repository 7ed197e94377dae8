"""Changing local objects: a put streams into a temp file and is published under
the folder's lock with a sidecar naming it; a delete removes both. Whatever
instant a process dies at, every object's data matches its metadata."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import Future

from ..._arguments import check_precondition
from ..._body import Body
from ..._errors import KeyConflictError, NotFoundError, SizeMismatchError, StorageError
from ..._models import DEFAULT_CHUNK_SIZE, ObjectInfo
from ..._writer import PutWriter
from . import _sidecar as sidecar
from . import _tree as tree
from ._cleanup import is_our_sidecar
from ._common import MAX_ATTEMPTS, PutPlan, info_of, os_errors, split_key
from ._layout import SIDECAR_SUFFIX
from ._reading import Reading
from ._tempfile import TempFile
from ._writing import write_behind, write_body


class Committing(Reading):
    """`put`, the piece-by-piece writer the HTTP endpoint feeds, and `delete`."""

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
        # A small body is written in an instant: its commit reuses the folder's
        # descriptor. A large one may stream for minutes, so its commit walks the
        # path again (the folder may have been renamed or pruned meanwhile).
        small = 0 <= body.size < DEFAULT_CHUNK_SIZE
        with os_errors(key, "store"):
            temp, dir_fd = self._begin_put(key, if_match, if_none_match, keep_folder=small)
            try:
                etag = write_body(temp, body, fsync=self.fsync)
                opened, dir_fd = dir_fd, None
                put = PutPlan(key, metadata, content_type, if_match, if_none_match)
                return self._finish_put(put, temp, etag, opened=opened)
            finally:
                temp.discard()
                if dir_fd is not None:
                    os.close(dir_fd)

    def _open_writer(
        self,
        key: str,
        size: int,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> _LocalWriter:
        with os_errors(key, "store"):
            temp, _ = self._begin_put(key, if_match, if_none_match, keep_folder=False)
        return _LocalWriter(self, PutPlan(key, metadata, content_type, if_match, if_none_match), size, temp)

    def _begin_put(
        self, key: str, if_match: str | None, if_none_match: str | None, *, keep_folder: bool
    ) -> tuple[TempFile, int | None]:
        """The temp file a put writes into, in the key's folder (made if missing),
        and that folder's descriptor if `keep_folder`. Checks the slot and the
        conditions first, to fail before streaming; the checks that count are made
        again at commit. Raises ``OSError`` and the errors of `_check_slot` and
        `_check_condition`."""
        folder, name = split_key(key)
        for _ in range(MAX_ATTEMPTS):
            dir_fd = tree.open_folder(self._root_fd, folder, create=True, key=key)
            assert dir_fd is not None
            try:
                found = self._check_slot(dir_fd, name, key)
                if if_match is not None or if_none_match is not None:
                    self._check_condition(dir_fd, name, key, if_match, if_none_match, found=found)
                temp = TempFile(dir_fd, durable=self.fsync, on_full=self._reclaimer.made_room)
            except OSError:
                # An object put at the folder's own name removes the folder while it
                # is still empty: walk again (and meet that object).
                vanished = tree.is_removed(dir_fd)
                os.close(dir_fd)
                if vanished:
                    continue
                raise
            except BaseException:
                os.close(dir_fd)
                raise
            if keep_folder:
                return temp, dir_fd
            os.close(dir_fd)
            return temp, None
        raise StorageError(f"the folder of {key!r} keeps disappearing", key)

    def _finish_put(self, put: PutPlan, temp: TempFile, etag: str, *, opened: int | None) -> ObjectInfo:
        """Publish the written `temp` at the put's key (see `_commit`, which takes
        over `opened`); what `stat` now returns."""
        st = temp.stat()
        version = sidecar.Version(sidecar.FileIdentity.of(st), etag, put.content_type, put.metadata)
        self._commit(put.key, temp, version, put.if_match, put.if_none_match, opened=opened)
        return info_of(put.key, version, st)

    def _commit(
        self,
        key: str,
        temp: TempFile,
        version: sidecar.Version,
        if_match: str | None,
        if_none_match: str | None,
        *,
        opened: int | None = None,
    ) -> None:
        """Publish `temp` at `key`, under the folder's lock.

        The key's path is walked again here unless the caller passes the folder it
        `opened` an instant ago (this takes it over and closes it): a folder renamed
        or swapped for a symlink while a body streamed must not carry the object
        off, and one removed meanwhile (pruned by a delete) is made again.
        """
        folder, name = split_key(key)
        for _ in range(MAX_ATTEMPTS):
            if opened is not None:
                dir_fd, opened = opened, None
            else:
                walked = tree.open_folder(self._root_fd, folder, create=True, key=key)
                assert walked is not None
                dir_fd = walked
            try:
                with tree.folder_lock(dir_fd):
                    old = self._check_slot(dir_fd, name, key, clear_empty_folder=True)
                    current = self._check_condition(dir_fd, name, key, if_match, if_none_match, found=old)
                    versions = [version] + ([current] if current is not None else [])
                    self._write_sidecar(dir_fd, name, versions)
                    held = self._reclaimer.hold(dir_fd, name, old)
                    try:
                        temp.publish(dir_fd, name)
                        if self.fsync:
                            tree.fsync_folder(dir_fd)
                    finally:  # the replaced file's blocks are freed in the background
                        self._reclaimer.release(held)
                    return
            except tree.FolderVanishedError:
                continue
            finally:
                os.close(dir_fd)
        raise StorageError(f"the folder of {key!r} keeps disappearing", key)

    def _check_slot(
        self, dir_fd: int, name: str, key: str, *, clear_empty_folder: bool = False
    ) -> os.stat_result | None:
        """Raise unless `name` is free or a regular file (an empty folder is removed
        if `clear_empty_folder`); that file's ``lstat``, or None."""
        st = tree.lstat(dir_fd, name)
        if st is None or stat.S_ISREG(st.st_mode):
            return st
        if stat.S_ISLNK(st.st_mode):
            raise tree.symlink_error(key, key)
        if stat.S_ISDIR(st.st_mode):
            if clear_empty_folder:
                if tree.remove_if_empty(dir_fd, name):
                    return None
            elif not _has_entries(dir_fd, name):
                return None
            raise KeyConflictError(
                f"cannot store {key!r}: objects exist under {key + '/'!r}, and on a "
                f"filesystem a folder cannot also be an object",
                key,
            )
        raise StorageError(f"{key!r} is not a regular file", key)

    def _check_condition(
        self,
        dir_fd: int,
        name: str,
        key: str,
        if_match: str | None,
        if_none_match: str | None,
        *,
        found: os.stat_result | None,
    ) -> sidecar.Version | None:
        """Check the put's condition against the object in place, whose ``lstat``
        `_check_slot` just `found` (None: no object); return its version.

        An object whose sidecar is unreadable can be overwritten, but matches no ETag.
        """
        current: sidecar.Version | None = None
        exists = found is not None
        if found is not None:
            try:
                current = self._version(dir_fd, name, key, found)[0]
            except NotFoundError:
                exists = False
            except sidecar.CorruptSidecarError:
                pass  # exists, at no ETag
        etag = current.etag if current is not None else None
        check_precondition(key, etag, if_match, if_none_match, exists=exists)
        return current

    # delete

    def _delete(self, key: str) -> None:
        folder, name = split_key(key)
        with os_errors(key, "delete"):
            dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=key)
            if dir_fd is None:
                return
            try:
                with tree.folder_lock(dir_fd):
                    st = tree.lstat(dir_fd, name)
                    if st is not None and stat.S_ISLNK(st.st_mode):
                        raise tree.symlink_error(key, key)
                    held = self._reclaimer.hold(dir_fd, name, st)
                    try:
                        if st is not None and stat.S_ISREG(st.st_mode):
                            tree.unlink(dir_fd, name)
                            tree.unlink(dir_fd, name + SIDECAR_SUFFIX)
                        elif is_our_sidecar(dir_fd, name + SIDECAR_SUFFIX):  # a crashed delete's
                            tree.unlink(dir_fd, name + SIDECAR_SUFFIX)
                        if self.fsync:
                            tree.fsync_folder(dir_fd)
                    finally:  # its blocks are freed in the background
                        self._reclaimer.release(held)
            except tree.FolderVanishedError:
                return
            finally:
                os.close(dir_fd)
            tree.prune_empty_folders(self._root_fd, folder, key)


class _LocalWriter(PutWriter):
    """A put of a local store fed piece by piece: each piece is hashed and written
    to the temp file as it comes; `commit` publishes it as `put` does."""

    def __init__(self, store: Committing, put: PutPlan, size: int, temp: TempFile) -> None:
        self._store = store
        self._put = put
        self._key = put.key
        self._size = size
        self._temp: TempFile | None = temp
        self._digest = hashlib.sha256()
        self._written = 0
        self._writing: Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.write_pieces([data])

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        temp = self._open_temp()
        length = sum(len(piece) for piece in pieces)
        if 0 <= self._size < self._written + length:
            raise self._mismatch(f"more than {self._size}")
        # They are still being written after this returns: only bytes stay as they are.
        pieces = [piece if type(piece) is bytes else bytes(piece) for piece in pieces]
        with os_errors(self._key, "store"):
            self._wait_for_writing()
            self._writing = write_behind(temp, pieces)
            for piece in pieces:
                self._digest.update(piece)
        self._written += length

    def _wait_for_writing(self) -> None:
        """Wait for the piece being written (raising its error, if any)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def commit(self) -> ObjectInfo:
        temp = self._open_temp()
        try:
            if 0 <= self._size != self._written:
                raise self._mismatch(self._written)
            with os_errors(self._key, "store"):
                self._wait_for_writing()
                if temp.durable:
                    temp.sync()
                return self._store._finish_put(self._put, temp, self._digest.hexdigest(), opened=None)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(Exception):  # the put is dropped whatever its write did
                self._wait_for_writing()
            self._temp.discard()
            self._temp = None

    def _open_temp(self) -> TempFile:
        if self._temp is None:
            raise StorageError(f"the put of {self._key!r} is over", self._key)
        return self._temp

    def _mismatch(self, actual: int | str) -> SizeMismatchError:
        return SizeMismatchError(
            f"data for {self._key!r} is {actual} bytes, not the declared {self._size}; nothing was stored",
            self._key,
        )


def _has_entries(dir_fd: int, name: str) -> bool:
    try:
        fd = os.open(name, tree.DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return True
    try:
        with os.scandir(fd) as scan:
            return any(True for _ in scan)
    finally:
        os.close(fd)
