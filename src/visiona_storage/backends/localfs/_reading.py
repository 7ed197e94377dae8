"""Reading a local object: `get` and `stat`, the fast path that trusts a sidecar
naming the very file opened, and the careful path that retries while writers
commit and hashes a file put under the root by hand (once, recording it)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat

from ..._content_types import guess_content_type
from ..._errors import NotFoundError, StorageError
from ..._models import DEFAULT_CHUNK_SIZE, ObjectInfo, ObjectReader
from . import _sidecar as sidecar
from . import _tree as tree
from ._common import MAX_ATTEMPTS, LocalRoot, describe, info_of, os_errors, split_key
from ._layout import SIDECAR_SUFFIX
from ._linux import open_beneath

log = logging.getLogger("visiona_storage.localfs")

SIDECAR_READ = 65536
"""One read takes any sidecar the store writes whole."""


class Reading(LocalRoot):
    """`get`, `stat` and the version lookups that commits and listings share."""

    def _get(self, key: str, start: int, end: int | None, *, hash_foreign: bool = True) -> ObjectReader:
        """The common get opens the data file and its sidecar with `open_beneath` (no
        symlink, nowhere outside the root) and trusts them as `_stat` does: the
        sidecar must name the very file opened. Anything else goes `_get_carefully`."""
        fd = open_beneath(self._root_fd, key, tree.FILE_FLAGS)
        if fd is not None:
            try:
                info = self._trusted_open(key, fd)
            except BaseException:
                os.close(fd)
                raise
            if info is not None:
                return _reader(info, fd, start, end)
            os.close(fd)
        return self._get_carefully(key, start, end, hash_foreign=hash_foreign)

    def _trusted_open(self, key: str, fd: int) -> ObjectInfo | None:
        """`_trusted_info` for the data file open at `fd` (left open)."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        sidecar_fd = open_beneath(self._root_fd, key + SIDECAR_SUFFIX, tree.FILE_FLAGS)
        return None if sidecar_fd is None else self._trusted_info(key, st, sidecar_fd)

    def _get_nowait(self, key: str, start: int, end: int | None) -> ObjectReader | None:
        """`_get`, unless the object is a file with no version of the store's yet (put
        under the root by hand): hashing it may take seconds, so None."""
        try:
            return self._get(key, start, end, hash_foreign=False)
        except _WouldHashError:
            return None

    def _get_carefully(
        self, key: str, start: int, end: int | None, *, hash_foreign: bool = True
    ) -> ObjectReader:
        folder, name = split_key(key)
        with os_errors(key, "read"):
            dir_fd = self._folder(folder, key)
            try:
                fd, version, st = self._open(dir_fd, name, key, hash_foreign=hash_foreign)
            finally:
                os.close(dir_fd)
            return _reader(info_of(key, version, st), fd, start, end)

    def _stat(self, key: str) -> ObjectInfo:
        """The common stat in four system calls; anything unusual goes `_stat_carefully`.

        The sidecar is opened with `open_beneath` (no symlink, nowhere outside the
        root). The data file is ``lstat``ed by path, which the kernel resolves
        through any symlinked folder, so its answer counts only if it is the very
        inode (device, inode number, size and mtime) that sidecar names. Anything
        else (no sidecar, a foreign file, a symlink, a change in between, an
        unreadable sidecar) goes the careful way, which also raises the right error.
        """
        try:
            st = os.stat(key, dir_fd=self._root_fd, follow_symlinks=False)
        except OSError:
            return self._stat_carefully(key)
        fd = open_beneath(self._root_fd, key + SIDECAR_SUFFIX, tree.FILE_FLAGS)
        if fd is None:
            return self._stat_carefully(key)
        info = self._trusted_info(key, st, fd)
        return self._stat_carefully(key) if info is None else info

    def _trusted_info(self, key: str, st: os.stat_result, sidecar_fd: int) -> ObjectInfo | None:
        """The `ObjectInfo` of the data file whose stat is `st` (its ``lstat``, or
        the ``fstat`` of it opened), if the sidecar open at `sidecar_fd` (closed
        here) is one this store wrote and names that very file: a regular file on
        the root's device. None otherwise, and then the caller goes the careful
        way, which raises the right error if any.
        """
        try:
            raw = os.read(sidecar_fd, SIDECAR_READ)
        except OSError:
            return None
        finally:
            os.close(sidecar_fd)
        if len(raw) == SIDECAR_READ or st.st_dev != self._root_dev or not stat.S_ISREG(st.st_mode):
            return None
        try:
            entry = sidecar.find_written(raw, st)
        except sidecar.CorruptSidecarError:
            return None
        if entry is None:
            return None
        return describe(key, st, entry["etag"], entry["content_type"], entry["metadata"])

    def _stat_carefully(self, key: str) -> ObjectInfo:
        folder, name = split_key(key)
        with os_errors(key, "stat"):
            dir_fd = self._folder(folder, key)
            try:
                version, st = self._version(dir_fd, name, key)
            finally:
                os.close(dir_fd)
        return info_of(key, version, st)

    def _folder(self, folder: str, key: str) -> int:
        dir_fd = tree.open_folder(self._root_fd, folder, create=False, key=key)
        if dir_fd is None:
            raise NotFoundError(f"no object at key {key!r}", key)
        return dir_fd

    def _open(
        self, dir_fd: int, name: str, key: str, *, hash_foreign: bool = True
    ) -> tuple[int, sidecar.Version, os.stat_result]:
        """Open the data file and find the version that describes exactly that file."""
        fd, version, st = self._locate(dir_fd, name, key, keep_open=True, hash_foreign=hash_foreign)
        assert fd is not None
        return fd, version, st

    def _version(
        self, dir_fd: int, name: str, key: str, known: os.stat_result | None = None
    ) -> tuple[sidecar.Version, os.stat_result]:
        """Like `_open`, without opening the data unless it has no version (a foreign file).
        `known` is the data file's ``lstat`` if the caller has just taken it."""
        _, version, st = self._locate(dir_fd, name, key, keep_open=False, known=known)
        return version, st

    def _locate(
        self,
        dir_fd: int,
        name: str,
        key: str,
        *,
        keep_open: bool,
        hash_foreign: bool = True,
        known: os.stat_result | None = None,
    ) -> tuple[int | None, sidecar.Version, os.stat_result]:
        """The version that describes exactly the data file at `name`, and that file's
        stat, looked up again while a writer commits in between. With `keep_open`, the
        data file open (else None).

        A file with no version of the store's (put there by hand) is opened and
        hashed, and the version found is recorded in its sidecar, so that it is
        hashed once; unless not `hash_foreign`: then this raises `_WouldHashError`.
        """
        opening = keep_open
        # Compared between attempts: which data file and which sidecar (never access times).
        seen: tuple[object, ...] | None = None
        for _ in range(MAX_ATTEMPTS):
            fd = self._open_data(dir_fd, name, key) if opening else None
            try:
                found = os.fstat(fd) if fd is not None else known or tree.lstat(dir_fd, name)
                st, known = _check_is_file(found, key), None
                raw = self._read_sidecar(dir_fd, name, key)
                version = sidecar.find(raw, st) if raw is not None else None
                state = (st.st_ino, st.st_size, st.st_mtime_ns, raw)
                foreign = version is None and (raw is None or seen == state)
                if foreign and fd is not None:
                    if not hash_foreign:
                        raise _WouldHashError
                    version = _adopt(fd, st, key)
                    self._record(dir_fd, name, st, raw, version)
                if version is not None:
                    if fd is not None and not keep_open:
                        os.close(fd)
                        fd = None
                    return fd, version, st
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            if fd is not None:
                os.close(fd)
            opening = opening or foreign  # hashing a file put there by hand needs it open
            seen = state  # else a writer committed meanwhile; look again
        raise StorageError(f"object {key!r} keeps changing while being read", key)

    def _record(
        self, dir_fd: int, name: str, st: os.stat_result, raw: bytes | None, version: sidecar.Version
    ) -> None:
        """Keep the `version` found for a file put there by hand in its sidecar, if the
        file and the sidecar are still as they were read (under the folder lock, so
        no commit runs in between). A store that cannot write (a read-only root)
        simply hashes the file again next time."""
        try:
            with tree.folder_lock(dir_fd):
                now = tree.lstat(dir_fd, name)
                if now is None or sidecar.FileIdentity.of(now) != version.file or now.st_dev != st.st_dev:
                    return
                if self._read_sidecar(dir_fd, name, name) != raw:
                    return
                self._write_sidecar(dir_fd, name, [version])
        except (OSError, StorageError, tree.FolderVanishedError) as exc:
            log.debug("could not record the version of %r: %s", name, exc)

    def _open_data(self, dir_fd: int, name: str, key: str) -> int:
        try:
            return os.open(name, tree.FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise NotFoundError(f"no object at key {key!r}", key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise tree.symlink_error(key, key) from None
            raise

    def _read_sidecar(self, dir_fd: int, name: str, key: str) -> bytes | None:
        """The bytes of the sidecar; None if there is none."""
        try:
            fd = os.open(name + SIDECAR_SUFFIX, tree.FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise tree.symlink_error(key, key + SIDECAR_SUFFIX) from None
            raise
        try:
            raw = os.read(fd, SIDECAR_READ)
            if len(raw) == SIDECAR_READ:  # far beyond any sidecar this store writes
                # At most past the largest sidecar: a bigger file (put there by hand)
                # is cut short, so it reads as damaged instead of filling memory.
                raw += os.read(fd, sidecar.MAX_SIDECAR_BYTES + 1 - len(raw))
        finally:
            os.close(fd)
        return raw


def _check_is_file(st: os.stat_result | None, key: str) -> os.stat_result:
    """`st`, if it is a regular file's: a symlink is refused, anything else is no object."""
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise tree.symlink_error(key, key)
    if st is None or not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"no object at key {key!r}", key)
    return st


class _FileReader(ObjectReader):
    def __init__(self, info: ObjectInfo, fd: int, start: int, stop: int) -> None:
        super().__init__(info, stop - start)
        self._fd = fd
        self._offset = start

    def _read(self, size: int) -> bytes:
        with os_errors(self.info.key, "read"):
            data = os.pread(self._fd, size, self._offset)
        self._offset += len(data)
        return data

    def _readinto(self, view: memoryview) -> int:
        with os_errors(self.info.key, "read"):
            count = os.preadv(self._fd, [view], self._offset)
        self._offset += count
        return count

    def _release(self) -> None:
        os.close(self._fd)

    def fileno(self) -> int:
        return self._fd


def _reader(info: ObjectInfo, fd: int, start: int, end: int | None) -> _FileReader:
    """A reader of bytes [start, end) of the open data file, clipped to its size."""
    stop = info.size if end is None else min(end, info.size)
    return _FileReader(info, fd, min(start, stop), stop)


class _WouldHashError(Exception):
    """Raised inside `_get_nowait` where only hashing the file would tell its ETag."""


def _adopt(fd: int, st: os.stat_result, key: str) -> sidecar.Version:
    """A version for a data file with no sidecar of ours (copied in by hand)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, DEFAULT_CHUNK_SIZE, offset):
        digest.update(chunk)
        offset += len(chunk)
    return sidecar.Version(sidecar.FileIdentity.of(st), digest.hexdigest(), guess_content_type(key), {})
